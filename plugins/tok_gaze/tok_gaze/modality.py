"""Gaze tracks: one 2D gaze point per frame, NaN where the tracker lost the eye."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from tokcore.modality import Modality


class GazeModality(Modality):
    """Gaze points `(T, 2)`: x horizontal, y vertical (OpenCV image convention, origin top
    left), normalized to [0, 1] by the image size. Frames without a valid gaze (blinks,
    tracking loss) are NaN; they are masked out of normalization and losses.

    Args:
        mean: value subtracted before encoding (0.5 centres the image).
        std: divisor applied after the mean (0.5 maps [0, 1] to [-1, 1]).
        value_range: `[low, high]` valid coordinates must lie in; the default [0, 1] catches
            pixel coordinates passed without dividing by the image size.
    """

    name = "gaze"
    layout = "TC"
    channels = 2

    def __init__(self, mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 value_range: Sequence[float] | None = (0.0, 1.0)):
        super().__init__(mean, std, value_range)

    def valid_mask(self, x: Tensor) -> Tensor:
        # a frame is valid only when both coordinates are
        frame_ok = torch.isfinite(x).all(dim=-1, keepdim=True)
        return frame_ok.expand_as(x)

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        gaze = 0.1 + 0.8 * torch.rand(batch_size, 16, 2, generator=g)
        gaze[:, 5:7] = float("nan")  # a blink
        return gaze
