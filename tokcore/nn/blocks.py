"""Convolutional building blocks, written once for 1D, 2D and 3D convolutions.

`dims` picks the convolution: 1 for sequences `(B, C, T)`, 2 for images `(B, C, H, W)`,
3 for video `(B, C, T, H, W)`. Tensors here are channels-first, as torch convolutions want.

A `Layers` set names the factories a block or trunk builds its layers with; `plain_layers(dims)`
is the usual one (zero-padded convs, GroupNorm, attention over all positions). Other sets
(`causal3d.causal_layers`: time-causal convs, per-frame norms) reuse the same blocks and trunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.nn.transformer import Attention

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def conv_nd(dims: int, in_channels: int, out_channels: int, kernel_size: int, **kw) -> nn.Module:
    if dims not in _CONV:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims}")
    return _CONV[dims](in_channels, out_channels, kernel_size, **kw)


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with up to `max_groups` groups (the largest power of two dividing `channels`)."""
    return nn.GroupNorm(math.gcd(channels, max_groups), channels, eps=1e-6)


@dataclass(frozen=True)
class Layers:
    """The layer factories of a convolutional trunk.

    Attributes:
        conv: `(in_channels, out_channels, kernel_size)` -> a conv that keeps the size.
        norm: `channels` -> a normalization layer.
        attention: `channels` -> a residual self-attention layer.
        downsample: `(channels, transition)` -> a layer that shrinks the size; `transition`
            counts the trunk's resolution changes from full resolution (0 is the first).
        upsample: `(channels, transition)` -> the layer that undoes `downsample(channels, transition)`.
    """

    conv: Callable[[int, int, int], nn.Module]
    norm: Callable[[int], nn.Module]
    attention: Callable[[int], nn.Module]
    downsample: Callable[[int, int], nn.Module]
    upsample: Callable[[int, int], nn.Module]


def plain_layers(dims: int) -> Layers:
    """Zero-padded convs, GroupNorm, attention over all positions, every axis halved/doubled."""
    return Layers(
        conv=lambda cin, cout, k: conv_nd(dims, cin, cout, k, padding=k // 2),
        norm=group_norm,
        attention=SpatialSelfAttention,
        downsample=lambda ch, _: Downsample(dims, ch),
        upsample=lambda ch, _: Upsample(dims, ch),
    )


def as_layers(layers: int | Layers) -> Layers:
    """A `Layers` set, or `plain_layers(dims)` for an int."""
    return plain_layers(layers) if isinstance(layers, int) else layers


class ResBlock(nn.Module):
    """norm, SiLU, conv, norm, SiLU, conv, plus a skip (a 1x1 conv when channels change).

    `layers` is the conv dimension (plain layers) or a `Layers` set.
    """

    def __init__(self, layers: int | Layers, in_channels: int, out_channels: int):
        super().__init__()
        make = as_layers(layers)
        self.norm1 = make.norm(in_channels)
        self.conv1 = make.conv(in_channels, out_channels, 3)
        self.norm2 = make.norm(out_channels)
        self.conv2 = make.conv(out_channels, out_channels, 3)
        self.skip = make.conv(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halves every spatial axis with a stride-2 3x3 conv (sizes must be even)."""

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Doubles every spatial axis: nearest-neighbour repeat, then a 3x3 conv."""

    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = conv_nd(dims, channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class SpatialSelfAttention(nn.Module):
    """Residual self-attention over all positions of a channels-first map (VQGAN's mid block)."""

    def __init__(self, channels: int, num_heads: int = 1):
        super().__init__()
        self.norm = group_norm(channels)
        self.attn = Attention(channels, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, positions, C)
        return x + self.attn(tokens).transpose(1, 2).reshape(x.shape)
