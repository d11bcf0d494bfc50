"""A fixed low-pass filter along time: keep the lowest DCT-II frequencies of a sequence.

A decoder that ends with it can only output trajectories made of the lowest `keep`
cosines, so its frames cannot jitter from one to the next however its tokens were
quantized; it predicts low-frequency coefficients, the way a DCT codec stores them, but
from learned codes. The filter is the orthogonal projection D_k^T D_k (D the orthonormal
DCT-II matrix), so gradients pass through it unchanged in the kept subspace.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix `(n, n)`: coefficients = D @ signal, signal = D.T @ coefficients."""
    k = np.arange(n)[:, None]
    t = np.arange(n)[None, :]
    d = np.cos(np.pi * (t + 0.5) * k / n) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def dct_basis(frames: int, keep: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The lowest `keep` rows of the orthonormal DCT-II matrix for `frames` samples, `(keep, frames)`."""
    return torch.from_numpy(dct_matrix(frames)[:keep]).to(dtype)


class DCTLowpass(nn.Module):
    """Project `(B, T, C)` sequences onto their lowest `keep` DCT frequencies along T.

    Sequences of at most `keep` frames pass unchanged (every frequency is kept).

    Args:
        keep: number of DCT frequencies kept (the lowest ones).
    """

    def __init__(self, keep: int):
        super().__init__()
        if keep < 1:
            raise ValueError(f"DCTLowpass: keep must be >= 1, got {keep}")
        self.keep = keep

    def forward(self, x: Tensor) -> Tensor:
        frames = x.shape[1]
        if frames <= self.keep:
            return x
        basis = dct_basis(frames, self.keep).to(device=x.device, dtype=x.dtype)
        return torch.einsum("kt,ks,bsc->btc", basis, basis, x)
