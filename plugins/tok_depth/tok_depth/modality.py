"""Depth maps with holes: 0, inf and NaN mark pixels without a measurement."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from tokcore.modality import Modality


class DepthModality(Modality):
    """Depth maps `(1, H, W)` in metres (or any unit, consistently); invalid pixels are 0, inf
    or NaN and are masked out of normalization, losses and metrics.

    Args:
        mean: value subtracted before encoding.
        std: divisor applied after the mean.
        value_range: `[low, high]` that valid depths must lie in, or None.
        max_depth: depths above this count as invalid (far clipping), or None.
    """

    name = "depth"
    layout = "CHW"
    channels = 1

    def __init__(self, mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0,
                 value_range: Sequence[float] | None = None, max_depth: float | None = None):
        super().__init__(mean, std, value_range)
        self.max_depth = max_depth

    def valid_mask(self, x: Tensor) -> Tensor:
        valid = torch.isfinite(x) & (x > 0)
        return valid if self.max_depth is None else valid & (x <= self.max_depth)

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        depth = 0.5 + 9.5 * torch.rand(batch_size, 1, 16, 16, generator=g)
        depth[:, :, :2, :3] = 0.0  # a hole, as stereo and ToF sensors leave
        depth[:, :, -1, -1] = float("inf")
        return depth
