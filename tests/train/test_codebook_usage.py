"""Codebook usage of held-out tokens, one histogram per codebook (residual stages)."""

import torch

from tokcore.tokens.roundtrip import usage_line
from tokcore.train.evaluate import codebook_usage


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
