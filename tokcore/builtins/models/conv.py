"""Convolutional ResNet encoders and decoders: `conv2d` for images, `conv1d` for trajectories.

Both are the VQ-VAE / VQGAN design (see `resnet`), one with 2D and one with 1D convolutions;
they differ only in the layout they accept and return.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from tokcore.interfaces import Decoder, Encoder, require_dim
from tokcore.nn.resnet import ResNetDown, ResNetUp, check_channel_mult
from tokcore.nn.shapes import check_layout, divide

_TINY = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1}


class Conv2dEncoder(Encoder):
    """VQGAN-style convolutional encoder for images: `(B, C, H, W)` -> `(B, H/f, W/f, out_dim)`.

    The downsampling factor f is 2^(len(channel_mult) - 1): [1, 1, 2, 2, 4] gives 16,
    [1, 2, 2, 4] gives 8. H and W must be multiples of f.

    Args:
        in_channels: image channels C.
        out_dim: latent channels per token.
        base_channels: channels of the first resolution level.
        channel_mult: channel multiplier of base_channels at each resolution level; the
            image is halved between consecutive levels.
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: self-attention between the two ResNet blocks at the lowest resolution.
    """

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 4}

    def __init__(self, in_channels: int = 3, out_dim: int = 256, base_channels: int = 128,
                 channel_mult: list[int] = (1, 1, 2, 2, 4), num_res_blocks: int = 2, mid_attention: bool = True):
        super().__init__()
        check_channel_mult(list(channel_mult), "conv2d encoder")
        self.in_channels, self.out_dim = in_channels, out_dim
        self.body = ResNetDown(2, in_channels, out_dim, base_channels, list(channel_mult), num_res_blocks, mid_attention)
        self.downsample = self.body.factor

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, h, w = input_shape
        f = self.downsample
        return divide(h, f, "conv2d encoder", "H", "downsample"), divide(w, f, "conv2d encoder", "W", "downsample")

    def forward(self, x: Tensor) -> Tensor:
        check_layout(x, "conv2d encoder", "BCHW", self.in_channels, 1)
        self.token_grid(tuple(x.shape[1:]))
        return self.body(x).permute(0, 2, 3, 1)

    def example_input(self, batch_size: int = 2) -> Tensor:
        side = max(16, 2 * self.downsample)
        return torch.randn(batch_size, self.in_channels, side, side)


class Conv2dDecoder(Decoder):
    """The mirror of `conv2d` encoder: `(B, h, w, in_dim)` -> `(B, C, h*f, w*f)`.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: image channels C.
        base_channels: channels of the last (full-resolution) level.
        channel_mult: channel multiplier per resolution level, listed from full resolution
            down, as for the encoder; f is 2^(len(channel_mult) - 1).
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: self-attention between the two ResNet blocks at the lowest resolution.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 4}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, base_channels: int = 128,
                 channel_mult: list[int] = (1, 1, 2, 2, 4), num_res_blocks: int = 2, mid_attention: bool = True):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        check_channel_mult(list(channel_mult), "conv2d decoder")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.body = ResNetUp(2, in_dim, out_channels, base_channels, list(channel_mult), num_res_blocks, mid_attention)
        self.upsample = self.body.factor

    def forward(self, z: Tensor) -> Tensor:
        check_layout(z, "conv2d decoder", "BHWD", self.in_dim, 3)
        return self.body(z.permute(0, 3, 1, 2))

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 4, 4, self.in_dim)


class Conv1dEncoder(Encoder):
    """Convolutional encoder for trajectories: `(B, T, C)` -> `(B, T/f, out_dim)`.

    The same ResNet design as `conv2d`, with 1D convolutions along time; f is
    2^(len(channel_mult) - 1) and T must be a multiple of it.

    Args:
        in_channels: channels C per frame (2 for gaze, 9 or 12 for camera poses).
        out_dim: latent channels per token.
        base_channels: channels of the first resolution level.
        channel_mult: channel multiplier of base_channels at each resolution level; the
            sequence is halved between consecutive levels.
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: self-attention between the two ResNet blocks at the lowest resolution.
    """

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 4}

    def __init__(self, in_channels: int = 2, out_dim: int = 32, base_channels: int = 64,
                 channel_mult: list[int] = (1, 2, 2), num_res_blocks: int = 2, mid_attention: bool = True):
        super().__init__()
        check_channel_mult(list(channel_mult), "conv1d encoder")
        self.in_channels, self.out_dim = in_channels, out_dim
        self.body = ResNetDown(1, in_channels, out_dim, base_channels, list(channel_mult), num_res_blocks, mid_attention)
        self.downsample = self.body.factor

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (divide(input_shape[0], self.downsample, "conv1d encoder", "T", "downsample"),)

    def forward(self, x: Tensor) -> Tensor:
        check_layout(x, "conv1d encoder", "BTC", self.in_channels, 2)
        self.token_grid(tuple(x.shape[1:]))
        return self.body(x.transpose(1, 2)).transpose(1, 2)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, max(16, 2 * self.downsample), self.in_channels)


class Conv1dDecoder(Decoder):
    """The mirror of `conv1d` encoder: `(B, t, in_dim)` -> `(B, t*f, C)`.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: channels C per frame.
        base_channels: channels of the last (full-resolution) level.
        channel_mult: channel multiplier per resolution level, listed from full resolution
            down, as for the encoder; f is 2^(len(channel_mult) - 1).
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: self-attention between the two ResNet blocks at the lowest resolution.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 4}

    def __init__(self, in_dim: int | None = None, out_channels: int = 2, base_channels: int = 64,
                 channel_mult: list[int] = (1, 2, 2), num_res_blocks: int = 2, mid_attention: bool = True):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        check_channel_mult(list(channel_mult), "conv1d decoder")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.body = ResNetUp(1, in_dim, out_channels, base_channels, list(channel_mult), num_res_blocks, mid_attention)
        self.upsample = self.body.factor

    def forward(self, z: Tensor) -> Tensor:
        check_layout(z, "conv1d decoder", "BTD", self.in_dim, 2)
        return self.body(z.transpose(1, 2)).transpose(1, 2)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 8, self.in_dim)
