"""Input checks shared by the backbones: a wrong shape fails early, naming the sizes."""

from __future__ import annotations

from torch import Tensor


def check_layout(x: Tensor, what: str, layout: str, channels: int, channel_axis: int) -> None:
    """`x` has one axis per letter of `layout` (e.g. "BCHW") and `channels` on `channel_axis`."""
    if x.dim() != len(layout):
        raise ValueError(f"{what}: input must be ({', '.join(layout)}), got shape {tuple(x.shape)}")
    if x.shape[channel_axis] != channels:
        raise ValueError(f"{what}: input must have {channels} channels on axis {channel_axis} of "
                         f"({', '.join(layout)}), got shape {tuple(x.shape)}")


def divide(size: int, factor: int, what: str, axis: str, by: str) -> int:
    """`size // factor`, or a ValueError naming both when `factor` does not divide `size`."""
    if size % factor:
        raise ValueError(f"{what}: {axis}={size} is not divisible by {by}={factor}; "
                         f"crop or pad {axis} to a multiple of {factor}")
    return size // factor
