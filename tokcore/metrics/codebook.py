"""Codebook statistics, written once: how many codes are used, the perplexity of their
distribution (exp of its entropy: the number of codes in effective use) and the dead codes.

Quantizers log `batch_stats` every step; evaluation accumulates a `CodeHistogram` over the
whole held-out split; reports measure `codebook_usage` of a token store. With several index
positions (`index_shape`, e.g. `(stages,)` of a residual quantizer) each position has its
own codebook and histogram, and the figures are means over them (pooling would count stage
2's codes as stage 1's).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

# A dense count vector is cheapest while the codebook is not much larger than the batch;
# beyond that (an 8^8 FSQ codebook is 16.7 M codes for a few hundred tokens) allocating,
# filling and reducing it every step dominates the step, so only the codes that occur are
# counted. Codes that do not occur add nothing to the entropy, so both give the same figures.
_DENSE_COUNTS_PER_INDEX = 4


def code_counts(indices: Tensor, codebook_size: int) -> Tensor:
    """How often each code occurs in `indices`, as float32 `(codebook_size,)`."""
    return torch.bincount(indices.reshape(-1), minlength=codebook_size).float()


def occurring_counts(indices: Tensor, codebook_size: int) -> Tensor:
    """float32 counts of the codes in `indices`: all `codebook_size` of them (dense) while the
    codebook is small against the number of indices, only the codes that occur otherwise."""
    indices = indices.reshape(-1)
    if codebook_size <= _DENSE_COUNTS_PER_INDEX * max(indices.numel(), 1024):
        return code_counts(indices, codebook_size)
    return torch.unique(indices, return_counts=True)[1].float()


def perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of the empirical code distribution(s) over the last axis of `counts`."""
    probs = counts / counts.sum(-1, keepdim=True).clamp_min(1.0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    return entropy.exp()


def batch_stats(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """`usage` (fraction of codes used in this batch) and `perplexity`, as detached tensors."""
    counts = occurring_counts(indices.detach(), codebook_size)
    used = (counts > 0).sum().float()
    return {"usage": used / codebook_size, "perplexity": perplexity(counts)}


def codebook_stats(counts: Tensor, codebook_size: int | None = None) -> dict[str, float]:
    """`counts` `(positions, K)` code histograms (or only their occurring codes' counts, with
    `codebook_size`) -> usage, perplexity and dead codes, each the mean over positions."""
    k = counts.shape[-1] if codebook_size is None else codebook_size
    used = (counts > 0).sum(-1).double()
    return {"usage": float((used / k).mean()), "perplexity": float(perplexity(counts).mean()),
            "dead_codes": float((k - used).mean())}


class CodeHistogram:
    """Code counts accumulated over many batches, one histogram per index position
    (float64 `counts` `(positions, codebook_size)`, which ranks all-reduce)."""

    def __init__(self, codebook_size: int, index_shape: Sequence[int] = (), device: Any = None):
        self.codebook_size = codebook_size
        self.positions = math.prod(index_shape)
        self.counts = torch.zeros(self.positions, codebook_size, dtype=torch.float64, device=device)

    def add(self, indices: Tensor) -> "CodeHistogram":
        """Count `indices` `(..., *index_shape)`."""
        flat = indices.reshape(-1, self.positions)
        for j in range(self.positions):
            self.counts[j] += torch.bincount(flat[:, j], minlength=self.codebook_size).double()
        return self

    def stats(self) -> dict[str, float]:
        return codebook_stats(self.counts)


def codebook_usage(indices: Tensor, codebook_size: int, index_shape: Sequence[int] = ()) -> dict[str, Any]:
    """Usage, codes used, perplexity and dead codes of a set of token indices.

    With a non-empty `index_shape` the trailing axes of `indices` address separate codebooks:
    each gets its own histogram, `used_per_codebook` lists their codes in use, `used` is the
    fewest, and usage, perplexity and dead codes are means over codebooks. A codebook far
    larger than the set of indices is counted sparsely (only the codes that occur).
    """
    flat = indices.reshape(-1, math.prod(index_shape))
    if codebook_size <= _DENSE_COUNTS_PER_INDEX * max(flat.shape[0], 1024):
        counts = CodeHistogram(codebook_size, index_shape, flat.device).add(flat).counts
        stats = codebook_stats(counts)
        used = (counts > 0).sum(-1).tolist()
    else:  # one (occurring codes) count vector per codebook; lengths differ, so one at a time
        per = [occurring_counts(flat[:, j], codebook_size).double() for j in range(flat.shape[1])]
        each = [codebook_stats(c[None], codebook_size) for c in per]
        stats = {k: sum(s[k] for s in each) / len(each) for k in each[0]}
        used = [int((c > 0).sum()) for c in per]
    return {**stats, "used": int(min(used)), "used_per_codebook": used}
