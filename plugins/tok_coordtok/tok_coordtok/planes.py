"""The triplane: a clip's latent as three feature planes, and reading them at coordinates.

CoordTok factorizes a clip of `(T, H, W)` into a content plane `hw` of `(H', W')` cells and
two motion planes `tw` `(T', W')` and `th` `(T', H')` (the reference code's xy, yt and xt
planes), each cell `D` channels. The planes are not square in general (the paper's UCF-101
model: 16 x 16, 32 x 16 and 32 x 16 cells, 1280 tokens), so a tokenizer's latents are the
three planes flattened row-major and concatenated in that order: `(B, H'W' + T'W' + T'H', D)`,
a 1D token sequence that the token store, quantizers and `Tokenizer.decode` take as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PLANES = ("hw", "tw", "th")  # content, then the two motion planes


@dataclass(frozen=True)
class Triplane:
    """Cell counts of the planes: `t` along time, `h` along height, `w` along width."""

    t: int
    h: int
    w: int

    def shapes(self) -> dict[str, tuple[int, int]]:
        return {"hw": (self.h, self.w), "tw": (self.t, self.w), "th": (self.t, self.h)}

    @property
    def tokens(self) -> int:
        return sum(a * b for a, b in self.shapes().values())

    def split(self, z: Tensor) -> dict[str, Tensor]:
        """`(B, tokens, D)` -> `{plane: (B, rows, cols, D)}`."""
        if z.dim() != 3 or z.shape[1] != self.tokens:
            raise ValueError(f"triplane latents must be (B, {self.tokens}, D) for planes {self.shapes()}, "
                             f"got {tuple(z.shape)}")
        sizes = [a * b for a, b in self.shapes().values()]
        return {name: part.reshape(z.shape[0], *shape, z.shape[-1])
                for (name, shape), part in zip(self.shapes().items(), z.split(sizes, dim=1))}

    def join(self, planes: dict[str, Tensor]) -> Tensor:
        """The inverse of `split`."""
        return torch.cat([planes[name].flatten(1, 2) for name in PLANES], dim=1)


def sample_plane(plane: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Bilinear samples of `plane` `(B, R, C, D)` at `(rows, cols)` `(B, N)` in [0, 1], where
    0 and 1 are the centres of the first and last cell (the reference code scales by R - 1):
    `(B, N, D)`."""
    grid = torch.stack([cols, rows], dim=-1).unsqueeze(2) * 2 - 1  # grid_sample wants (x, y) in [-1, 1]
    out = F.grid_sample(plane.permute(0, 3, 1, 2), grid.to(plane.dtype), mode="bilinear", align_corners=True)
    return out[..., 0].transpose(1, 2)


def sample_triplane(planes: dict[str, Tensor], coords: Tensor) -> Tensor:
    """Features at `coords` `(B, N, 3)` = `(t, y, x)` in [0, 1]: the three planes sampled at
    the coordinates' projections and concatenated, `(B, N, 3D)`."""
    t, y, x = coords.unbind(-1)
    return torch.cat([sample_plane(planes["hw"], y, x), sample_plane(planes["tw"], t, x),
                      sample_plane(planes["th"], t, y)], dim=-1)
