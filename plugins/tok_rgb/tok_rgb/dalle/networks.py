"""`dalle`: the discrete VAE of OpenAI's DALL-E (Ramesh et al., "Zero-Shot Text-to-Image
Generation", 2021), with the module names of its released `encoder.pkl` / `decoder.pkl`, so
their tensors load by name (`tokcore import dalle`; `tok_rgb.dalle.importer`).

The encoder maps an image to logits over 8192 codes at 1/8 of its size and takes the argmax
(as DALL-E and VIMPAC do at inference); the decoder maps the codes back and returns the mean of
its logit-Laplace output, `sigmoid` of the first three channels. Both work in DALL-E's pixel
mapping: [0, 1] squeezed into [0.1, 0.9] (`map_pixels`), which the `rgb`/`video` modality does
with mean -31.875 and std 318.75 on 0-255 pixels, and undoes (with the clamp of
`unmap_pixels`) when decoding. Videos are coded frame by frame, `chunk` frames at a time, so
the 8192-wide logits of a long clip are never held at once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.api import ConfigError, DiscreteDecoder, DiscreteEncoder, Tokens

GROUPS = 4  # resolution groups; each but the last halves (encoder) or doubles (decoder) the size


class _Conv(nn.Module):
    """DALL-E's convolution: weights `w`, bias `b`, 'same' padding."""

    def __init__(self, n_in: int, n_out: int, kw: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw) / (n_in * kw * kw) ** 0.5)
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.w, self.b, padding=(self.w.shape[-1] - 1) // 2)


class _Block(nn.Module):
    """`id_path(x) + res_path(x) / n_layers**2`; the residual path has a quarter of the width."""

    def __init__(self, n_in: int, n_out: int, n_layers: int, kernels: tuple[int, int, int, int]):
        super().__init__()
        hid = n_out // 4
        self.id_path = _Conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        widths = [n_in, hid, hid, hid, n_out]
        self.res_path = nn.Sequential()
        for i, kw in enumerate(kernels):
            self.res_path.add_module(f"relu_{i + 1}", nn.ReLU())
            self.res_path.add_module(f"conv_{i + 1}", _Conv(widths[i], widths[i + 1], kw))
        self.post_gain = 1.0 / n_layers ** 2

    def forward(self, x: Tensor) -> Tensor:
        return self.id_path(x) + self.post_gain * self.res_path(x)


def _check(n_hid: int, n_blk_per_group: int, vocab_size: int) -> None:
    for key, value in (("n_hid", n_hid), ("n_blk_per_group", n_blk_per_group), ("vocab_size", vocab_size)):
        if value < 1:
            raise ConfigError(f"must be at least 1, got {value}", key=key)
    if n_hid % 4:
        raise ConfigError(f"must be a multiple of 4 (blocks use a quarter of the width), got {n_hid}", key="n_hid")


def _frames(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Images `(B, C, H, W)` as they are; video `(B, C, T, H, W)` as `(B*T, C, H, W)` frames."""
    if x.dim() == 4:
        return x, (x.shape[0],)
    if x.dim() == 5:
        return x.transpose(1, 2).flatten(0, 1), (x.shape[0], x.shape[2])
    raise ValueError(f"expected images (B, C, H, W) or video (B, C, T, H, W), got {tuple(x.shape)}")


class DalleEncoder(DiscreteEncoder):
    """DALL-E's dVAE encoder: a 7x7 conv, four groups of residual blocks (widths 1, 2, 4, 8 x
    n_hid, max-pooling between them: 8x downsampling) and a 1x1 conv to logits over the codes,
    whose argmax is the token. Images `(B, 3, H, W)` or video `(B, 3, T, H, W)` (frame by frame).

    Args:
        n_hid: base width (DALL-E: 256).
        n_blk_per_group: residual blocks per group (DALL-E: 2).
        input_channels: channels of the input (3 for RGB).
        vocab_size: number of codes (DALL-E: 8192).
        chunk: frames encoded at once (bounds the memory of the logits)."""

    example_config: ClassVar[dict] = {"n_hid": 8, "n_blk_per_group": 1, "vocab_size": 32}

    def __init__(self, n_hid: int = 256, n_blk_per_group: int = 2, input_channels: int = 3, vocab_size: int = 8192,
                 chunk: int = 16):
        super().__init__()
        _check(n_hid, n_blk_per_group, vocab_size)
        self.input_channels, self.codebook_size, self.chunk = input_channels, vocab_size, max(1, chunk)
        n_layers = GROUPS * n_blk_per_group
        widths = [n_hid * m for m in (1, 2, 4, 8)]
        groups = [("input", _Conv(input_channels, n_hid, 7))]
        width = n_hid
        for g, out in enumerate(widths):
            group = nn.Sequential()
            for i in range(n_blk_per_group):
                group.add_module(f"block_{i + 1}", _Block(width, out, n_layers, (3, 3, 3, 1)))
                width = out
            if g < GROUPS - 1:
                group.add_module("pool", nn.MaxPool2d(2))
            groups.append((f"group_{g + 1}", group))
        output = nn.Sequential()
        output.add_module("relu", nn.ReLU())
        output.add_module("conv", _Conv(width, vocab_size, 1))
        groups.append(("output", output))
        self.blocks = nn.Sequential()
        for name, module in groups:
            self.blocks.add_module(name, module)

    def logits(self, images: Tensor) -> Tensor:
        """`(N, C, H, W)` mapped pixels -> `(N, vocab_size, H/8, W/8)`."""
        return self.blocks(images.float())

    def forward(self, x: Tensor) -> Tokens:
        frames, lead = _frames(x)
        if frames.shape[1] != self.input_channels or frames.shape[-1] % 8 or frames.shape[-2] % 8:
            raise ValueError(f"expected {self.input_channels} channels and a height and width divisible by 8, "
                             f"got {tuple(x.shape)}")
        indices = torch.cat([self.logits(c).argmax(1) for c in frames.split(self.chunk)])
        return Tokens(indices=indices.reshape(*lead, *indices.shape[1:]))

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The grid of `input_shape` (C, [T,] H, W); of the example input when it is ()."""
        shape = tuple(input_shape) or tuple(self.example_input(1).shape[1:])
        *time, h, w = shape[1:]
        return (*time, h // 8, w // 8)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.rand(batch_size, self.input_channels, 16, 16) * 0.8 + 0.1


class DalleDecoder(DiscreteDecoder):
    """DALL-E's dVAE decoder: codes (a 1x1 conv of their one-hot vectors, here a lookup of the
    same weights), four groups of residual blocks (widths 8, 4, 2, 1 x n_hid, nearest 2x
    upsampling between them) and a 1x1 conv to logit-Laplace parameters; returns the mean,
    sigmoid of the first `output_channels`. Token grids `(B, h, w)` or `(B, T, h, w)`.

    Args:
        n_init: width of the code embedding (DALL-E: 128).
        n_hid: base width (DALL-E: 256).
        n_blk_per_group: residual blocks per group (DALL-E: 2).
        output_channels: channels of the output (3 for RGB).
        vocab_size: number of codes (DALL-E: 8192).
        chunk: frames decoded at once."""

    example_config: ClassVar[dict] = {"n_init": 8, "n_hid": 8, "n_blk_per_group": 1, "vocab_size": 32}

    def __init__(self, n_init: int = 128, n_hid: int = 256, n_blk_per_group: int = 2, output_channels: int = 3,
                 vocab_size: int = 8192, chunk: int = 16):
        super().__init__()
        _check(n_hid, n_blk_per_group, vocab_size)
        self.output_channels, self.vocab_size, self.chunk = output_channels, vocab_size, max(1, chunk)
        n_layers = GROUPS * n_blk_per_group
        width = n_init
        groups: list[tuple[str, nn.Module]] = [("input", _Conv(vocab_size, n_init, 1))]
        for g, out in enumerate(n_hid * m for m in (8, 4, 2, 1)):
            group = nn.Sequential()
            for i in range(n_blk_per_group):
                group.add_module(f"block_{i + 1}", _Block(width, out, n_layers, (1, 3, 3, 3)))
                width = out
            if g < GROUPS - 1:
                group.add_module("upsample", nn.Upsample(scale_factor=2, mode="nearest"))
            groups.append((f"group_{g + 1}", group))
        output = nn.Sequential()
        output.add_module("relu", nn.ReLU())
        output.add_module("conv", _Conv(width, 2 * output_channels, 1))
        groups.append(("output", output))
        self.blocks = nn.Sequential()
        for name, module in groups:
            self.blocks.add_module(name, module)

    def decode_frames(self, indices: Tensor) -> Tensor:
        """`(N, h, w)` codes -> `(N, C, 8h, 8w)` in DALL-E's mapped pixel space."""
        first = self.blocks.input  # a 1x1 conv of a one-hot vector is a column of its weights
        x = F.embedding(indices.long(), first.w.flatten(1).t()) + first.b
        x = x.permute(0, 3, 1, 2)
        for name, module in self.blocks.named_children():
            if name != "input":
                x = module(x)
        return torch.sigmoid(x[:, : self.output_channels])

    def forward(self, indices: Tensor, mask: Tensor | None = None, **cond: Any) -> Tensor:
        lead = indices.shape[:-2]
        frames = indices.reshape(-1, *indices.shape[-2:])
        out = torch.cat([self.decode_frames(c) for c in frames.split(self.chunk)])
        out = out.reshape(*lead, *out.shape[1:])
        return out.transpose(1, 2) if len(lead) == 2 else out  # video: (B, C, T, H, W)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randint(0, self.vocab_size, (batch_size, 2, 2))
