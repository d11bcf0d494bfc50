"""VQ-VAE-style convolutional trunks: a downsampling encoder body and its mirror.

One resolution level per entry of `channel_mult`: `num_res_blocks` ResBlocks at
`base_channels * mult`, then a 2x down- (or up-) sampling between levels, so n levels change
the size by 2^(n-1). A middle section (ResBlock, optional self-attention, ResBlock) works at
the lowest resolution. Works for any conv dimension (see `blocks`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.nn.blocks import Downsample, ResBlock, SpatialSelfAttention, Upsample, conv_nd, group_norm


def _middle(dims: int, channels: int, attention: bool) -> nn.Sequential:
    return nn.Sequential(
        ResBlock(dims, channels, channels),
        SpatialSelfAttention(channels) if attention else nn.Identity(),
        ResBlock(dims, channels, channels),
    )


class ResNetDown(nn.Module):
    """`(B, in_channels, *size)` -> `(B, out_channels, *size / 2^(len(channel_mult) - 1))`."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, base_channels: int,
                 channel_mult: list[int], num_res_blocks: int, mid_attention: bool):
        super().__init__()
        widths = [base_channels * m for m in channel_mult]
        self.factor = 2 ** (len(widths) - 1)
        self.conv_in = conv_nd(dims, in_channels, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        ch = widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                layers.append(ResBlock(dims, ch, width))
                ch = width
            if level < len(widths) - 1:
                layers.append(Downsample(dims, ch))
        self.levels = nn.Sequential(*layers)
        self.middle = _middle(dims, ch, mid_attention)
        self.norm_out = group_norm(ch)
        self.conv_out = conv_nd(dims, ch, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.middle(self.levels(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class ResNetUp(nn.Module):
    """The mirror of `ResNetDown`: `(B, in_channels, *size)` -> `(B, out_channels, *size * 2^(n-1))`."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, base_channels: int,
                 channel_mult: list[int], num_res_blocks: int, mid_attention: bool):
        super().__init__()
        widths = [base_channels * m for m in reversed(channel_mult)]  # lowest resolution first
        self.factor = 2 ** (len(widths) - 1)
        ch = widths[0]
        self.conv_in = conv_nd(dims, in_channels, ch, 3, padding=1)
        self.middle = _middle(dims, ch, mid_attention)
        layers: list[nn.Module] = []
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                layers.append(ResBlock(dims, ch, width))
                ch = width
            if level < len(widths) - 1:
                layers.append(Upsample(dims, ch))
        self.levels = nn.Sequential(*layers)
        self.norm_out = group_norm(ch)
        self.conv_out = conv_nd(dims, ch, out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.levels(self.middle(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


def check_channel_mult(channel_mult: list[int], what: str) -> None:
    if not channel_mult or any(m <= 0 for m in channel_mult):
        raise ValueError(f"{what}: channel_mult must be a non-empty list of positive ints, got {channel_mult}")
