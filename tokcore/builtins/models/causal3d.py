"""Causal 3D-conv video encoder and decoder (`causal3d`), in the manner of Cosmos' DV4x8x8.

The VQ-VAE trunk of `resnet` built with time-causal layers: every convolution pads time on
the past side only (with copies of the first frame), normalization is per frame and the
optional attention (within frames, then along time) lets a frame see only itself and
earlier frames. So a latent never
depends on later frames, and the first frame is coded alone: a clip of T = 1 + t*k frames
gives 1 + k latent frames (t the temporal compression), and a single image (T = 1) is a
valid input whose latents equal the first latent frame of any clip starting with it. One
model serves images and videos.

Temporal halving happens at the first log2(t) resolution changes (Cosmos does the same);
a causal stride-2 conv maps 1 + 2m frames to 1 + m. Upsampling repeats each frame twice and
drops the first copy, mapping 1 + m frames back to 1 + 2m.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.interfaces import Decoder, Encoder, require_dim
from tokcore.nn.blocks import Layers, group_norm
from tokcore.nn.resnet import ResNetDown, ResNetUp, check_channel_mult
from tokcore.nn.shapes import check_layout, divide
from tokcore.nn.transformer import Attention

_TINY = {"base_channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "temporal_compression": 2}


class CausalConv3d(nn.Module):
    """A Conv3d whose output at time t sees input frames <= t only.

    Time is padded with `kernel_t - 1` copies of the first frame before it (none after);
    height and width are zero-padded to keep their size (at stride 1).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int] | int,
                 stride: tuple[int, int, int] | int = 1):
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(in_channels, out_channels, (kt, kh, kw), stride=stride, padding=(0, kh // 2, kw // 2))

    def forward(self, x: Tensor) -> Tensor:
        if self.time_pad:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.time_pad, -1, -1), x], dim=2)
        return self.conv(x)


class FrameGroupNorm(nn.Module):
    """GroupNorm over each frame on its own: statistics never mix frames (that would leak the future)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.norm(frames).reshape(b, t, c, h, w).transpose(1, 2)


class CausalSelfAttention3d(nn.Module):
    """Residual factorized self-attention over `(B, C, T, H, W)`, as Cosmos does: first among
    the positions of each frame, then along time at each position, a frame attending to
    itself and earlier frames only. Cost grows with (H*W)^2 and T^2, not (T*H*W)^2."""

    def __init__(self, channels: int, num_heads: int = 1):
        super().__init__()
        self.spatial_norm = FrameGroupNorm(channels)
        self.spatial = Attention(channels, num_heads)
        self.temporal_norm = FrameGroupNorm(channels)
        self.temporal = Attention(channels, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = self.spatial_norm(x).permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        x = x + self.spatial(frames).reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        tracks = self.temporal_norm(x).permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        past = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()  # query i sees keys j <= i
        return x + self.temporal(tracks, pairs=past).reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)


class CausalDownsample3d(nn.Module):
    """Halves H and W (stride-2 conv), and time too when `temporal` (causal stride-2 conv: 1 + 2m -> 1 + m)."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.spatial = nn.Conv3d(channels, channels, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.temporal = CausalConv3d(channels, channels, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.spatial(x)
        return self.temporal(x) if self.temporal is not None else x


class CausalUpsample3d(nn.Module):
    """Doubles H and W, and time too when `temporal` (each frame twice, the first copy of
    frame 0 dropped: 1 + m -> 1 + 2m), then a causal 3x3x3 conv."""

    def __init__(self, channels: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        self.conv = CausalConv3d(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        if self.temporal:
            x = x.repeat_interleave(2, dim=2)[:, :, 1:]
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return self.conv(x)


def causal_layers(temporal_halvings: int) -> Layers:
    """Time-causal layers; the first `temporal_halvings` resolution changes also halve time."""
    return Layers(
        conv=lambda cin, cout, k: CausalConv3d(cin, cout, k),
        norm=FrameGroupNorm,
        attention=CausalSelfAttention3d,
        downsample=lambda ch, transition: CausalDownsample3d(ch, transition < temporal_halvings),
        upsample=lambda ch, transition: CausalUpsample3d(ch, transition < temporal_halvings),
    )


def _temporal_halvings(temporal_compression: int, channel_mult: list[int], what: str) -> int:
    halvings = int(math.log2(temporal_compression)) if temporal_compression >= 1 else -1
    if halvings < 0 or 2**halvings != temporal_compression or halvings > len(channel_mult) - 1:
        raise ValueError(f"{what}: temporal_compression must be a power of two from 1 to the spatial factor "
                         f"{2 ** (len(channel_mult) - 1)} (one halving per resolution change), got {temporal_compression}")
    return halvings


def latent_frames(frames: int, temporal_compression: int, what: str) -> int:
    """1 + k latent frames for T = 1 + temporal_compression * k frames, or a ValueError."""
    if frames < 1 or (frames - 1) % temporal_compression:
        t = temporal_compression
        raise ValueError(f"{what}: T={frames} frames, but a causal video tokenizer with temporal_compression={t} "
                         f"needs T = 1 + {t}k ({', '.join(str(1 + t * k) for k in range(4))}, ...); "
                         f"trim the clip to {1 + t * max(0, (frames - 1) // t)} frames")
    return 1 + (frames - 1) // temporal_compression


class Causal3dEncoder(Encoder):
    """Causal 3D-conv video encoder: `(B, C, T, H, W)` -> `(B, 1 + (T-1)/t, H/f, W/f, out_dim)`.

    f = 2^(len(channel_mult) - 1) is the spatial factor and t = `temporal_compression` the
    temporal one (4 and [1, 2, 2, 4] give Cosmos' 4x8x8). T must be 1 + t*k (T = 1: an image);
    H and W multiples of f. Latent frame j depends on input frames <= t*j only.

    Args:
        in_channels: video channels C.
        out_dim: latent channels per token.
        base_channels: channels of the first resolution level.
        channel_mult: channel multiplier of base_channels at each resolution level; height
            and width are halved between consecutive levels.
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: causal self-attention (within frames, then along time) between the
            two ResNet blocks at the lowest resolution.
        temporal_compression: frames per latent frame after the first (a power of two, at
            most the spatial factor); time is halved at the first resolution changes.
    """

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 4}

    def __init__(self, in_channels: int = 3, out_dim: int = 16, base_channels: int = 128,
                 channel_mult: list[int] = (1, 2, 2, 4), num_res_blocks: int = 2, mid_attention: bool = True,
                 temporal_compression: int = 4):
        super().__init__()
        check_channel_mult(list(channel_mult), "causal3d encoder")
        halvings = _temporal_halvings(temporal_compression, list(channel_mult), "causal3d encoder")
        self.in_channels, self.out_dim = in_channels, out_dim
        self.temporal_compression = temporal_compression
        self.body = ResNetDown(causal_layers(halvings), in_channels, out_dim, base_channels, list(channel_mult),
                               num_res_blocks, mid_attention)
        self.downsample = self.body.factor

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, t, h, w = input_shape
        f, what = self.downsample, "causal3d encoder"
        return (latent_frames(t, self.temporal_compression, what),
                divide(h, f, what, "H", "downsample"), divide(w, f, what, "W", "downsample"))

    def forward(self, x: Tensor) -> Tensor:
        check_layout(x, "causal3d encoder", "BCTHW", self.in_channels, 1)
        self.token_grid(tuple(x.shape[1:]))
        return self.body(x).permute(0, 2, 3, 4, 1)

    def example_input(self, batch_size: int = 2) -> Tensor:
        side = max(8, 2 * self.downsample)
        return torch.randn(batch_size, self.in_channels, 1 + 2 * self.temporal_compression, side, side)


class Causal3dDecoder(Decoder):
    """The mirror of `causal3d` encoder: `(B, 1 + k, h, w, in_dim)` -> `(B, C, 1 + t*k, h*f, w*f)`.

    Output frames 1 + t*(j-1) ... t*j come from latent frames <= j, so decoding is causal too.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: video channels C.
        base_channels: channels of the last (full-resolution) level.
        channel_mult: channel multiplier per resolution level, listed from full resolution
            down, as for the encoder; f is 2^(len(channel_mult) - 1).
        num_res_blocks: ResNet blocks per resolution level.
        mid_attention: causal self-attention (within frames, then along time) between the
            two ResNet blocks at the lowest resolution.
        temporal_compression: output frames per latent frame after the first, as for the encoder.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 4}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, base_channels: int = 128,
                 channel_mult: list[int] = (1, 2, 2, 4), num_res_blocks: int = 2, mid_attention: bool = True,
                 temporal_compression: int = 4):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        check_channel_mult(list(channel_mult), "causal3d decoder")
        halvings = _temporal_halvings(temporal_compression, list(channel_mult), "causal3d decoder")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.temporal_compression = temporal_compression
        self.body = ResNetUp(causal_layers(halvings), in_dim, out_channels, base_channels, list(channel_mult),
                             num_res_blocks, mid_attention)
        self.upsample = self.body.factor

    def forward(self, z: Tensor) -> Tensor:
        check_layout(z, "causal3d decoder", "BTHWD", self.in_dim, 4)
        return self.body(z.permute(0, 4, 1, 2, 3))

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 3, 2, 2, self.in_dim)
