"""Codebook statistics (tokcore.metrics.codebook): usage of held-out tokens, one histogram per codebook (residual stages)."""

import torch

from tokcore.tokens.roundtrip import usage_line
from tokcore.metrics.codebook import codebook_usage


def test_single_codebook_counts_distinct_codes():
    u = codebook_usage(torch.tensor([[0, 1, 1], [3, 3, 3]]), 4)
    assert u["used"] == 3 and u["used_per_codebook"] == [3] and u["usage"] == 0.75 and u["dead_codes"] == 1.0
    assert usage_line(u, 4).startswith("codebook usage on held-out tokens: 75.0% (3/4), perplexity ")


def test_residual_stages_are_counted_separately_not_pooled():
    # (clips, tokens, stages): stage 0 uses codes 0-3, stage 1 only code 0
    stage0 = torch.arange(8).remainder(4).reshape(2, 4)
    indices = torch.stack([stage0, torch.zeros_like(stage0)], -1)
    u = codebook_usage(indices, 4, (2,))
    assert u["used_per_codebook"] == [4, 1] and u["used"] == 1
    assert u["usage"] == (1.0 + 0.25) / 2
    assert abs(u["perplexity"] - (4.0 + 1.0) / 2) < 1e-9
    assert "per stage 4 1 of 4" in usage_line(u, 4)


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
