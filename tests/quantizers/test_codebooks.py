"""Implicit and residual codebooks: index <-> code round trips over the whole codebook, and
the LFQ entropy loss against a brute-force computation over every code."""

import itertools

import pytest
import torch

from tokcore.builtins.quantizers import FSQ, LFQ, RFSQ, RVQ
from tokcore.builtins.quantizers.lfq import entropy_terms


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [2, 3], [7]])
def test_fsq_round_trip_over_whole_codebook(levels):
    q = FSQ(levels)
    all_indices = torch.arange(q.codebook_size)
    codes = q.indices_to_codes(all_indices)
    assert codes.unique(dim=0).shape[0] == q.codebook_size  # a bijection
    assert codes.min() == -1 and codes.max() == 1
    assert torch.equal(q.codes_to_indices(codes), all_indices)


def test_fsq_forward_reaches_every_code():
    q = FSQ([4, 3]).eval()
    grid = torch.linspace(-4, 4, 101)
    z = torch.cartesian_prod(grid, grid)
    out = q(z)
    assert out.indices.unique().numel() == q.codebook_size
    assert torch.equal(q.codes_to_indices(out.quantized), out.indices)


@pytest.mark.parametrize("codebook_size", [2, 2 ** 10])
def test_lfq_round_trip_over_whole_codebook(codebook_size):
    q = LFQ(codebook_size).eval()
    all_indices = torch.arange(codebook_size)
    codes = q.indices_to_codes(all_indices)
    assert torch.equal(q.codes_to_indices(codes), all_indices)
    out = q(codes)  # codes are their own quantization
    assert torch.equal(out.indices, all_indices) and torch.equal(out.quantized, codes)


def test_rvq_round_trip_over_whole_codebook():
    torch.manual_seed(0)
    q = RVQ(dim=3, codebook_size=8, stages=2, kmeans_init=False).eval()
    # coarse stage well separated, fine stage small: every index pair is recoverable
    q.stages[0].embed.copy_(torch.randn(8, 3) * 10)
    q.stages[1].embed.copy_(torch.randn(8, 3) * 0.1)
    pairs = torch.tensor(list(itertools.product(range(8), range(8))))
    codes = q.indices_to_codes(pairs)
    out = q(codes)
    assert torch.equal(out.indices, pairs)
    assert torch.equal(out.quantized, codes)


def test_rfsq_index_to_code_over_whole_codebook():
    # Sums of stage codes are not injective (0 + 1/2 == 1 - 1/2), so the round trip is
    # stage by stage: stacked indices -> each stage's code -> that stage's indices.
    q = RFSQ([3, 4], stages=2).eval()
    k = q.codebook_size
    pairs = torch.tensor(list(itertools.product(range(k), range(k))))
    total = q.indices_to_codes(pairs)
    stage_codes = [q.stages[s].indices_to_codes(pairs[:, s]) for s in range(2)]
    assert torch.allclose(total, stage_codes[0] * q.scales[0] + stage_codes[1] * q.scales[1])
    for s in range(2):
        assert torch.equal(q.stages[s].codes_to_indices(stage_codes[s]), pairs[:, s])
    # and what the forward pass produces decodes exactly
    z = torch.randn(4096, 2) * 2
    out = q(z)
    assert torch.equal(q.indices_to_codes(out.indices), out.quantized)


def brute_force_entropy(latents, inv_temperature):
    bits = latents.shape[1]
    codes = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=bits)), dtype=latents.dtype)
    probs = (-inv_temperature * torch.cdist(latents, codes).square()).softmax(dim=1)
    sample = -(probs * probs.log()).sum(1).mean()
    mean = probs.mean(0)
    return sample, -(mean * mean.log()).sum()


@pytest.mark.parametrize("bits", [1, 5, 6])
def test_lfq_entropy_equals_brute_force_over_all_codes(bits):
    torch.manual_seed(bits)
    latents = torch.randn(40, bits, dtype=torch.float64, requires_grad=True)
    ours = entropy_terms(latents, inv_temperature=0.7)
    ref = brute_force_entropy(latents, 0.7)
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=1e-9)
    grad_ours = torch.autograd.grad(ours[0] - 2 * ours[1], latents)[0]
    grad_ref = torch.autograd.grad(ref[0] - 2 * ref[1], latents)[0]
    assert torch.allclose(grad_ours, grad_ref, rtol=1e-7, atol=1e-10)


def test_lfq_entropy_loss_in_training_is_bounded_for_large_codebooks():
    q = LFQ(2 ** 18).train()  # 2^18 codes x 512 samples would be 512 MB as a dense matrix
    z = torch.randn(512, 18, requires_grad=True)
    out = q(z)
    assert set(out.losses) == {"commitment", "entropy"}
    out.losses["entropy"].backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("codebook_size", [64, 1 << 24])
def test_batch_stats_count_only_occurring_codes_for_large_codebooks(codebook_size, monkeypatch):
    """usage and perplexity match a brute-force count, and a codebook far larger than the batch
    (8^8 FSQ: 2^24 codes) is never counted densely: that cost seconds per training step."""
    from tokcore.metrics import codebook as _stats

    indices = torch.tensor([0, 3, 3, 7, 7, 7, 63, 63])
    dense_sizes = []
    real_counts = _stats.code_counts
    monkeypatch.setattr(_stats, "code_counts", lambda i, n: dense_sizes.append(n) or real_counts(i, n))
    stats = _stats.batch_stats(indices, codebook_size)
    probs = torch.tensor([1, 2, 3, 2]) / 8
    assert stats["usage"].item() == pytest.approx(4 / codebook_size)
    assert stats["perplexity"].item() == pytest.approx(torch.exp(-(probs * probs.log()).sum()).item(), rel=1e-6)
    assert dense_sizes == ([64] if codebook_size == 64 else [])


def test_fsq_forward_with_a_24_bit_codebook_reports_batch_stats():
    fsq = FSQ(levels=[8] * 8)
    out = fsq(torch.randn(2, 4, 4, 8))
    assert fsq.codebook_size == 1 << 24
    assert out.indices.shape == (2, 4, 4) and int(out.indices.max()) < 1 << 24
    used = len(torch.unique(out.indices))
    assert out.stats["usage"].item() == pytest.approx(used / (1 << 24))
    assert 1.0 <= out.stats["perplexity"].item() <= used + 1e-3
