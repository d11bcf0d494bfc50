"""Packed batches: attention within blocks equals each sample alone (against a dense
block-diagonal mask and against separate runs), TiTok's packed path, and the token-budget
sampler's guarantees (budget, N processes == accumulation, resumption by step number)."""

import pytest
import torch
import torch.nn.functional as F

from tokcore.errors import ConfigError
from tokcore.nn.transformer import Transformer
from tokcore.nn.varlen import block_diagonal_mask, pack, unpack, varlen_attention
from tokcore.tokenizer import build_tokenizer
from tokcore.train.packing import TokenBudgetSampler, pack_greedy

LENGTHS = [5, 1, 9, 3]


def test_pack_unpack_and_the_block_mask():
    seqs = [torch.randn(n, 4) for n in LENGTHS]
    packed, cu = pack(seqs)
    assert packed.shape == (1, 18, 4) and cu.tolist() == [0, 5, 6, 15, 18]
    assert all(torch.equal(a, b) for a, b in zip(unpack(packed, cu), seqs))
    mask = block_diagonal_mask(cu)
    assert mask.sum() == sum(n * n for n in LENGTHS) and mask[4, 4] and not mask[4, 5] and mask[6, 14]


def test_varlen_attention_equals_the_dense_block_mask_and_separate_runs():
    torch.manual_seed(0)
    cu = pack([torch.zeros(n) for n in LENGTHS])[1]
    q, k, v = torch.randn(1, 4, 18, 8), torch.randn(1, 2, 18, 8), torch.randn(1, 2, 18, 8)
    got = varlen_attention(q, k, v, cu)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=block_diagonal_mask(cu), enable_gqa=True)
    torch.testing.assert_close(got, dense, atol=1e-5, rtol=1e-5)


def test_a_packed_transformer_equals_each_sample_run_alone():
    torch.manual_seed(0)
    net = Transformer(32, 2, 4, num_kv_heads=2, qk_norm=True, mlp="geglu").eval()
    seqs = [torch.randn(n, 32) for n in LENGTHS]
    packed, cu = pack(seqs)
    out = unpack(net(packed, cu_seqlens=cu), cu)
    for s, o in zip(seqs, out):
        torch.testing.assert_close(o, net(s[None])[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="takes no mask"):
        net(packed, mask=torch.ones(1, 18, dtype=torch.bool), cu_seqlens=cu)


@pytest.mark.parametrize("video", [False, True])
def test_titok_packed_over_sizes_and_counts_equals_each_sample_alone(video):
    torch.manual_seed(0)
    arch = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 2, "num_heads": 2, "max_tokens": 10}
    if video:
        arch |= {"frames": 4, "temporal_patch_size": 2}
    tok = build_tokenizer({"encoder": {"name": "titok", "out_dim": 5, **arch},
                           "quantizer": {"name": "fsq", "levels": [7, 7, 7, 5, 5]},
                           "decoder": {"name": "titok", **arch}}).eval()
    frames = [(4,), (2,), (6,)] if video else [(), (), ()]
    xs = [torch.randn(3, *t, h, w) for t, h, w in zip(frames, (16, 8, 24), (16, 20, 12))]
    counts = [3, 10, 6]
    with torch.no_grad():
        packed = tok.encoder.forward_packed(xs, counts)
        decoded = tok.decoder.forward_packed(packed, [tuple(x.shape[1:]) for x in xs])
        for x, k, z, y in zip(xs, counts, packed, decoded):
            alone = tok.encoder(x[None], torch.tensor([k]))[0]
            torch.testing.assert_close(z, alone, atol=1e-5, rtol=1e-5)
            assert y.shape == x.shape
            torch.testing.assert_close(y, tok.decoder(z[None], size=tuple(x.shape[1:]))[0], atol=1e-5, rtol=1e-5)


LENS = [int(n) for n in torch.randint(10, 100, (200,), generator=torch.Generator().manual_seed(0))]


def test_every_micro_batch_fits_the_budget_and_an_epoch_covers_every_sample_once():
    s = TokenBudgetSampler(LENS, max_tokens=256, seed=3)
    groups = s._epoch(0)
    assert sorted(i for g in groups for i in g) == list(range(200))
    assert all(sum(LENS[i] for i in g) <= 256 for g in groups)
    assert all(sum(LENS[i] for i in a) + LENS[b[0]] > 256 for a, b in zip(groups, groups[1:]))  # greedy: full
    assert pack_greedy([0, 1, 2], [3, 3, 3], 6) == [[0, 1], [2]]


def test_two_processes_see_what_one_process_with_accumulation_sees_and_resume_by_step():
    one = TokenBudgetSampler(LENS, 256, grad_accum=2, seed=1)
    ranks = [TokenBudgetSampler(LENS, 256, rank=r, world_size=2, seed=1) for r in range(2)]
    for step in range(40):  # crosses epoch boundaries (about 20 steps an epoch)
        split = [b for r in ranks for b in r.micro_batches(step)]
        assert sorted(sum(split, [])) == sorted(sum(one.micro_batches(step), []))
    it = iter(TokenBudgetSampler(LENS, 256, grad_accum=2, seed=1))
    full = [next(it) for _ in range(2 * 30)]
    resumed = iter(TokenBudgetSampler(LENS, 256, grad_accum=2, seed=1, start_step=17))
    assert [next(resumed) for _ in range(2 * 13)] == full[2 * 17:]


def test_budget_errors():
    with pytest.raises(ConfigError, match="sample 2 has 9 tokens, more than max_tokens=8"):
        TokenBudgetSampler(LENGTHS, max_tokens=8)
    with pytest.raises(ConfigError, match="fewer than one step's 4"):
        TokenBudgetSampler(LENGTHS, max_tokens=18, grad_accum=2, world_size=2)
