"""The causal 3-D layers of NVIDIA's Cosmos tokenizers (Agarwal et al., "Cosmos World Foundation
Model Platform", 2025), written for tokcore with the module names of the released checkpoints,
so their tensors load by name.

Causal in time: a temporal kernel of size k sees the current frame and the k - 1 before it,
and the clip's first frame stands in for the frames before the clip. Convolutions are
factorized into a spatial (1, 3, 3) and a temporal (3, 1, 1) one; normalization is a
GroupNorm of one group over each frame; attention is factorized into spatial attention
within each frame and causal temporal attention at each position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _first_frame_pad(x: Tensor, frames: int) -> Tensor:
    """`frames` copies of the first frame before the clip: what a causal kernel sees before it."""
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2) if frames else x


class CausalConv3d(nn.Module):
    """A Conv3d padded causally in time (first frame repeated) and with zeros in space."""

    def __init__(self, chan_in: int, chan_out: int, kernel_size: int | tuple[int, int, int] = 3,
                 stride: int = 1, time_stride: int = 1, padding: int = 1):
        super().__init__()
        kt, kh, kw = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * 3
        self.time_pad = (kt - 1) + (1 - time_stride)
        self.conv3d = nn.Conv3d(chan_in, chan_out, (kt, kh, kw), stride=(time_stride, stride, stride),
                                padding=(0, padding, padding))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3d(_first_frame_pad(x, self.time_pad))


def factorized_conv(chan_in: int, chan_out: int) -> nn.Sequential:
    """A 3x3 spatial convolution, then a causal temporal convolution of 3 frames."""
    return nn.Sequential(CausalConv3d(chan_in, chan_out, (1, 3, 3), padding=1),
                         CausalConv3d(chan_out, chan_out, (3, 1, 1), padding=0))


def pointwise(chan_in: int, chan_out: int) -> CausalConv3d:
    return CausalConv3d(chan_in, chan_out, 1, padding=0)


class CausalNormalize(nn.Module):
    """GroupNorm with one group over each frame on its own (so the past never sees the future)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, eps=1e-6, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.norm(frames).reshape(b, t, c, h, w).transpose(1, 2)


class ResnetBlock(nn.Module):
    """norm, swish, conv, twice; a pointwise shortcut where the width changes. The video
    networks' layers by default; the image networks pass their 2-D ones."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0,
                 norm: Callable[[int], nn.Module] = CausalNormalize,
                 conv: Callable[[int, int], nn.Module] = factorized_conv,
                 shortcut: Callable[[int, int], nn.Module] = pointwise):
        super().__init__()
        self.norm1 = norm(in_channels)
        self.conv1 = conv(in_channels, out_channels)
        self.norm2 = norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(out_channels, out_channels)
        self.nin_shortcut = shortcut(in_channels, out_channels) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x) + h


class Attention(nn.Module):
    """The parameters of Cosmos's single-head attention blocks: a norm, pointwise q, k, v and
    output projections (the subclasses say among which positions it attends)."""

    def __init__(self, channels: int, norm: Callable[[int], nn.Module] = CausalNormalize,
                 proj: Callable[[int, int], nn.Module] = pointwise):
        super().__init__()
        self.norm = norm(channels)
        self.q, self.k, self.v = proj(channels, channels), proj(channels, channels), proj(channels, channels)
        self.proj_out = proj(channels, channels)


class SpatialAttention(Attention):
    """Single-head attention among the positions of each frame."""

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, t, hh, ww = x.shape

        def tokens(y: Tensor) -> Tensor:  # (B*T, H*W, C)
            return y.permute(0, 2, 3, 4, 1).reshape(b * t, hh * ww, c)

        out = F.scaled_dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)))
        return x + self.proj_out(out.reshape(b, t, hh, ww, c).permute(0, 4, 1, 2, 3))


class TemporalAttention(Attention):
    """Single-head causal attention along time at each position: a frame sees itself and the past."""

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        b, c, t, hh, ww = x.shape

        def tokens(y: Tensor) -> Tensor:  # (B*H*W, T, C)
            return y.permute(0, 3, 4, 2, 1).reshape(b * hh * ww, t, c)

        out = F.scaled_dot_product_attention(tokens(self.q(h)), tokens(self.k(h)), tokens(self.v(h)), is_causal=True)
        return x + self.proj_out(out.reshape(b, hh, ww, t, c).permute(0, 4, 3, 1, 2))


def attention(channels: int) -> nn.Sequential:
    """Spatial, then causal temporal attention (Cosmos's factorized attention block)."""
    return nn.Sequential(SpatialAttention(channels), TemporalAttention(channels))


class HybridDownsample(nn.Module):
    """Halves H and W (strided conv plus average pooling) and/or T (causally: the first frame
    is repeated once, so 1 + 2k frames become 1 + k), then a 1x1x1 conv; the identity when
    neither is asked for."""

    def __init__(self, channels: int, spatial: bool, temporal: bool):
        super().__init__()
        self.conv1 = CausalConv3d(channels, channels, (1, 3, 3), stride=2, padding=0)
        self.conv2 = CausalConv3d(channels, channels, (3, 1, 1), time_stride=2, padding=0)
        self.conv3 = pointwise(channels, channels)
        self.spatial, self.temporal = spatial, temporal

    def forward(self, x: Tensor) -> Tensor:
        if not (self.spatial or self.temporal):
            return x
        if self.spatial:
            x = F.pad(x, (0, 1, 0, 1, 0, 0))
            x = self.conv1(x) + F.avg_pool3d(x, (1, 2, 2), (1, 2, 2))
        if self.temporal:
            x = _first_frame_pad(x, 1)
            x = self.conv2(x) + F.avg_pool3d(x, (2, 1, 1), (2, 1, 1))
        return self.conv3(x)


class HybridUpsample(nn.Module):
    """Doubles T (1 + k frames become 1 + 2k: the first is not repeated) and/or H and W by
    repetition, each followed by a residual conv, then a 1x1x1 conv; the identity when
    neither is asked for."""

    def __init__(self, channels: int, spatial: bool, temporal: bool):
        super().__init__()
        self.conv1 = CausalConv3d(channels, channels, (3, 1, 1), padding=0)
        self.conv2 = CausalConv3d(channels, channels, (1, 3, 3), padding=1)
        self.conv3 = pointwise(channels, channels)
        self.spatial, self.temporal = spatial, temporal

    def forward(self, x: Tensor) -> Tensor:
        if not (self.spatial or self.temporal):
            return x
        if self.temporal:
            if x.shape[2] > 1:  # the first frame stays single
                x = x.repeat_interleave(2, dim=2)[:, :, 1:]
            x = self.conv1(x) + x
        if self.spatial:
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
            x = self.conv2(x) + x
        return self.conv3(x)
