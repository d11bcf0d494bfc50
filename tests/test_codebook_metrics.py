"""Codebook statistics (tokcore.metrics.codebook): usage of held-out tokens, one histogram per codebook (residual stages)."""

import torch

from tokcore.metrics.codebook import codebook_usage


def test_single_codebook_counts_distinct_codes():
    u = codebook_usage(torch.tensor([[0, 1, 1], [3, 3, 3]]), 4)
    assert u["used"] == 3 and u["used_per_codebook"] == [3] and u["usage"] == 0.75 and u["dead_codes"] == 1.0


def test_residual_stages_are_counted_separately_not_pooled():
    # (clips, tokens, stages): stage 0 uses codes 0-3, stage 1 only code 0
    stage0 = torch.arange(8).remainder(4).reshape(2, 4)
    indices = torch.stack([stage0, torch.zeros_like(stage0)], -1)
    u = codebook_usage(indices, 4, (2,))
    assert u["used_per_codebook"] == [4, 1] and u["used"] == 1
    assert u["usage"] == (1.0 + 0.25) / 2
    assert abs(u["perplexity"] - (4.0 + 1.0) / 2) < 1e-9


def test_evaluation_counts_equal_codebook_usage_per_stage():
    """`tokcore eval` counts codes sparsely, per sample and per rank, then merges; its figures
    equal codebook_usage of all the indices at once."""
    from tokcore.eval.state import CodeCounts

    g = torch.Generator().manual_seed(0)
    indices = torch.randint(0, 6, (10, 4, 3), generator=g)
    indices[..., 2] = 1  # a stage stuck on one code
    want = codebook_usage(indices, 8, (3,))
    a, b = CodeCounts(8, 3), CodeCounts(8, 3)
    for i, sample in enumerate(indices):
        (a if i % 2 else b).add(sample.numpy())
    a.merge(b)
    got = a.stats()
    assert got["used_per_codebook"] == want["used_per_codebook"] == [6, 6, 1] and got["used"] == want["used"]
    for k in ("usage", "perplexity", "dead_codes"):
        assert abs(got[k] - want[k]) < 1e-9, k


def test_a_huge_codebook_is_counted_sparsely_with_the_same_figures(monkeypatch):
    from tokcore.metrics import codebook

    indices = torch.tensor([[5, 9], [5, 1 << 22], [7, 9]])
    dense = codebook_usage(indices, 1 << 23, (2,))
    monkeypatch.setattr(codebook, "_DENSE_COUNTS_PER_INDEX", 0)  # force the sparse count
    sparse = codebook_usage(indices, 1 << 23, (2,))
    assert sparse["used_per_codebook"] == dense["used_per_codebook"] == [2, 2] and sparse["used"] == 2
    for k in ("usage", "perplexity", "dead_codes"):
        assert abs(sparse[k] - dense[k]) <= 1e-9 * abs(dense[k])


def test_histogram_over_batches_equals_one_count():
    from tokcore.metrics.codebook import CodeHistogram

    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 16, (4, 5, 3), generator=g) for _ in range(3)]
    h = CodeHistogram(16, (3,))
    for b in batches:
        h.add(b)
    assert h.stats() == {k: v for k, v in codebook_usage(torch.cat(batches), 16, (3,)).items()
                         if k in ("usage", "perplexity", "dead_codes")}
