"""Cosmos's Haar-wavelet patching of video: each level halves T, H and W and multiplies the
channels by 8 (the subbands LLL, LLH, ..., HHH, time first), losslessly.

Before the first level the first frame is repeated `patch_size - 1` times, so a clip of
1 + k * patch_size frames becomes k + 1 whole temporal patches: the first frame is coded on
its own (causally, as an image) and `unpatch` drops the repeats again. Each level scales by
1 / (2 sqrt 2) after the three orthonormal 1-D steps, as Cosmos does, so `unpatch(patch(x))`
is `x` up to rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_R = 1.0 / math.sqrt(2.0)  # the Haar filter taps
_RESCALE = 2.0 * math.sqrt(2.0)


def _analysis(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """The low and high halves of `x` along `dim` (an odd length is reflect-padded at its end)."""
    if x.shape[dim] % 2:
        pad = [0, 0] * (x.dim() - 1 - dim) + [0, 1]
        x = F.pad(x, pad, mode="reflect")
    pairs = x.unflatten(dim, (-1, 2))
    even, odd = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
    return (even + odd) * _R, (even - odd) * _R


def _synthesis(low: Tensor, high: Tensor, dim: int) -> Tensor:
    even, odd = (low + high) * _R, (low - high) * _R
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def haar_patch(x: Tensor, patch_size: int) -> Tensor:
    """`(B, C, T, H, W)` -> `(B, C * patch_size**3, (T + patch_size - 1) / patch_size, H / p, W / p)`."""
    x = torch.cat([x[:, :, :1].expand(-1, -1, patch_size - 1, -1, -1), x], dim=2)
    for _ in range(int(math.log2(patch_size))):
        bands = [x]
        for dim in (2, 3, 4):  # time, height, width: the order of Cosmos's subbands
            bands = [half for b in bands for half in _analysis(b, dim)]
        x = torch.cat(bands, dim=1) / _RESCALE
    return x


def haar_unpatch(x: Tensor, patch_size: int) -> Tensor:
    """The inverse of `haar_patch`, without the repeated first frames."""
    for _ in range(int(math.log2(patch_size))):
        bands = list(torch.chunk(x, 8, dim=1))
        for dim in (4, 3, 2):  # undo width, then height, then time
            bands = [_synthesis(bands[i], bands[i + 1], dim) for i in range(0, len(bands), 2)]
        x = bands[0] * _RESCALE
    return x[:, :, patch_size - 1:]
