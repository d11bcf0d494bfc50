"""Codebook statistics shared by the discrete quantizers (all detached, cheap: O(codebook))."""

from __future__ import annotations

import torch
from torch import Tensor


def code_counts(indices: Tensor, codebook_size: int) -> Tensor:
    """How often each code occurs in `indices`, as float32 `(codebook_size,)`."""
    return torch.bincount(indices.reshape(-1), minlength=codebook_size).float()


def perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of the empirical code distribution: the number of codes in effective use."""
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
    return entropy.exp()


# A dense count vector is cheapest while the codebook is not much larger than the batch;
# beyond that (an 8^8 FSQ codebook is 16.7 M codes for a few hundred tokens) allocating,
# filling and reducing it every step dominates the step, so only the codes that occur are
# counted. Codes that do not occur add nothing to the entropy, so both give the same figures.
_DENSE_COUNTS_PER_INDEX = 4


def batch_stats(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """`usage` (fraction of codes used in this batch) and `perplexity`."""
    indices = indices.detach().reshape(-1)
    if codebook_size <= _DENSE_COUNTS_PER_INDEX * max(indices.numel(), 1024):
        counts = code_counts(indices, codebook_size)
    else:  # only the codes that occur
        counts = torch.unique(indices, return_counts=True)[1].float()
    used = (counts > 0).sum().float()
    return {"usage": used / codebook_size, "perplexity": perplexity(counts)}
