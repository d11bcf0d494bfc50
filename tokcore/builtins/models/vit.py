"""Vision Transformer encoder and decoder for images, usable at any resolution.

Encoder: patchify, linear to `width`, add the 2D position embedding, transformer blocks,
linear to `out_dim`. Decoder: the mirror, ending in a linear unpatchify to pixels. The
position embedding is built for `image_size` and resized for other grids (see
`embeddings.PosEmbed2d`), so a model trained at 256 px runs at 384 px or 128 x 192 px.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from tokcore.interfaces import Decoder, Encoder, require_dim
from tokcore.nn.embeddings import PosEmbed2d
from tokcore.nn.patch import patchify, unpatchify
from tokcore.nn.shapes import check_layout, divide
from tokcore.nn.transformer import Transformer, init_weights

_TINY = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 2, "num_heads": 2}


def _grid(image_size: int, patch_size: int, what: str) -> tuple[int, int]:
    side = divide(image_size, patch_size, what, "image_size", "patch_size")
    return side, side


class ViTEncoder(Encoder):
    """ViT encoder: `(B, C, H, W)` -> `(B, H/p, W/p, out_dim)`, H and W multiples of p.

    Args:
        in_channels: image channels C.
        out_dim: latent channels per token.
        image_size: side of the square images the position embedding is built for; other
            sizes are handled by resizing it.
        patch_size: side p of a square patch; one token per patch.
        width: transformer width.
        depth: number of transformer blocks.
        num_heads: attention heads (must divide width).
        mlp_ratio: MLP hidden size as a multiple of width.
        pos_embed: "learned" (interpolated to other grids) or "sincos" (fixed).
    """

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 8}

    def __init__(self, in_channels: int = 3, out_dim: int = 32, image_size: int = 256, patch_size: int = 16,
                 width: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 pos_embed: Literal["learned", "sincos"] = "learned"):
        super().__init__()
        self.in_channels, self.out_dim = in_channels, out_dim
        self.image_size, self.patch_size = image_size, patch_size
        self.patch_embed = nn.Linear(in_channels * patch_size**2, width)
        self.pos_embed = PosEmbed2d(_grid(image_size, patch_size, "vit encoder"), width, pos_embed == "learned")
        self.transformer = Transformer(width, depth, num_heads, mlp_ratio)
        self.head = nn.Linear(width, out_dim)
        self.patch_embed.apply(init_weights)
        self.head.apply(init_weights)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, h, w = input_shape
        p = self.patch_size
        return divide(h, p, "vit encoder", "H", "patch_size"), divide(w, p, "vit encoder", "W", "patch_size")

    def forward(self, x: Tensor) -> Tensor:
        check_layout(x, "vit encoder", "BCHW", self.in_channels, 1)
        h, w = self.token_grid(tuple(x.shape[1:]))
        tokens = self.pos_embed(self.patch_embed(patchify(x, self.patch_size)))  # (B, h, w, width)
        tokens = self.transformer(tokens.flatten(1, 2))
        return self.head(tokens).unflatten(1, (h, w))

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.in_channels, self.image_size, self.image_size)


class ViTDecoder(Decoder):
    """The mirror of the ViT encoder: `(B, h, w, in_dim)` -> `(B, C, h*p, w*p)`.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: image channels C.
        image_size: side of the square images the position embedding is built for; other
            token grids are handled by resizing it.
        patch_size: side p of the square patch each token decodes to.
        width: transformer width.
        depth: number of transformer blocks.
        num_heads: attention heads (must divide width).
        mlp_ratio: MLP hidden size as a multiple of width.
        pos_embed: "learned" (interpolated to other grids) or "sincos" (fixed).
    """

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 8}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, image_size: int = 256, patch_size: int = 16,
                 width: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 pos_embed: Literal["learned", "sincos"] = "learned"):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.image_size, self.patch_size = image_size, patch_size
        self.grid = _grid(image_size, patch_size, "vit decoder")
        self.embed = nn.Linear(in_dim, width)
        self.pos_embed = PosEmbed2d(self.grid, width, pos_embed == "learned")
        self.transformer = Transformer(width, depth, num_heads, mlp_ratio)
        self.to_pixels = nn.Linear(width, out_channels * patch_size**2)
        self.embed.apply(init_weights)
        self.to_pixels.apply(init_weights)

    def forward(self, z: Tensor) -> Tensor:
        check_layout(z, "vit decoder", "BHWD", self.in_dim, 3)
        h, w = z.shape[1:3]
        tokens = self.pos_embed(self.embed(z))
        tokens = self.transformer(tokens.flatten(1, 2)).unflatten(1, (h, w))
        return unpatchify(self.to_pixels(tokens), self.patch_size, self.out_channels)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, *self.grid, self.in_dim)
