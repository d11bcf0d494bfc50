"""A clip as a grid of t x p x p patches: their indices, and moving pixels between a clip and
the patches a decoder predicts.

A patch is named by its integer position `(t, y, x)` in the grid `(T/pt, H/p, W/p)`; its
pixels are flattened in the order `(pt, p, p, C)`. The trainer cuts targets out of a clip
with `gather_patches`, the decoder puts predicted patches back with `place_patches`: one
layout, defined here once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def patch_grid(frames: int, height: int, width: int, patch_t: int, patch: int) -> tuple[int, int, int]:
    """`(T/pt, H/p, W/p)`; ValueError naming the axis that does not divide."""
    for axis, size, p in (("frames", frames, patch_t), ("height", height, patch), ("width", width, patch)):
        if size % p:
            raise ValueError(f"clip {axis} {size} is not a multiple of the patch size {p}")
    return frames // patch_t, height // patch, width // patch


def all_patches(grid: tuple[int, int, int], device: torch.device | None = None) -> Tensor:
    """Every patch of `grid`, time-major: int64 `(T' * H' * W', 3)`."""
    axes = [torch.arange(n, device=device) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def to_patches(clip: Tensor, patch_t: int, patch: int) -> Tensor:
    """`(B, C, T, H, W)` -> `(B, T', H', W', pt * p * p * C)`."""
    b, c, t, h, w = clip.shape
    gt, gh, gw = patch_grid(t, h, w, patch_t, patch)
    x = clip.reshape(b, c, gt, patch_t, gh, patch, gw, patch)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, gt, gh, gw, -1)


def from_patches(patches: Tensor, channels: int, patch_t: int, patch: int) -> Tensor:
    """The inverse of `to_patches`: `(B, T', H', W', pt * p * p * C)` -> `(B, C, T, H, W)`."""
    b, gt, gh, gw, _ = patches.shape
    x = patches.reshape(b, gt, gh, gw, patch_t, patch, patch, channels)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, channels, gt * patch_t, gh * patch, gw * patch)


def gather_patches(clip: Tensor, index: Tensor, patch_t: int, patch: int) -> Tensor:
    """The pixels of patches `index` (int64 `(B, N, 3)`, `(t, y, x)`) of each clip:
    `(B, N, pt * p * p * C)`."""
    grid = to_patches(clip, patch_t, patch)
    b = torch.arange(grid.shape[0], device=clip.device)[:, None]
    return grid[b, index[..., 0], index[..., 1], index[..., 2]]


def random_patches(batch: int, grid: tuple[int, int, int], count: int, generator: torch.Generator | None = None,
                   device: torch.device | None = None) -> Tensor:
    """`count` patches per clip drawn uniformly (with replacement, as CoordTok's data loader
    does): int64 `(batch, count, 3)`."""
    flat = torch.randint(grid[0] * grid[1] * grid[2], (batch, count), generator=generator, device=device)
    return unravel(flat, grid)


def random_slabs(batch: int, grid: tuple[int, int, int], count: int, generator: torch.Generator | None = None,
                 device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Every patch of `count` distinct temporal slabs (pt frames each) per clip, chosen at
    random: the slab indices `(batch, count)`, sorted, and the patches `(batch, count * H' * W', 3)`,
    slab by slab, each slab row-major."""
    if count > grid[0]:
        raise ValueError(f"cannot sample {count} temporal slabs of a clip that has {grid[0]}")
    scores = torch.rand(batch, grid[0], generator=generator, device=device)
    slabs = scores.argsort(dim=1)[:, :count].sort(dim=1).values
    plane = all_patches((1, grid[1], grid[2]), device=device)  # (H' * W', 3) with t = 0
    index = plane[None, None].repeat(batch, count, 1, 1)
    index[..., 0] = slabs[..., None]
    return slabs, index.reshape(batch, -1, 3)


def unravel(flat: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """Flat time-major patch numbers -> `(..., 3)` `(t, y, x)`."""
    _, gh, gw = grid
    return torch.stack([flat // (gh * gw), (flat // gw) % gh, flat % gw], dim=-1)
