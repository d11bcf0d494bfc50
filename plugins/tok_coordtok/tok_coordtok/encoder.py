"""CoordTok's encoder: a clip to a triplane (Jang et al. 2024, Sec. 3.1).

A 3D-patch ViT turns the clip into patch features (t x p x p patches, a class token, learned
positions). Learnable query planes, one per triplane plane and cut into query tokens of a
few cells each, read those features through `depth` blocks of cross-attention,
self-attention and MLP; each query token is then projected back to its cells. The latents
are the three planes, flattened (`tok_coordtok.planes`).

A clip shorter than the model's `frames` is padded and its missing frames are masked: no
attention reads a patch past the last valid frame, so what the padding holds cannot change
the latents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tok_coordtok.attention import QueryBlock
from tok_coordtok.patches import patch_grid
from tok_coordtok.planes import PLANES, Triplane
from tokcore.api import ConfigError, Encoder
from tokcore.nn.transformer import Transformer, init_weights


def two_sides(size: int | Sequence[int], key: str) -> tuple[int, int]:
    """A side length or `[height, width]` as `(height, width)`."""
    sides = (size, size) if isinstance(size, int) else tuple(size)
    if len(sides) != 2 or any(not isinstance(s, int) or s < 1 for s in sides):
        raise ConfigError(f"must be a positive side length or [height, width], got {size!r}", key=key)
    return sides  # type: ignore[return-value]


class CoordTokEncoder(Encoder):
    """A video clip `(B, C, T, H, W)` (T <= `frames`) to triplane latents `(B, tokens, out_dim)`.

    Args:
        frames: clip length T the model is built for; shorter clips are padded and masked.
        size: frame side, or `[height, width]`.
        in_channels: channels C of the clip.
        patch_t: frames per patch of the clip's ViT.
        patch: side of a patch of the clip's ViT.
        width: channels of both transformers.
        patch_depth: self-attention blocks over the clip's patches.
        depth: blocks of the query transformer (cross-attention to the patches, then self-attention).
        num_heads: attention heads.
        plane_t: cells of the motion planes along time (T').
        plane_h: cells along height (H'): rows of `hw`, columns of `th`.
        plane_w: cells along width (W'): columns of `hw` and `tw`.
        query_patch: cells of one query token along height and width.
        query_patch_t: cells of one query token along time.
        out_dim: channels D of a plane cell.
    """

    example_config: ClassVar[dict[str, Any]] = {"frames": 8, "size": [16, 24], "patch_t": 2, "patch": 8, "width": 32, "patch_depth": 1,
                      "depth": 1, "num_heads": 2, "plane_t": 4, "plane_h": 4, "plane_w": 6, "query_patch": 2,
                      "query_patch_t": 2, "out_dim": 4}
    no_weight_decay: ClassVar[tuple[str, ...]] = ("pos_embed", "cross_pos_embed", "cls_token", "query_hw",
                                                  "query_tw", "query_th")

    def __init__(self, frames: int = 16, size: int | list[int] = 32, in_channels: int = 3, patch_t: int = 4,
                 patch: int = 8, width: int = 128, patch_depth: int = 2, depth: int = 2, num_heads: int = 4,
                 plane_t: int = 8, plane_h: int = 8, plane_w: int = 8, query_patch: int = 4, query_patch_t: int = 4,
                 out_dim: int = 8):
        super().__init__()
        self.frames, self.frame_size = frames, two_sides(size, "size")
        self.in_channels, self.patch_t, self.patch = in_channels, patch_t, patch
        try:
            self.grid = patch_grid(frames, *self.frame_size, patch_t, patch)
        except ValueError as err:
            raise ConfigError(f"{err}; choose frames and size divisible by patch_t and patch", key="patch") from None
        self.triplane = Triplane(plane_t, plane_h, plane_w)
        self.out_dim = out_dim
        self.query_sizes = {"hw": (query_patch, query_patch), "tw": (query_patch_t, query_patch),
                            "th": (query_patch_t, query_patch)}
        for name, (rows, cols) in self.triplane.shapes().items():
            qr, qc = self.query_sizes[name]
            if rows % qr or cols % qc:
                raise ConfigError(f"plane {name} of {rows} x {cols} cells does not split into query tokens of "
                                  f"{qr} x {qc} cells; make plane_t a multiple of query_patch_t and plane_h, "
                                  "plane_w multiples of query_patch", key="query_patch")

        n = math.prod(self.grid)
        self.embed = nn.Conv3d(in_channels, width, (patch_t, patch, patch), stride=(patch_t, patch, patch))
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.vit = Transformer(width, patch_depth, num_heads)
        self.cross_pos_embed = nn.Parameter(torch.randn(1, n, width) * 0.02)

        shapes = self.triplane.shapes()
        self.query_hw = nn.Parameter(torch.randn(*shapes["hw"], out_dim))
        self.query_tw = nn.Parameter(torch.randn(*shapes["tw"], out_dim))
        self.query_th = nn.Parameter(torch.randn(*shapes["th"], out_dim))
        self.query_embed = nn.ModuleDict({name: nn.Conv2d(out_dim, width, self.query_sizes[name],
                                                          stride=self.query_sizes[name]) for name in PLANES})
        self.blocks = nn.ModuleList(QueryBlock(width, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.to_cells = nn.ModuleDict({name: nn.Linear(width, math.prod(self.query_sizes[name]) * out_dim)
                                       for name in PLANES})
        self.blocks.apply(init_weights)
        self.to_cells.apply(init_weights)

    # -- the clip -----------------------------------------------------------------------------
    def padded(self, x: Tensor, valid_frames: Tensor | None) -> tuple[Tensor, Tensor]:
        """The clip padded with zeros to `frames`, and the valid frames of each clip `(B,)`."""
        b, c, t, h, w = x.shape
        if c != self.in_channels or (h, w) != self.frame_size or t > self.frames or t < 1:
            raise ValueError(f"coordtok encoder takes clips (B, {self.in_channels}, T <= {self.frames}, "
                             f"{self.frame_size[0]}, {self.frame_size[1]}), got {tuple(x.shape)}")
        valid = torch.full((b,), t, device=x.device) if valid_frames is None else valid_frames.clamp(1, t)
        return F.pad(x, (0, 0, 0, 0, 0, self.frames - t)), valid.to(x.device)

    def patch_mask(self, valid_frames: Tensor) -> Tensor:
        """`(B, T'H'W')`, True for patches that hold a valid frame (a patch partly past the
        end still holds some)."""
        gt, gh, gw = self.grid
        slabs = torch.div(valid_frames + self.patch_t - 1, self.patch_t, rounding_mode="floor")
        valid_t = torch.arange(gt, device=valid_frames.device)[None] < slabs[:, None]
        return valid_t[:, :, None].expand(-1, gt, gh * gw).reshape(-1, gt * gh * gw)

    def features(self, x: Tensor, mask: Tensor) -> Tensor:
        """The clip's patch features `(B, T'H'W', width)`, each with its cross-attention position."""
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos_embed.to(x.dtype)
        tokens = torch.cat([self.cls_token.to(x.dtype).expand(x.shape[0], -1, -1), tokens], dim=1)
        keep = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        return self.vit(tokens, keep)[:, 1:] + self.cross_pos_embed.to(x.dtype)

    # -- the planes ---------------------------------------------------------------------------
    def forward(self, x: Tensor, valid_frames: Tensor | None = None) -> Tensor:
        x, valid = self.padded(x, valid_frames)
        mask = self.patch_mask(valid)
        memory = self.features(x, mask)
        b = x.shape[0]
        queries, counts = [], []
        for name in PLANES:
            plane = getattr(self, f"query_{name}").to(x.dtype).permute(2, 0, 1)[None].expand(b, -1, -1, -1)
            tokens = self.query_embed[name](plane).flatten(2).transpose(1, 2)
            queries.append(tokens)
            counts.append(tokens.shape[1])
        q = torch.cat(queries, dim=1)
        for block in self.blocks:
            q = block(q, memory, mask)
        q = self.norm(q)
        planes = {name: self._cells(name, part) for name, part in zip(PLANES, q.split(counts, dim=1))}
        return self.triplane.join(planes)

    def _cells(self, name: str, tokens: Tensor) -> Tensor:
        """Query tokens of one plane -> its cells `(B, rows, cols, D)`."""
        rows, cols = self.triplane.shapes()[name]
        qr, qc = self.query_sizes[name]
        b, d = tokens.shape[0], self.out_dim
        cells = self.to_cells[name](tokens).reshape(b, rows // qr, cols // qc, qr, qc, d)
        return cells.permute(0, 1, 3, 2, 4, 5).reshape(b, rows, cols, d)

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.triplane.tokens,)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.in_channels, self.frames, *self.frame_size)
