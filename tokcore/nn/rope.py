"""Rotary position embeddings over several axes (M-RoPE, Qwen2-VL), for any transformer.

Each position is a vector of `axes` coordinates (t, h, w for a video patch). The head
dimension is split into `head_dim / 2` rotation planes with the usual geometric frequencies
`base ** (-2i / head_dim)`; consecutive runs of planes (`sections`) rotate by one axis each
(by default the highest frequencies go to t, then h, then w). A query at position p and a key
at position p' then score `<R(p) q, R(p') k> = <q, R(p' - p) k>`: attention sees only
relative offsets, so nothing has to be resized for a grid or a length it was not trained on.

A position whose coordinates are all equal (`sequence_positions`) rotates every plane by the
same scalar, which is plain 1D RoPE: TiTok-Video's latent tokens sit on that diagonal, after
the patches.

Pairs are interleaved (`x[..., 2i], x[..., 2i+1]` form plane i), i.e. `x` viewed as complex
numbers and multiplied by `exp(i * angle)`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def default_sections(planes: int, axes: int) -> tuple[int, ...]:
    """Planes per axis: spatial axes (the last two) share 3/8 each, the rest goes to the first
    (time); one axis takes them all, and otherwise they are spread evenly."""
    if axes == 1:
        return (planes,)
    if axes == 3:
        hw = planes * 3 // 8
        return (planes - 2 * hw, hw, hw)
    base, extra = divmod(planes, axes)
    return tuple(base + (a < extra) for a in range(axes))


class MRoPE(nn.Module):
    """Rotation angles for multi-axis positions and their application to queries and keys.

    Args:
        head_dim: per-head width (even).
        axes: coordinates per position (3 for t, h, w).
        sections: rotation planes per axis, summing to head_dim / 2 (default: `default_sections`).
        base: frequency base (10000 as in RoFormer).
        interleaved: deal the planes to the axes in turn (t, h, w, t, h, w, ...; an axis whose
            section is used up is skipped) instead of in consecutive runs, so every axis gets
            high and low frequencies (Qwen3-VL's interleaved M-RoPE). With runs and a small
            head, the last axes get only the lowest frequencies: at head width 24, w turns by
            at most 0.002 rad per step, too little to tell neighbouring patches apart.
    """

    def __init__(self, head_dim: int, axes: int = 3, sections: tuple[int, ...] | None = None, base: float = 10000.0,
                 interleaved: bool = False):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head width, got {head_dim}")
        planes = head_dim // 2
        sections = tuple(sections) if sections is not None else default_sections(planes, axes)
        if len(sections) != axes or sum(sections) != planes or min(sections) < 0:
            raise ValueError(f"sections {sections} must give {axes} axes and sum to head_dim/2 = {planes}")
        self.head_dim, self.axes, self.sections, self.base = head_dim, axes, sections, base
        # No buffers: the tables are made on the positions' device when needed, so a model
        # built on the meta device and materialized later has nothing to restore.
        self.axis_of_plane = _interleave(sections) if interleaved else [a for a, n in enumerate(sections) for _ in range(n)]

    def inv_freq(self, device: torch.device | None = None) -> Tensor:
        """The rotation frequency of each plane, `base ** (-2i / head_dim)` (fp32)."""
        planes = torch.arange(self.head_dim // 2, dtype=torch.float64, device=device)
        return (self.base ** (-planes * 2.0 / self.head_dim)).float()

    def angles(self, positions: Tensor) -> Tensor:
        """`positions` `(..., L, axes)` -> angles `(..., L, head_dim / 2)` (fp32)."""
        if positions.shape[-1] != self.axes:
            raise ValueError(f"positions have {positions.shape[-1]} coordinates, this rotary embedding {self.axes}")
        axis = torch.tensor(self.axis_of_plane, device=positions.device)
        return positions.float()[..., axis] * self.inv_freq(positions.device)


def _interleave(sections: tuple[int, ...]) -> list[int]:
    """The axis of each plane, dealt in turn to the axes that still have planes left."""
    left, out = list(sections), []
    while any(left):
        for a in range(len(left)):
            if left[a]:
                out.append(a)
                left[a] -= 1
    return out


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate `x` `(B, heads, L, head_dim)` by `angles` `(L, head_dim/2)` or `(B, L, head_dim/2)`
    (one set per sample); computed in fp32, returned in x's dtype."""
    if angles.dim() == 3:
        angles = angles[:, None]  # broadcast over heads
    cos, sin = angles.cos(), angles.sin()
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def grid_positions(*sizes: int, device: torch.device | None = None) -> Tensor:
    """The integer coordinates of every cell of a `sizes` grid, in C order: `(prod(sizes), len(sizes))`."""
    axes = [torch.arange(s, device=device) for s in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(sizes))


def sequence_positions(length: int, start: int, axes: int, device: torch.device | None = None) -> Tensor:
    """A 1D run of `length` positions starting at `start`, on the diagonal of `axes` axes: `(length, axes)`."""
    return (start + torch.arange(length, device=device))[:, None].expand(length, axes)
