"""`fourm_vit`: the ViT encoder and decoder of 4M's VQ-VAE tokenizers (Mizrahi et al., "4M:
Massively Multimodal Masked Modeling", 2023; `fourm/vq/models/vit_models.py`), with 4M's module
names, so a Hub folder's `model.safetensors` loads by name (`tokcore import 4m`).

It differs from core's `vit` where 4M's weights depend on it: the patch embedding is a strided
Conv2d (`proj`), the position embedding a `(1, D, h, w)` map (2D sine-cosine, fixed, by default)
resized bicubically to other grids, an optional tanh MLP after the blocks (`post_mlp`, from
ViT-VQGAN), and the 1x1 convolutions to and from the quantized width (`quant_proj`,
`post_quant_proj`) belong to the encoder and decoder here. The decoder may end in two ConvNeXt
blocks on the pixels (`out_conv`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.api import ConfigError, Decoder, Encoder, require_dim

_TINY = {"image_size": 16, "patch_size": 8, "dim_tokens": 16, "depth": 1, "num_heads": 2}


def sincos_pos_emb(h: int, w: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """4M's (MoCo v3's) 2D sine-cosine embedding, `(1, dim, h, w)`. Its grid is built with
    width first, as 4M's is, so the map is the transpose of the usual one on non-square grids."""
    if dim % 4:
        raise ConfigError(f"must be divisible by 4 for the sine-cosine position embedding, got {dim}", key="dim_tokens")
    grid_w, grid_h = torch.meshgrid(torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32),
                                    indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out_w, out_h = grid_w.flatten()[:, None] * omega, grid_h.flatten()[:, None] * omega
    emb = torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)
    return emb.reshape(h, w, dim).permute(2, 0, 1)[None].contiguous()


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads, qkv_bias)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, pointwise MLP, layer scale, residual (on the pixels)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        return x + (self.gamma * self.pwconv2(self.act(self.pwconv1(h)))).permute(0, 3, 1, 2)


class _Trunk(nn.Module):
    """Position embedding, transformer blocks and the optional post-MLP, shared by both sides
    (attributes of the encoder and decoder themselves, named as 4M names them)."""

    def build_trunk(self, image_size: int, patch_size: int, dim_tokens: int, depth: int, num_heads: int,
                    mlp_ratio: float, qkv_bias: bool, post_mlp: bool, learnable_pos_emb: bool) -> None:
        if image_size % patch_size:
            raise ConfigError(f"{image_size} is not a multiple of patch_size {patch_size}", key="image_size")
        if dim_tokens % num_heads:
            raise ConfigError(f"{num_heads} heads do not divide dim_tokens {dim_tokens}", key="num_heads")
        side = image_size // patch_size
        self.pos_emb = nn.Parameter(sincos_pos_emb(side, side, dim_tokens), requires_grad=learnable_pos_emb)
        self.blocks = nn.Sequential(*[_Block(dim_tokens, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        if post_mlp:
            self.norm_mlp = nn.LayerNorm(dim_tokens, eps=1e-6)
            self.post_mlp = _Mlp(dim_tokens, int(mlp_ratio * dim_tokens), act=nn.Tanh)

    def transform(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """Tokens `(B, h*w, D)` of a `grid` through the position embedding and the blocks."""
        pos = F.interpolate(self.pos_emb, size=grid, mode="bicubic", align_corners=False)
        x = self.blocks(x + pos.flatten(2).transpose(1, 2))
        if hasattr(self, "post_mlp"):
            x = x.float() + self.post_mlp(self.norm_mlp(x.float()))
        return x


_ARGS = """
        image_size: image side the position embedding is built for (resized for other sizes).
        patch_size: side of a square patch; one token per patch.
        dim_tokens: transformer width (4M: ViT-S 512, ViT-B 768, ViT-L 1024).
        depth: transformer blocks (4M: 8, 12, 24).
        num_heads: attention heads (4M: 8, 12, 16).
        mlp_ratio: MLP hidden size as a multiple of the width.
        qkv_bias: biases on the query, key and value projections (4M: true).
        post_mlp: a LayerNorm and tanh MLP after the blocks (ViT-VQGAN's), with a residual.
        learnable_pos_emb: train the position embedding (4M: false, sine-cosine)."""


class FourMViTEncoder(_Trunk, Encoder):
    """4M's ViT encoder and its 1x1 projection to the quantized width: `(B, C, H, W)` ->
    `(B, H/p, W/p, latent_dim)`.

    Args:
        in_channels: input channels.
        latent_dim: width of the latents it emits (4M: 32)."""

    __doc__ += _ARGS
    example_config: ClassVar[dict] = {**_TINY, "latent_dim": 4, "post_mlp": True}

    def __init__(self, in_channels: int = 3, latent_dim: int = 32, image_size: int = 224, patch_size: int = 16,
                 dim_tokens: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, post_mlp: bool = False, learnable_pos_emb: bool = False):
        super().__init__()
        self.in_channels, self.out_dim, self.patch_size = in_channels, latent_dim, patch_size
        self.proj = nn.Conv2d(in_channels, dim_tokens, patch_size, stride=patch_size)
        self.build_trunk(image_size, patch_size, dim_tokens, depth, num_heads, mlp_ratio, qkv_bias, post_mlp,
                         learnable_pos_emb)
        self.quant_proj = nn.Conv2d(dim_tokens, latent_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] % self.patch_size or x.shape[-2] % self.patch_size:
            raise ValueError(f"expected images (B, {self.in_channels}, H, W) with H and W multiples of "
                             f"{self.patch_size}, got {tuple(x.shape)}")
        tokens = self.proj(x)
        grid = tokens.shape[-2:]
        h = self.transform(tokens.flatten(2).transpose(1, 2), grid)
        h = h.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        return self.quant_proj(h).permute(0, 2, 3, 1)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape[-2] // self.patch_size, input_shape[-1] // self.patch_size

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.in_channels, 2 * self.patch_size, 2 * self.patch_size)


class FourMViTDecoder(_Trunk, Decoder):
    """4M's 1x1 projection from the quantized width and ViT decoder: `(B, h, w, in_dim)` ->
    `(B, C, h*p, w*p)`, optionally ending in two ConvNeXt blocks on the pixels.

    Args:
        in_dim: width of the latents (default: the quantizer's dim).
        out_channels: output channels.
        out_conv: two ConvNeXt blocks after unpatchifying (against patch artifacts)."""

    __doc__ += _ARGS
    example_config: ClassVar[dict] = {**_TINY, "in_dim": 4, "post_mlp": True, "out_conv": True}

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, image_size: int = 224, patch_size: int = 16,
                 dim_tokens: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, post_mlp: bool = False, learnable_pos_emb: bool = False,
                 out_conv: bool = False):
        super().__init__()
        self.in_dim, self.out_channels, self.patch_size = require_dim(in_dim, "in_dim"), out_channels, patch_size
        self.post_quant_proj = nn.Conv2d(self.in_dim, dim_tokens, 1)
        self.build_trunk(image_size, patch_size, dim_tokens, depth, num_heads, mlp_ratio, qkv_bias, post_mlp,
                         learnable_pos_emb)
        self.out_proj = nn.Linear(dim_tokens, out_channels * patch_size ** 2)
        if out_conv:
            self.out_conv = nn.Sequential(_ConvNeXtBlock(out_channels), _ConvNeXtBlock(out_channels))

    def forward(self, z: Tensor, **cond: Any) -> Tensor:
        b, h, w, _ = z.shape
        x = self.post_quant_proj(z.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
        x = self.out_proj(self.transform(x, (h, w)))
        p, c = self.patch_size, self.out_channels
        x = x.reshape(b, h, w, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h * p, w * p)
        return self.out_conv(x) if hasattr(self, "out_conv") else x

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, 2, 2, self.in_dim)
