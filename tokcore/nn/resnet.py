"""VQ-VAE-style convolutional trunks: a downsampling encoder body and its mirror.

One resolution level per entry of `channel_mult`: `num_res_blocks` ResBlocks at
`base_channels * mult`, then a 2x down- (or up-) sampling between levels, so n levels change
the size by 2^(n-1). A middle section (ResBlock, optional self-attention, ResBlock) works at
the lowest resolution. Works for any conv dimension, and any `blocks.Layers` set (the
causal video trunk of `causal3d` is this one with causal layers).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.nn.blocks import Layers, ResBlock, as_layers


def _middle(make: Layers, channels: int, attention: bool) -> nn.Sequential:
    return nn.Sequential(
        ResBlock(make, channels, channels),
        make.attention(channels) if attention else nn.Identity(),
        ResBlock(make, channels, channels),
    )


class ResNetDown(nn.Module):
    """`(B, in_channels, *size)` -> `(B, out_channels, *size / 2^(len(channel_mult) - 1))`.

    `layers`: the conv dimension (plain layers) or a `blocks.Layers` set.
    """

    def __init__(self, layers: int | Layers, in_channels: int, out_channels: int, base_channels: int,
                 channel_mult: list[int], num_res_blocks: int, mid_attention: bool):
        super().__init__()
        make = as_layers(layers)
        widths = [base_channels * m for m in channel_mult]
        self.factor = 2 ** (len(widths) - 1)
        self.conv_in = make.conv(in_channels, widths[0], 3)
        blocks: list[nn.Module] = []
        ch = widths[0]
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(make, ch, width))
                ch = width
            if level < len(widths) - 1:
                blocks.append(make.downsample(ch, level))
        self.levels = nn.Sequential(*blocks)
        self.middle = _middle(make, ch, mid_attention)
        self.norm_out = make.norm(ch)
        self.conv_out = make.conv(ch, out_channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.middle(self.levels(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class ResNetUp(nn.Module):
    """The mirror of `ResNetDown`: `(B, in_channels, *size)` -> `(B, out_channels, *size * 2^(n-1))`."""

    def __init__(self, layers: int | Layers, in_channels: int, out_channels: int, base_channels: int,
                 channel_mult: list[int], num_res_blocks: int, mid_attention: bool):
        super().__init__()
        make = as_layers(layers)
        widths = [base_channels * m for m in reversed(channel_mult)]  # lowest resolution first
        self.factor = 2 ** (len(widths) - 1)
        ch = widths[0]
        self.conv_in = make.conv(in_channels, ch, 3)
        self.middle = _middle(make, ch, mid_attention)
        blocks: list[nn.Module] = []
        for level, width in enumerate(widths):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(make, ch, width))
                ch = width
            if level < len(widths) - 1:  # undoes the encoder's transition len(widths) - 2 - level
                blocks.append(make.upsample(ch, len(widths) - 2 - level))
        self.levels = nn.Sequential(*blocks)
        self.norm_out = make.norm(ch)
        self.conv_out = make.conv(ch, out_channels, 3)

    def forward(self, z: Tensor) -> Tensor:
        h = self.levels(self.middle(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))


def check_channel_mult(channel_mult: list[int], what: str) -> None:
    if not channel_mult or any(m <= 0 for m in channel_mult):
        raise ValueError(f"{what}: channel_mult must be a non-empty list of positive ints, got {channel_mult}")
