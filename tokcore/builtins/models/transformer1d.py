"""Transformer encoder and decoder for short trajectories (gaze, camera poses).

The shape of EgoM2P's gaze and camera tokenizers: a strided Conv1d cuts the `(B, T, C)`
track into patches of `patch_size` frames, a learned position embedding marks their order,
transformer blocks mix them, and a linear layer gives the latents. 60 frames with
patch_size 2 give 30 tokens. The decoder mirrors it and unpatchifies with a ConvTranspose1d.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from tokcore.interfaces import Decoder, Encoder, require_dim
from tokcore.nn.embeddings import LearnedPosEmbed1d
from tokcore.nn.lowpass import DCTLowpass
from tokcore.nn.shapes import check_layout, divide
from tokcore.nn.transformer import Transformer, init_weights

_TINY = {"patch_size": 2, "width": 32, "depth": 2, "num_heads": 2, "max_len": 16}


def _check_length(tokens: int, max_len: int, what: str, source: str) -> None:
    if tokens > max_len:
        raise ValueError(f"{what}: {source} {tokens} tokens, more than max_len={max_len}; "
                         f"shorten the sequence or build with a larger max_len")


class Transformer1dEncoder(Encoder):
    """Transformer encoder for trajectories: `(B, T, C)` -> `(B, T/patch_size, out_dim)`.

    T must be a multiple of patch_size, with at most max_len patches.

    Args:
        in_channels: channels C per frame (2 for gaze, 9 or 12 for camera poses).
        out_dim: latent channels per token.
        patch_size: frames per token (the stride of the patchifying Conv1d).
        width: transformer width.
        depth: number of transformer blocks.
        num_heads: attention heads (must divide width).
        mlp_ratio: MLP hidden size as a multiple of width.
        max_len: most tokens a sequence may have (size of the learned position embedding).
    """

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 8}

    def __init__(self, in_channels: int = 2, out_dim: int = 32, patch_size: int = 2, width: int = 384,
                 depth: int = 6, num_heads: int = 6, mlp_ratio: float = 4.0, max_len: int = 64):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.patch_size, self.max_len = patch_size, max_len
        self.patch_embed = nn.Conv1d(in_channels, width, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = LearnedPosEmbed1d(max_len, width)
        self.transformer = Transformer(width, depth, num_heads, mlp_ratio)
        self.head = nn.Linear(width, out_dim)
        self.head.apply(init_weights)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        frames = input_shape[0]
        tokens = divide(frames, self.patch_size, "transformer1d encoder", "T", "patch_size")
        _check_length(tokens, self.max_len, "transformer1d encoder",
                      f"T={frames} with patch_size={self.patch_size} gives")
        return (tokens,)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """`mask`: optional `(B, T/patch_size)` boolean, True for tokens attention may use."""
        check_layout(x, "transformer1d encoder", "BTC", self.in_channels, 2)
        self.token_grid(tuple(x.shape[1:]))
        tokens = self.patch_embed(x.transpose(1, 2)).transpose(1, 2)  # (B, T/p, width)
        return self.head(self.transformer(self.pos_embed(tokens), mask))

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.patch_size * min(self.max_len, 8), self.in_channels)


class Transformer1dDecoder(Decoder):
    """The mirror of `transformer1d` encoder: `(B, L, in_dim)` -> `(B, L * patch_size, C)`.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: channels C per frame.
        patch_size: frames each token decodes to (the stride of the ConvTranspose1d).
        width: transformer width.
        depth: number of transformer blocks.
        num_heads: attention heads (must divide width).
        mlp_ratio: MLP hidden size as a multiple of width.
        max_len: most tokens a sequence may have (size of the learned position embedding).
        lowpass: keep only this many of the lowest DCT frequencies of the output along time
            (`tokcore.nn.lowpass`), so reconstructions are smooth by construction; None: off.
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 8}

    def __init__(self, in_dim: int | None = None, out_channels: int = 2, patch_size: int = 2, width: int = 384,
                 depth: int = 6, num_heads: int = 6, mlp_ratio: float = 4.0, max_len: int = 64,
                 lowpass: int | None = None):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.patch_size, self.max_len = patch_size, max_len
        self.embed = nn.Linear(in_dim, width)
        self.pos_embed = LearnedPosEmbed1d(max_len, width)
        self.transformer = Transformer(width, depth, num_heads, mlp_ratio)
        self.unpatch = nn.ConvTranspose1d(width, out_channels, kernel_size=patch_size, stride=patch_size)
        self.embed.apply(init_weights)
        self.lowpass = DCTLowpass(lowpass) if lowpass is not None else nn.Identity()

    def forward(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """`mask`: optional `(B, L)` boolean, True for tokens attention may use."""
        check_layout(z, "transformer1d decoder", "BLD", self.in_dim, 2)
        _check_length(z.shape[1], self.max_len, "transformer1d decoder", "got")
        tokens = self.transformer(self.pos_embed(self.embed(z)), mask)
        return self.lowpass(self.unpatch(tokens.transpose(1, 2)).transpose(1, 2))

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, min(self.max_len, 8), self.in_dim)
