"""Position embeddings: fixed sinusoidal ones, and learned ones (1D, and 2D with interpolation)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sincos_1d(positions: Tensor, dim: int) -> Tensor:
    """Transformer sinusoids for (possibly fractional) `positions` `(N,)`: `(N, dim)`, dim even."""
    if dim % 2:
        raise ValueError(f"sinusoidal embedding width must be even, got {dim}")
    freqs = torch.exp(-torch.arange(dim // 2, dtype=torch.float64) * (math.log(10000.0) / (dim // 2)))
    angles = positions.double()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_2d(height: int, width: int, dim: int, scale: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """`(height, width, dim)`: half the channels encode the row, half the column (dim % 4 == 0).

    `scale` multiplies the row and column indices, so a grid of another size can cover the
    same range of positions as the grid a model was built for.
    """
    if dim % 4:
        raise ValueError(f"2D sinusoidal embedding width must be divisible by 4, got {dim}")
    rows = sincos_1d(torch.arange(height) * scale[0], dim // 2)  # (H, dim/2)
    cols = sincos_1d(torch.arange(width) * scale[1], dim // 2)  # (W, dim/2)
    return torch.cat([rows[:, None, :].expand(-1, width, -1), cols[None, :, :].expand(height, -1, -1)], dim=-1)


class LearnedPosEmbed1d(nn.Module):
    """A learned embedding for each of up to `max_len` positions, added to `(B, L, D)`."""

    no_weight_decay: ClassVar[tuple[str, ...]] = ("weight",)  # a position table, not a weight matrix

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of {x.shape[1]} tokens is longer than max_len={self.max_len}")
        return x + self.weight[: x.shape[1]].to(x.dtype)


class PosEmbed2d(nn.Module):
    """Position embedding for a `grid` of tokens, added to channels-last `(B, H, W, D)`.

    Built for one grid; other grids get it resized, so a model runs at other resolutions.
    `learned=True`: a parameter (initialized with sinusoids), bicubically interpolated.
    `learned=False`: fixed sinusoids evaluated at positions scaled to the built grid's range.
    """

    no_weight_decay: ClassVar[tuple[str, ...]] = ("weight",)  # a position table, not a weight matrix

    def __init__(self, grid: tuple[int, int], dim: int, learned: bool = True):
        super().__init__()
        self.grid, self.learned = tuple(grid), learned
        self.dim = dim
        if learned:
            self.weight = nn.Parameter(sincos_2d(*self.grid, dim))

    def embedding(self, height: int, width: int) -> Tensor:
        """`(height, width, dim)`."""
        if not self.learned:
            return sincos_2d(height, width, self.dim, (self.grid[0] / height, self.grid[1] / width))
        if (height, width) == self.grid:
            return self.weight
        resized = F.interpolate(self.weight.permute(2, 0, 1)[None], size=(height, width),
                                mode="bicubic", align_corners=False)
        return resized[0].permute(1, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.embedding(x.shape[1], x.shape[2]).to(device=x.device, dtype=x.dtype)
