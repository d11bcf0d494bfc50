"""`cosmos`: the encoder and decoder of NVIDIA's Cosmos video tokenizers (the factorized causal
networks of the DV and CV models), with Cosmos's own parameters and module names, so the
weights of a released `encoder.jit`/`decoder.jit` load into them by name
(`tokcore import cosmos`; `tok_rgb.cosmos.importer`).

Input is video `(B, 3, T, H, W)` in [-1, 1] (the `video` modality's default normalization).
Any length is taken: a clip whose length is not 1 + k * temporal_compression is padded by
repeating its last frame, and `frames=` trims the decoded clip back. A long clip is coded in
temporal windows of `window` frames, each on its own (as Cosmos's own video pipeline does), so
memory is bounded by one window; the latents of the windows follow each other in time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tok_rgb.cosmos.haar import haar_patch, haar_unpatch
from tok_rgb.cosmos.layers import (
    CausalNormalize,
    HybridDownsample,
    HybridUpsample,
    ResnetBlock,
    attention,
    factorized_conv,
    pointwise,
)
from tokcore.api import ConfigError, Decoder, Encoder, require_dim

_DOC_ARGS = """
        channels: base width of the network.
        channels_mult: width multipliers of the resolution levels (one level per entry).
        num_res_blocks: residual blocks per level (the decoder has one more).
        attn_resolutions: feature-map sizes (of a `resolution`-sized input, after patching)
            at which residual blocks are followed by attention, as Cosmos counts them.
        resolution: the nominal input size those sizes refer to.
        z_channels: width of the latent before the 1x1x1 projection to `embedding_dim`.
        patch_size: Haar-wavelet patch size in T, H and W (a power of two).
        spatial_compression: total downsampling of H and W (patching included).
        temporal_compression: total downsampling of T (patching included).
        window: frames per temporal window (1 + k * temporal_compression), or None to code a
            clip whole; encoder and decoder must agree.
        legacy_mode: Cosmos's older placement of the decoder's temporal upsampling (the
            encoder takes it too, so that one config block serves both).
        dropout: dropout in the residual blocks (training only)."""


class _Shape:
    """The compression arithmetic shared by encoder and decoder."""

    def __init__(self, patch_size: int, spatial_compression: int, temporal_compression: int,
                 window: int | None, levels: int):
        for key, value in (("patch_size", patch_size), ("spatial_compression", spatial_compression),
                           ("temporal_compression", temporal_compression)):
            if value < 1 or value & (value - 1):
                raise ConfigError(f"must be a power of two, got {value}", key=key)
        self.patch_size, self.spatial, self.temporal = patch_size, spatial_compression, temporal_compression
        self.spatial_steps = int(math.log2(spatial_compression)) - int(math.log2(patch_size))
        self.temporal_steps = int(math.log2(temporal_compression)) - int(math.log2(patch_size))
        for key, steps in (("spatial_compression", self.spatial_steps), ("temporal_compression", self.temporal_steps)):
            if not 0 <= steps <= levels:
                raise ConfigError(f"needs {steps} halvings beyond the patching, but the network has {levels} "
                                  f"levels; use a compression between patch_size and patch_size * 2**{levels}", key=key)
        if window is not None and (window < 1 or (window - 1) % temporal_compression):
            raise ConfigError(f"must be 1 + k * temporal_compression ({temporal_compression}) frames, got {window}",
                              key="window")
        self.window = window

    def padded(self, frames: int) -> int:
        """1 + k * temporal_compression: the clip length `frames` is padded to."""
        return 1 + math.ceil(max(frames - 1, 0) / self.temporal) * self.temporal

    def latent_frames(self, frames: int) -> int:
        return 1 + (self.padded(frames) - 1) // self.temporal

    def frame_windows(self, frames: int) -> list[int]:
        """The lengths of the temporal windows a clip of `frames` is coded in."""
        if self.window is None or frames <= self.window:
            return [frames]
        return [min(self.window, frames - start) for start in range(0, frames, self.window)]

    def latent_windows(self, latent_frames: int) -> list[int]:
        if self.window is None:
            return [latent_frames]
        per = self.latent_frames(self.window)
        return [min(per, latent_frames - start) for start in range(0, latent_frames, per)]


class CosmosEncoder(Encoder):
    """Cosmos's factorized causal video encoder (Haar patching, factorized causal convolutions
    and attention, hybrid downsampling) and its 1x1x1 projection to the quantized width.

    Args:
        in_channels: input channels (3 for RGB).
        embedding_dim: width of the latents it emits (the FSQ's number of levels)."""

    __doc__ += _DOC_ARGS
    example_config: ClassVar[dict] = {
        "channels": 8, "channels_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [4], "resolution": 16,
        "z_channels": 4, "embedding_dim": 4, "patch_size": 2, "spatial_compression": 4, "temporal_compression": 2,
        "window": None}

    def __init__(self, in_channels: int = 3, channels: int = 128, channels_mult: list[int] = (2, 4, 4),
                 num_res_blocks: int = 2, attn_resolutions: list[int] = (32,), resolution: int = 1024,
                 z_channels: int = 16, embedding_dim: int = 6, patch_size: int = 4, spatial_compression: int = 8,
                 temporal_compression: int = 4, window: int | None = 17, legacy_mode: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        levels = len(channels_mult)
        self.shape = _Shape(patch_size, spatial_compression, temporal_compression, window, levels)
        self.in_channels, self.out_dim = in_channels, embedding_dim
        self.num_res_blocks = num_res_blocks
        self.conv_in = factorized_conv(in_channels * patch_size ** 3, channels)
        res, width = resolution // patch_size, channels
        self.down = nn.ModuleList()
        for level, mult in enumerate(channels_mult):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                stage.block.append(ResnetBlock(width, channels * mult, dropout))
                width = channels * mult
                if res in attn_resolutions:
                    stage.attn.append(attention(width))
            if level != levels - 1:
                stage.downsample = HybridDownsample(width, level < self.shape.spatial_steps,
                                                    level < self.shape.temporal_steps)
                res //= 2
            self.down.append(stage)
        self.mid = middle(width, dropout)
        self.norm_out = CausalNormalize(width)
        self.conv_out = factorized_conv(width, z_channels)
        self.quant_conv = pointwise(z_channels, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        """`(B, C, T, H, W)` in [-1, 1] -> latents `(B, T', H / s, W / s, embedding_dim)`."""
        _check_size(x, self.shape.spatial, self.in_channels)
        chunks = torch.split(x, self.shape.frame_windows(x.shape[2]), dim=2)
        return torch.cat([self._encode_window(c) for c in chunks], dim=1)

    def _encode_window(self, x: Tensor) -> Tensor:
        pad = self.shape.padded(x.shape[2]) - x.shape[2]
        if pad:  # the last frame repeated: Cosmos codes 1 + k * temporal_compression frames
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
        h = self.conv_in(haar_patch(x, self.shape.patch_size))
        for stage in self.down:
            h = run_level(stage, h)
        h = run_middle(self.mid, h)
        h = self.quant_conv(self.conv_out(F.silu(self.norm_out(h))))
        return h.permute(0, 2, 3, 4, 1)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, t, h, w = input_shape
        return (sum(self.shape.latent_frames(n) for n in self.shape.frame_windows(t)),
                h // self.shape.spatial, w // self.shape.spatial)

    def example_input(self, batch_size: int = 2) -> Tensor:
        size = 2 * self.shape.spatial
        return torch.rand(batch_size, self.in_channels, 1 + 2 * self.shape.temporal, size, size) * 2 - 1


class CosmosDecoder(Decoder):
    """Cosmos's factorized causal video decoder: 1x1x1 projection from the quantized width,
    factorized causal convolutions and attention, hybrid upsampling, inverse Haar patching.

    Args:
        out_channels: output channels (3 for RGB).
        in_dim: width of the latents it takes (the FSQ's number of levels; default: the
            quantizer's dim)."""

    __doc__ += _DOC_ARGS
    example_config: ClassVar[dict] = {
        **{k: v for k, v in CosmosEncoder.example_config.items() if k != "embedding_dim"}, "in_dim": 4}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, channels: int = 128,
                 channels_mult: list[int] = (2, 4, 4), num_res_blocks: int = 2, attn_resolutions: list[int] = (32,),
                 resolution: int = 1024, z_channels: int = 16, patch_size: int = 4, spatial_compression: int = 8,
                 temporal_compression: int = 4, window: int | None = 17, legacy_mode: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        levels = len(channels_mult)
        self.shape = _Shape(patch_size, spatial_compression, temporal_compression, window, levels)
        self.in_dim, self.out_channels = require_dim(in_dim, "in_dim"), out_channels
        self.post_quant_conv = pointwise(self.in_dim, z_channels)
        width = channels * channels_mult[-1]
        res = (resolution // patch_size) // 2 ** (levels - 1)
        self.conv_in = factorized_conv(z_channels, width)
        self.mid = middle(width, dropout)
        spatial_ups, temporal_ups = self.shape.spatial_steps, self.shape.temporal_steps
        stages: list[nn.Module] = []
        for level in reversed(range(levels)):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                stage.block.append(ResnetBlock(width, channels * channels_mult[level], dropout))
                width = channels * channels_mult[level]
                if res in attn_resolutions:
                    stage.attn.append(attention(width))
            if level != 0:
                step = levels - level - 1  # the encoder's level this upsampling mirrors
                temporal = step < temporal_ups if legacy_mode else 0 < step < temporal_ups + 1
                spatial = temporal or (step < spatial_ups and spatial_ups > temporal_ups)
                stage.upsample = HybridUpsample(width, spatial, temporal)
                res *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = CausalNormalize(width)
        self.conv_out = factorized_conv(width, out_channels * patch_size ** 3)

    def forward(self, z: Tensor, frames: int | None = None, **cond: Any) -> Tensor:
        """Latents `(B, T', H', W', in_dim)` -> video `(B, C, T, H, W)`; `frames` trims the
        clip to the length it had before padding."""
        chunks = torch.split(z, self.shape.latent_windows(z.shape[1]), dim=1)
        out = torch.cat([self._decode_window(c.permute(0, 4, 1, 2, 3)) for c in chunks], dim=2)
        return out[:, :, :frames] if frames is not None else out

    def _decode_window(self, z: Tensor) -> Tensor:
        h = run_middle(self.mid, self.conv_in(self.post_quant_conv(z)))
        for stage in reversed(self.up):
            h = run_level(stage, h)
        h = self.conv_out(F.silu(self.norm_out(h)))
        return haar_unpatch(h, self.shape.patch_size)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 3, 2, 2, self.in_dim)


def middle(width: int, dropout: float, block: Callable[..., nn.Module] = ResnetBlock,
           attn: Callable[[int], nn.Module] = attention) -> nn.Module:
    """The middle of Cosmos's encoders and decoders: residual block, attention, residual block."""
    mid = nn.Module()
    mid.block_1 = block(width, width, dropout)
    mid.attn_1 = attn(width)
    mid.block_2 = block(width, width, dropout)
    return mid


def run_middle(mid: nn.Module, h: Tensor) -> Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


def run_level(stage: nn.Module, h: Tensor) -> Tensor:
    """One resolution level: its residual blocks (each followed by its attention, where the
    level has attention), then its down- or upsampling, where it has one."""
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    for resample in ("downsample", "upsample"):
        if hasattr(stage, resample):
            h = getattr(stage, resample)(h)
    return h


def _check_size(x: Tensor, spatial: int, channels: int) -> None:
    if x.dim() != 5 or x.shape[1] != channels:
        raise ValueError(f"expected video (B, {channels}, T, H, W), got {tuple(x.shape)}")
    if x.shape[3] % spatial or x.shape[4] % spatial:
        raise ValueError(f"height and width must be multiples of the spatial compression {spatial}, got "
                         f"{x.shape[3]}x{x.shape[4]}; crop or resize the clips (data.crop_size)")
