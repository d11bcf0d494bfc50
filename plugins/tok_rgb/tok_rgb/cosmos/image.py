"""`cosmos_image`: the encoder and decoder of NVIDIA's Cosmos image tokenizers (the 2-D networks
of the DI and CI models), with Cosmos's parameters and module names, so the weights of a
released `encoder.jit`/`decoder.jit` load into them by name (`tokcore import cosmos`).

They share the video networks' plan (Haar patching, residual levels, a middle of block,
attention, block, a pointwise projection to the quantized width) and their residual block and
attention parameters, with 2-D layers: 3x3 convolutions, GroupNorm of 32 groups, attention
among all positions, and a resampling that differs from the video one: a strided
convolution down and repetition followed by a convolution up, at the first levels only
(as many as the compression asks beyond the patching).

Input is images `(B, 3, H, W)` in [-1, 1]; H and W must be multiples of the compression.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tok_rgb.cosmos.haar import haar_patch_image, haar_unpatch_image
from tok_rgb.cosmos.layers import Attention, ResnetBlock
from tok_rgb.cosmos.networks import middle, run_level, run_middle
from tokcore.api import ConfigError, Decoder, Encoder, require_dim

_DOC_ARGS = """
        channels: base width of the network (a multiple of 32: the GroupNorm's groups).
        channels_mult: width multipliers of the resolution levels (one level per entry).
        num_res_blocks: residual blocks per level (the decoder has one more).
        attn_resolutions: feature-map sizes at which residual blocks are followed by
            attention, as Cosmos counts them: the encoder from `resolution / patch_size`,
            halved at each downsampling; the decoder from `resolution / patch_size /
            2**(levels - 1)` at its deepest level, doubled at each upsampling (Cosmos's own
            counts, which differ; kept so that its checkpoints load).
        resolution: the nominal input size those sizes refer to.
        z_channels: width of the latent before the 1x1 projection to `embedding_dim`.
        patch_size: Haar-wavelet patch size in H and W (a power of two).
        spatial_compression: total downsampling of H and W (patching included).
        dropout: dropout in the residual blocks (training only)."""


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


def conv3x3(chan_in: int, chan_out: int) -> nn.Conv2d:
    return nn.Conv2d(chan_in, chan_out, 3, padding=1)


def conv1x1(chan_in: int, chan_out: int) -> nn.Conv2d:
    return nn.Conv2d(chan_in, chan_out, 1)


def resnet_block(chan_in: int, chan_out: int, dropout: float = 0.0) -> ResnetBlock:
    return ResnetBlock(chan_in, chan_out, dropout, norm=group_norm, conv=conv3x3, shortcut=conv1x1)


class ImageAttention(Attention):
    """Single-head attention among all positions of the feature map."""

    def __init__(self, channels: int):
        super().__init__(channels, norm=group_norm, proj=conv1x1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, hh, ww = x.shape

        def tokens(y: Tensor) -> Tensor:  # (B, H*W, C)
            return y.flatten(2).transpose(1, 2)

        out = F.scaled_dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    """Halves H and W: zero padding at the bottom and right, then a strided 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Doubles H and W by repetition, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


def _resampling_steps(channels: int, patch_size: int, spatial_compression: int, levels: int) -> int:
    if channels % 32:
        raise ConfigError(f"must be a multiple of 32 (the GroupNorm's groups), got {channels}", key="channels")
    for key, value in (("patch_size", patch_size), ("spatial_compression", spatial_compression)):
        if value < 1 or value & (value - 1):
            raise ConfigError(f"must be a power of two, got {value}", key=key)
    steps = int(math.log2(spatial_compression)) - int(math.log2(patch_size))
    if not 0 <= steps <= levels:
        raise ConfigError(f"needs {steps} halvings beyond the patching, but the network has {levels} levels; use a "
                          f"compression between patch_size and patch_size * 2**{levels}", key="spatial_compression")
    return steps


def _level(width: int, out: int, blocks: int, dropout: float, attend: bool) -> nn.Module:
    stage = nn.Module()
    stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
    for _ in range(blocks):
        stage.block.append(resnet_block(width, out, dropout))
        width = out
        if attend:
            stage.attn.append(ImageAttention(width))
    return stage


class CosmosImageEncoder(Encoder):
    """Cosmos's image encoder (Haar patching, residual levels with strided downsampling,
    attention in the middle) and its 1x1 projection to the quantized width.

    Args:
        in_channels: input channels (3 for RGB).
        embedding_dim: width of the latents it emits (the FSQ's number of levels)."""

    __doc__ += _DOC_ARGS
    example_config: ClassVar[dict] = {
        "channels": 32, "channels_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4], "resolution": 16,
        "z_channels": 4, "embedding_dim": 4, "patch_size": 2, "spatial_compression": 4}

    def __init__(self, in_channels: int = 3, channels: int = 128, channels_mult: list[int] = (2, 4, 4),
                 num_res_blocks: int = 2, attn_resolutions: list[int] = (32,), resolution: int = 1024,
                 z_channels: int = 256, embedding_dim: int = 6, patch_size: int = 4, spatial_compression: int = 8,
                 dropout: float = 0.0):
        super().__init__()
        downs = _resampling_steps(channels, patch_size, spatial_compression, len(channels_mult))
        self.in_channels, self.out_dim = in_channels, embedding_dim
        self.patch_size, self.spatial_compression = patch_size, spatial_compression
        self.conv_in = conv3x3(in_channels * patch_size ** 2, channels)
        res, width = resolution // patch_size, channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channels_mult):
            stage = _level(width, channels * mult, num_res_blocks, dropout, res in attn_resolutions)
            width = channels * mult
            if level < downs:
                stage.downsample = Downsample(width)
                res //= 2
            self.down.append(stage)
        self.mid = middle(width, dropout, block=resnet_block, attn=ImageAttention)
        self.norm_out = group_norm(width)
        self.conv_out = conv3x3(width, z_channels)
        self.quant_conv = conv1x1(z_channels, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, H, W)` in [-1, 1] -> latents `(B, H / s, W / s, embedding_dim)`."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        s = self.spatial_compression
        if x.shape[2] % s or x.shape[3] % s:
            raise ValueError(f"height and width must be multiples of the spatial compression {s}, got "
                             f"{x.shape[2]}x{x.shape[3]}; crop or resize the images (data.crop_size)")
        h = self.conv_in(haar_patch_image(x, self.patch_size))
        for stage in self.down:
            h = run_level(stage, h)
        h = run_middle(self.mid, h)
        h = self.quant_conv(self.conv_out(F.silu(self.norm_out(h))))
        return h.permute(0, 2, 3, 1)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, h, w = input_shape
        return h // self.spatial_compression, w // self.spatial_compression

    def example_input(self, batch_size: int = 2) -> Tensor:
        size = 2 * self.spatial_compression
        return torch.rand(batch_size, self.in_channels, size, size) * 2 - 1


class CosmosImageDecoder(Decoder):
    """Cosmos's image decoder: 1x1 projection from the quantized width, attention in the
    middle, residual levels with repetition upsampling, inverse Haar patching.

    Args:
        out_channels: output channels (3 for RGB).
        in_dim: width of the latents it takes (the FSQ's number of levels; default: the
            quantizer's dim)."""

    __doc__ += _DOC_ARGS
    example_config: ClassVar[dict] = {
        **{k: v for k, v in CosmosImageEncoder.example_config.items() if k != "embedding_dim"}, "in_dim": 4}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, channels: int = 128,
                 channels_mult: list[int] = (2, 4, 4), num_res_blocks: int = 2, attn_resolutions: list[int] = (32,),
                 resolution: int = 1024, z_channels: int = 256, patch_size: int = 4, spatial_compression: int = 8,
                 dropout: float = 0.0):
        super().__init__()
        levels = len(channels_mult)
        ups = _resampling_steps(channels, patch_size, spatial_compression, levels)
        self.in_dim, self.out_channels, self.patch_size = require_dim(in_dim, "in_dim"), out_channels, patch_size
        self.post_quant_conv = conv1x1(self.in_dim, z_channels)
        width = channels * channels_mult[-1]
        res = (resolution // patch_size) // 2 ** (levels - 1)
        self.conv_in = conv3x3(z_channels, width)
        self.mid = middle(width, dropout, block=resnet_block, attn=ImageAttention)
        stages: list[nn.Module] = []
        for level in reversed(range(levels)):
            stage = _level(width, channels * channels_mult[level], num_res_blocks + 1, dropout, res in attn_resolutions)
            width = channels * channels_mult[level]
            if level >= levels - ups:
                stage.upsample = Upsample(width)
                res *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(width)
        self.conv_out = conv3x3(width, out_channels * patch_size ** 2)

    def forward(self, z: Tensor, **cond: Any) -> Tensor:
        """Latents `(B, H', W', in_dim)` -> images `(B, C, H, W)`."""
        h = run_middle(self.mid, self.conv_in(self.post_quant_conv(z.permute(0, 3, 1, 2))))
        for stage in reversed(self.up):
            h = run_level(stage, h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return haar_unpatch_image(h, self.patch_size)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 2, 2, self.in_dim)
