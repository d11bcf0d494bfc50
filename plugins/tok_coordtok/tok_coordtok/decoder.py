"""CoordTok's decoder: triplane latents and patch coordinates to the pixels of those patches
(Jang et al. 2024, Sec. 3.2).

A patch `(t, y, x)` of the clip's `(T/pt, H/p, W/p)` grid is read at its normalized
coordinates (each index over the grid's last index, so 0 and 1 are the first and last
patch): each plane is sampled bilinearly at the coordinates' projection, the three features
are concatenated and embedded, a learned 3D position embedding of the patch is added, a ViT
runs over the queried patches of a clip (they attend to each other), and a linear head maps
each to its `pt x p x p x C` pixels.

`forward(z, patches=index)` decodes the patches asked for, as training does with a few
sampled ones. `forward(z)` decodes the whole clip: every patch, time-major, in groups of
`query_group` patches that attend to each other (the reference decodes 1024 at a time),
`groups_per_pass` groups per ViT pass. A group's patches see only each other, so the passes
bound memory without changing a value: any `groups_per_pass` gives the same clip.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tok_coordtok.encoder import two_sides
from tok_coordtok.patches import all_patches, from_patches, patch_grid, random_patches
from tok_coordtok.planes import Triplane, sample_triplane
from tokcore.api import ConfigError, Decoder, require_dim
from tokcore.nn.transformer import Transformer, init_weights


class TriplaneDecoder(Decoder):
    """Triplane latents `(B, tokens, in_dim)` to patches `(B, N, pt*p*p*C)` at `patches`, or
    to the whole clip `(B, C, T, H, W)`.

    Args:
        in_dim: channels D of a plane cell. Default: the quantizer's dim in a tokenizer.
        frames: clip length T.
        size: frame side, or `[height, width]`.
        out_channels: channels C of the clip.
        patch_t: frames per decoded patch.
        patch: side of a decoded patch.
        plane_t: cells of the motion planes along time (as the encoder's).
        plane_h: cells along height (as the encoder's).
        plane_w: cells along width (as the encoder's).
        width: channels of the ViT.
        depth: ViT blocks.
        num_heads: attention heads.
        query_group: patches that attend to each other when a whole clip is decoded.
        groups_per_pass: groups decoded in one ViT pass over a whole clip (memory, not values).
    """

    example_config: ClassVar[dict[str, Any]] = {"in_dim": 4, "frames": 8, "size": [16, 24], "patch_t": 2, "patch": 4, "plane_t": 4,
                      "plane_h": 4, "plane_w": 6, "width": 32, "depth": 1, "num_heads": 2, "query_group": 16}
    no_weight_decay: ClassVar[tuple[str, ...]] = ("pos_embed",)

    def __init__(self, in_dim: int | None = None, frames: int = 16, size: int | list[int] = 32,
                 out_channels: int = 3, patch_t: int = 1, patch: int = 4, plane_t: int = 8, plane_h: int = 8,
                 plane_w: int = 8, width: int = 128, depth: int = 2, num_heads: int = 4, query_group: int = 1024,
                 groups_per_pass: int = 1):
        super().__init__()
        self.in_dim = require_dim(in_dim, "in_dim")
        self.frames, self.frame_size = frames, two_sides(size, "size")
        self.out_channels, self.patch_t, self.patch = out_channels, patch_t, patch
        try:
            self.grid = patch_grid(frames, *self.frame_size, patch_t, patch)
        except ValueError as err:
            raise ConfigError(f"{err}; choose frames and size divisible by patch_t and patch", key="patch") from None
        for key, value in (("query_group", query_group), ("groups_per_pass", groups_per_pass)):
            if value < 1:
                raise ConfigError(f"must be at least 1, got {value}", key=key)
        self.query_group, self.groups_per_pass = query_group, groups_per_pass
        self.triplane = Triplane(plane_t, plane_h, plane_w)
        self.embed = nn.Linear(3 * self.in_dim, width)
        self.pos_embed = nn.Parameter(torch.randn(*self.grid, width) * width ** -0.5)
        self.vit = Transformer(width, depth, num_heads)
        self.head = nn.Linear(width, patch_t * patch * patch * out_channels)
        self.embed.apply(init_weights)
        self.head.apply(init_weights)

    @property
    def patch_values(self) -> int:
        return self.patch_t * self.patch * self.patch * self.out_channels

    def forward(self, z: Tensor, patches: Tensor | None = None) -> Tensor:
        planes = self.triplane.split(z)
        if patches is None:
            return self.decode_clip(planes)
        if patches.dim() != 3 or patches.shape[0] != z.shape[0] or patches.shape[-1] != 3:
            raise ValueError(f"patches must be int64 (B={z.shape[0]}, N, 3) (t, y, x) indices, got {tuple(patches.shape)}")
        return self.query(planes, patches)

    def query(self, planes: dict[str, Tensor], patches: Tensor) -> Tensor:
        """The pixels of `patches` (int64 `(B, N, 3)`), which attend to each other: `(B, N, pt*p*p*C)`."""
        last = torch.tensor([max(n - 1, 1) for n in self.grid], device=patches.device)
        coords = patches.to(planes["hw"].dtype) / last.to(planes["hw"].dtype)
        h = self.embed(sample_triplane(planes, coords))
        h = h + self.pos_embed[patches[..., 0], patches[..., 1], patches[..., 2]].to(h.dtype)
        return self.head(self.vit(h))

    def decode_clip(self, planes: dict[str, Tensor]) -> Tensor:
        """Every patch, in groups of `query_group`, `groups_per_pass` groups at a time: `(B, C, T, H, W)`."""
        b = planes["hw"].shape[0]
        index = all_patches(self.grid, device=planes["hw"].device)
        starts = list(range(0, index.shape[0], self.query_group))
        out = []
        for i in range(0, len(starts), self.groups_per_pass):
            groups = [index[s:s + self.query_group] for s in starts[i:i + self.groups_per_pass]]
            # Groups of one size share a pass as a batch of B x groups clips' worth of queries.
            for size in sorted({len(g) for g in groups}, reverse=True):
                same = torch.stack([g for g in groups if len(g) == size])  # (G, size, 3)
                g = same.shape[0]
                tiled = {k: v.repeat_interleave(g, dim=0) for k, v in planes.items()}
                pred = self.query(tiled, same.repeat(b, 1, 1))  # (B*G, size, values)
                out.append(pred.reshape(b, g * size, -1))
        flat = torch.cat(out, dim=1).reshape(b, *self.grid, self.patch_values)
        return from_patches(flat, self.out_channels, self.patch_t, self.patch)

    def example_input(self, batch_size: int = 2) -> Tensor:
        return torch.randn(batch_size, self.triplane.tokens, self.in_dim)

    def example_cond(self, z: Tensor) -> dict[str, Tensor]:
        g = torch.Generator().manual_seed(0)
        return {"patches": random_patches(z.shape[0], self.grid, 24, generator=g)}
