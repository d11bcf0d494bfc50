"""TiTok: a 1D tokenizer for images and video whose token count is chosen per sample.

Encoder (Yu et al., 2024, "An Image is Worth 32 Tokens"; TiTok-Video): the input is cut into
patches, `num_tokens` learnable latent tokens are appended, a transformer reads both, and only
the latent tokens are kept, projected to the quantizer's width. Decoder: the quantized tokens
are appended to one learned mask token per patch of the requested output grid; a transformer
reads both, and the mask tokens' outputs are projected back to pixels.

Positions are rotary over (t, h, w) for the patches and 1D after them for the latent tokens
(M-RoPE, `tokcore.nn.rope`), so there is no position table: a model trained at one size
encodes and decodes any size that is a multiple of the patch, and any frame count that is a
multiple of the temporal patch, with nothing interpolated.

Token count (TiTok-Video's way): the encoder reads the first k of its `max_tokens` latent
tokens, k chosen per sample (`num_tokens`); a batch with several k is padded to the largest
and the padding masked out of attention. `forward_packed` takes samples of different sizes
and counts as one packed sequence instead (`tokcore.nn.varlen`): no padding at all. Images are `(B, C, H, W)`; a model built with
`frames` reads video `(B, C, T, H, W)`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from tokcore.errors import ConfigError
from tokcore.interfaces import Decoder, VariableLengthEncoder, require_dim
from tokcore.nn.rope import MRoPE, grid_positions, sequence_positions
from tokcore.nn.shapes import divide
from tokcore.nn.transformer import Transformer, init_weights
from tokcore.nn.varlen import pack, unpack

_TINY = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 1, "num_heads": 2, "max_tokens": 8}


# -- patches -----------------------------------------------------------------------------------------
def patchify3d(x: Tensor, pt: int, p: int) -> Tensor:
    """`(B, C, T, H, W)` -> `(B, T/pt * H/p * W/p, pt*p*p*C)`, patches in (t, h, w) C order."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // pt, pt, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (t // pt) * (h // p) * (w // p), pt * p * p * c)


def unpatchify3d(tokens: Tensor, grid: tuple[int, int, int], pt: int, p: int, channels: int) -> Tensor:
    """The inverse of `patchify3d`: `(B, t*h*w, pt*p*p*C)` -> `(B, C, t*pt, h*p, w*p)`."""
    b = tokens.shape[0]
    t, h, w = grid
    x = tokens.reshape(b, t, h, w, pt, p, p, channels)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, channels, t * pt, h * p, w * p)


def sequence_layout(grid: tuple[int, int, int], num_latents: int, rope: MRoPE, device: torch.device) -> Tensor:
    """Rotary angles for the patches of `grid` followed by `num_latents` latent tokens placed on
    the 1D diagonal just past the grid's largest coordinate."""
    patches = grid_positions(*grid, device=device)
    latents = sequence_positions(num_latents, max(grid), 3, device=device)
    return rope.angles(torch.cat([patches, latents]))


def lengths_mask(num_tokens: Tensor, length: int) -> Tensor:
    """`(B,)` token counts -> `(B, length)` bool, True for the first num_tokens[b] positions."""
    return torch.arange(length, device=num_tokens.device) < num_tokens[:, None]


class _Backbone(nn.Module):
    """What the encoder and decoder share: the layout of their input, the transformer, M-RoPE."""

    def __init__(self, channels: int, image_size: int, frames: int | None, patch_size: int,
                 temporal_patch_size: int, max_tokens: int, width: int, depth: int, num_heads: int,
                 mlp_ratio: float, num_kv_heads: int | None, qk_norm: bool, mlp: str, rope: str, what: str):
        super().__init__()
        if max_tokens < 1:
            raise ConfigError(f"must be at least 1, got {max_tokens}", key="max_tokens")
        if width % num_heads or (width // num_heads) % 2:
            raise ConfigError(f"width {width} / num_heads {num_heads} must be an even head width", key="num_heads")
        self.what, self.channels = what, channels
        self.image_size, self.frames, self.patch_size = image_size, frames, patch_size
        self.temporal_patch_size = temporal_patch_size if frames is not None else 1
        self.max_tokens, self.width = max_tokens, width
        self.patch_dim = channels * self.temporal_patch_size * patch_size**2
        self.transformer = Transformer(width, depth, num_heads, mlp_ratio, num_kv_heads, qk_norm, mlp)
        if rope not in ("blocks", "interleaved"):
            raise ConfigError(f"must be 'blocks' or 'interleaved', got {rope!r}", key="rope")
        self.rope = MRoPE(width // num_heads, axes=3, interleaved=rope == "interleaved")
        self.grid((frames or 1, image_size, image_size))  # the built size must be valid

    @property
    def is_video(self) -> bool:
        return self.frames is not None

    def grid(self, size: tuple[int, ...]) -> tuple[int, int, int]:
        """The patch grid (t, h, w) of a (T, H, W) or (H, W) pixel size."""
        t, h, w = (1, *size) if len(size) == 2 else size
        pt, p = self.temporal_patch_size, self.patch_size
        return (divide(t, pt, self.what, "T", "temporal_patch_size"), divide(h, p, self.what, "H", "patch_size"),
                divide(w, p, self.what, "W", "patch_size"))

    def as_video(self, x: Tensor) -> Tensor:
        """Check the layout of `x` and view an image batch as one-frame clips."""
        want = 5 if self.is_video else 4
        if x.dim() != want or x.shape[1] != self.channels:
            layout = "(B, C, T, H, W)" if self.is_video else "(B, C, H, W)"
            raise ValueError(f"{self.what} expects {layout} with C={self.channels}, got shape {tuple(x.shape)}")
        return x if self.is_video else x[:, :, None]

    def run(self, first: Tensor, latents: Tensor, grid: tuple[int, int, int], latent_mask: Tensor | None) -> Tensor:
        """The transformer over `[first (one per patch), latents]`; padded latents masked out."""
        angles = sequence_layout(grid, latents.shape[1], self.rope, first.device)
        mask = None
        if latent_mask is not None and not bool(latent_mask.all()):
            mask = torch.cat([latent_mask.new_ones(first.shape[:2]), latent_mask], dim=1)
        return self.transformer(torch.cat([first, latents], dim=1), mask=mask, rope=angles)

    def run_packed(self, firsts: list[Tensor], latents: list[Tensor], grids: list[tuple[int, int, int]]
                   ) -> list[Tensor]:
        """`run` over samples of different sizes and token counts packed into one sequence
        (no padding; attention within each sample): one `(P_i + k_i, width)` output each."""
        sequences = [torch.cat([f, z]) for f, z in zip(firsts, latents)]
        angles = torch.cat([sequence_layout(g, len(z), self.rope, z.device) for g, z in zip(grids, latents)])
        packed, cu_seqlens = pack(sequences)
        return unpack(self.transformer(packed, rope=angles, cu_seqlens=cu_seqlens), cu_seqlens)


_ARGS_DOC = """
        image_size: side of the square frames it is built (and shown examples) for; any
            multiple of patch_size works.
        frames: frames per clip for a video model (input (B, C, T, H, W), any multiple of
            temporal_patch_size); None for images.
        patch_size: side p of a square patch.
        temporal_patch_size: frames per patch of a video model.
        max_tokens: latent tokens at most (N); `num_tokens` picks the first k of them.
        width: transformer width.
        depth: transformer blocks.
        num_heads: attention heads (width / num_heads must be even, for the rotary planes).
        mlp_ratio: MLP hidden size as a multiple of width.
        num_kv_heads: key/value heads (grouped-query attention); None: num_heads.
        qk_norm: LayerNorm on queries and keys per head.
        mlp: "gelu" or "geglu".
        rope: how M-RoPE's rotation planes are shared by t, h and w: "blocks" (consecutive
            runs, Qwen2-VL's layout; the last axes get only the lowest frequencies) or
            "interleaved" (each axis gets high and low ones, Qwen3-VL's; what a small head
            needs to tell neighbouring patches apart)."""


class TiTokEncoder(VariableLengthEncoder):
    __doc__ = """TiTok encoder: images `(B, C, H, W)` or clips `(B, C, T, H, W)` -> `(B, k, out_dim)`,
    k = max(num_tokens) (default max_tokens); sample b's tokens are its first num_tokens[b].

    Args:
        in_channels: input channels C.
        out_dim: latent channels per token (the quantizer's dim).
        min_tokens: the fewest latent tokens a sample is drawn with in training.""" + _ARGS_DOC

    example_config: ClassVar[dict] = {**_TINY, "out_dim": 5, "min_tokens": 2}
    no_weight_decay: ClassVar[tuple[str, ...]] = ("latent_tokens",)  # learned queries, not a weight matrix

    def __init__(self, in_channels: int = 3, out_dim: int = 5, image_size: int = 256, frames: int | None = None,
                 patch_size: int = 16, temporal_patch_size: int = 4, max_tokens: int = 128, min_tokens: int = 1,
                 width: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 num_kv_heads: int | None = None, qk_norm: bool = True, mlp: Literal["gelu", "geglu"] = "gelu",
                 rope: Literal["blocks", "interleaved"] = "blocks"):
        super().__init__()
        if not 1 <= min_tokens <= max_tokens:
            raise ConfigError(f"must be in [1, max_tokens={max_tokens}], got {min_tokens}", key="min_tokens")
        self.in_channels, self.out_dim = in_channels, out_dim
        self.num_tokens_range = (min_tokens, max_tokens)
        self.backbone = _Backbone(in_channels, image_size, frames, patch_size, temporal_patch_size, max_tokens,
                                  width, depth, num_heads, mlp_ratio, num_kv_heads, qk_norm, mlp, rope, "titok encoder")
        self.patch_embed = nn.Linear(self.backbone.patch_dim, width)
        self.latent_tokens = nn.Parameter(torch.randn(max_tokens, width) * width**-0.5)
        self.head = nn.Linear(width, out_dim)
        self.patch_embed.apply(init_weights)
        self.head.apply(init_weights)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self.backbone.grid(tuple(input_shape[1:]))  # a size it cannot patch is an error here too
        return (self.backbone.max_tokens,)

    @property
    def patch_shape(self) -> tuple[int, int, int]:
        """(frames, height, width) of one patch; an image model's is 1 frame."""
        bb = self.backbone
        return (bb.temporal_patch_size, bb.patch_size, bb.patch_size)

    def sequence_length(self, size: tuple[int, ...], num_tokens: int) -> int:
        """Positions the transformer reads for one sample of `size` ((H, W) or (T, H, W)) with
        `num_tokens` latent tokens (the decoder reads as many): what packing budgets."""
        t, h, w = self.backbone.grid(tuple(size))
        return t * h * w + num_tokens

    def forward(self, x: Tensor, num_tokens: Tensor | None = None) -> Tensor:
        bb = self.backbone
        x = bb.as_video(x)
        grid = bb.grid(tuple(x.shape[2:]))
        num_tokens = self.check_num_tokens(num_tokens, x.shape[0], x.device)
        k = int(num_tokens.max())
        patches = self.patch_embed(patchify3d(x, bb.temporal_patch_size, bb.patch_size))
        latents = self.latent_tokens[:k].expand(x.shape[0], k, -1)
        out = bb.run(patches, latents, grid, lengths_mask(num_tokens, k))
        return self.head(out[:, patches.shape[1]:])

    def forward_packed(self, xs: list[Tensor], num_tokens: list[int]) -> list[Tensor]:
        """Samples of different sizes (each `(C, H, W)` or `(C, T, H, W)`) and token counts in one
        packed batch: sample i's `(num_tokens[i], out_dim)` tokens, equal to encoding it alone."""
        bb = self.backbone
        videos = [bb.as_video(x[None]) for x in xs]
        grids = [bb.grid(tuple(v.shape[2:])) for v in videos]
        counts = self.check_num_tokens(num_tokens, len(xs)).tolist()
        patches = [self.patch_embed(patchify3d(v, bb.temporal_patch_size, bb.patch_size))[0] for v in videos]
        outs = bb.run_packed(patches, [self.latent_tokens[:k] for k in counts], grids)
        return [self.head(out[len(p):]) for out, p in zip(outs, patches)]

    def example_input(self, batch_size: int = 2) -> Tensor:
        bb = self.backbone
        frames = (bb.frames,) if bb.is_video else ()
        return torch.randn(batch_size, self.in_channels, *frames, bb.image_size, bb.image_size)


class TiTokDecoder(Decoder):
    __doc__ = """TiTok decoder: tokens `(B, k, in_dim)` (and their `mask`, `(B, k)`) -> images
    `(B, C, H, W)` or clips `(B, C, T, H, W)` of `size` ((H, W) or (T, H, W); default the
    size it is built for), through one mask token per patch.

    Args:
        in_dim: latent channels per token. Default: the quantizer's dim in a tokenizer.
        out_channels: output channels C.""" + _ARGS_DOC

    example_config: ClassVar[dict] = {**_TINY, "in_dim": 5}
    takes_size: ClassVar[bool] = True  # forward takes the output `size` (the tokens do not say it)

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, image_size: int = 256,
                 frames: int | None = None, patch_size: int = 16, temporal_patch_size: int = 4,
                 max_tokens: int = 128, width: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, num_kv_heads: int | None = None, qk_norm: bool = True,
                 mlp: Literal["gelu", "geglu"] = "gelu", rope: Literal["blocks", "interleaved"] = "blocks"):
        super().__init__()
        self.in_dim, self.out_channels = require_dim(in_dim, "in_dim"), out_channels
        self.backbone = _Backbone(out_channels, image_size, frames, patch_size, temporal_patch_size, max_tokens,
                                  width, depth, num_heads, mlp_ratio, num_kv_heads, qk_norm, mlp, rope, "titok decoder")
        self.embed = nn.Linear(self.in_dim, width)
        self.mask_token = nn.Parameter(torch.randn(width) * width**-0.5)
        self.to_pixels = nn.Linear(width, self.backbone.patch_dim)
        self.embed.apply(init_weights)
        self.to_pixels.apply(init_weights)

    def default_size(self) -> tuple[int, ...]:
        bb = self.backbone
        return ((bb.frames,) if bb.is_video else ()) + (bb.image_size, bb.image_size)

    def forward(self, z: Tensor, mask: Tensor | None = None, size: tuple[int, ...] | None = None) -> Tensor:
        bb = self.backbone
        if z.dim() != 3 or z.shape[-1] != self.in_dim:
            raise ValueError(f"titok decoder expects tokens (B, k, {self.in_dim}), got shape {tuple(z.shape)}")
        if z.shape[1] > bb.max_tokens:
            raise ValueError(f"titok decoder: {z.shape[1]} tokens, more than its max_tokens={bb.max_tokens}")
        size = tuple(size) if size is not None else self.default_size()
        if len(size) != (3 if bb.is_video else 2):
            raise ValueError(f"titok decoder: size {size} must be {'(T, H, W)' if bb.is_video else '(H, W)'}")
        grid = bb.grid(size)
        n_patches = grid[0] * grid[1] * grid[2]
        queries = self.mask_token.expand(z.shape[0], n_patches, -1)
        out = bb.run(queries, self.embed(z), grid, mask)
        pixels = unpatchify3d(self.to_pixels(out[:, :n_patches]), grid, bb.temporal_patch_size, bb.patch_size,
                              self.out_channels)
        return pixels if bb.is_video else pixels[:, :, 0]

    def forward_packed(self, zs: list[Tensor], sizes: list[tuple[int, ...]]) -> list[Tensor]:
        """Token sequences `(k_i, in_dim)` decoded to outputs of `sizes[i]` in one packed batch,
        each equal to decoding it alone."""
        bb = self.backbone
        grids = [bb.grid(tuple(size)) for size in sizes]
        queries = [self.mask_token.expand(g[0] * g[1] * g[2], -1) for g in grids]
        outs = bb.run_packed(queries, [self.embed(z) for z in zs], grids)
        pixels = [unpatchify3d(self.to_pixels(out[None, :len(q)]), g, bb.temporal_patch_size, bb.patch_size,
                               self.out_channels)[0] for out, q, g in zip(outs, queries, grids)]
        return pixels if bb.is_video else [p[:, 0] for p in pixels]

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.backbone.max_tokens, self.in_dim)

    def example_cond(self, z: Tensor) -> dict[str, Any]:
        counts = torch.full((z.shape[0],), z.shape[1])
        counts[1::2] = max(1, z.shape[1] // 2)  # every other sample has half the tokens
        return {"mask": lengths_mask(counts, z.shape[1])}
