"""Cosmos's Haar-wavelet patching, losslessly: each level halves every patched axis and
multiplies the channels by 2 per axis (the subbands in the order of Cosmos's `Patcher`s).

Video (`haar_patch`, `(B, C, T, H, W)`): time, then height, then width, 8 subbands LLL, LLH,
..., HHH. Before the first level the first frame is repeated `patch_size - 1` times, so a clip
of 1 + k * patch_size frames becomes k + 1 whole temporal patches: the first frame is coded on
its own (causally, as an image) and `haar_unpatch` drops the repeats again.

Images (`haar_patch_image`, `(B, C, H, W)`): width, then height, 4 subbands LL, LH, HL, HH
(the first letter is the width's band), as Cosmos's 2-D `Patcher` orders them.

Each level scales by 1 / sqrt(2) per axis after the orthonormal 1-D steps, as Cosmos does, so
unpatching a patch is the identity up to rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_R = 1.0 / math.sqrt(2.0)  # the Haar filter taps
_VIDEO_AXES = (2, 3, 4)  # time, height, width: the order of Cosmos's 3-D subbands
_IMAGE_AXES = (3, 2)  # width, then height: the order of Cosmos's 2-D subbands


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


def _patch(x: Tensor, patch_size: int, axes: tuple[int, ...]) -> Tensor:
    rescale = math.sqrt(2.0) ** len(axes)
    for _ in range(int(math.log2(patch_size))):
        bands = [x]
        for dim in axes:  # the first axis's band varies slowest along the channels
            bands = [half for b in bands for half in _analysis(b, dim)]
        x = torch.cat(bands, dim=1) / rescale
    return x


def _unpatch(x: Tensor, patch_size: int, axes: tuple[int, ...]) -> Tensor:
    rescale = math.sqrt(2.0) ** len(axes)
    for _ in range(int(math.log2(patch_size))):
        bands = list(torch.chunk(x, 2 ** len(axes), dim=1))
        for dim in reversed(axes):  # undo the innermost axis first
            bands = [_synthesis(bands[i], bands[i + 1], dim) for i in range(0, len(bands), 2)]
        x = bands[0] * rescale
    return x


def haar_patch(x: Tensor, patch_size: int) -> Tensor:
    """`(B, C, T, H, W)` -> `(B, C * patch_size**3, (T + patch_size - 1) / patch_size, H / p, W / p)`."""
    x = torch.cat([x[:, :, :1].expand(-1, -1, patch_size - 1, -1, -1), x], dim=2)
    return _patch(x, patch_size, _VIDEO_AXES)


def haar_unpatch(x: Tensor, patch_size: int) -> Tensor:
    """The inverse of `haar_patch`, without the repeated first frames."""
    return _unpatch(x, patch_size, _VIDEO_AXES)[:, :, patch_size - 1:]


def haar_patch_image(x: Tensor, patch_size: int) -> Tensor:
    """`(B, C, H, W)` -> `(B, C * patch_size**2, H / patch_size, W / patch_size)`."""
    return _patch(x, patch_size, _IMAGE_AXES)


def haar_unpatch_image(x: Tensor, patch_size: int) -> Tensor:
    """The inverse of `haar_patch_image`."""
    return _unpatch(x, patch_size, _IMAGE_AXES)
