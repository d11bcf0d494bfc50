"""CoordTok's decoder: a video as three feature planes, read at query coordinates.

CoordTok (Jang et al., 2024) encodes a clip into a triplane: an xy plane (content), and xt and
yt planes (motion). A point (x, y, t) gets its features by bilinear sampling of each plane
at its projections; summed, they go through an MLP that predicts the value there. Because
the decoder answers any set of coordinates, training reconstructs a few thousand sampled
points or patches per clip instead of every pixel of a long video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.api import Decoder, require_dim


class TriplaneDecoder(Decoder):
    """Predicts values at `(x, y, t)` query coordinates from triplane latents.

    Latents are `(B, 3, R, R, D)`: the xy, xt and yt planes, channels last. `coords` are
    `(B, N, 3)` in [-1, 1] (x horizontal, y vertical, t time); the output is `(B, N, out_dim)`.

    Args:
        in_dim: latent channels D per plane. Default: the quantizer's dim in a tokenizer.
        out_dim: values predicted per query (3 for a pixel, 3 * p * p for a p x p patch).
        hidden_dim: width of the MLP.
        depth: number of hidden layers of the MLP.
        resolution: plane resolution R used by `example_input`.
    """

    example_config = {"in_dim": 8, "hidden_dim": 32, "resolution": 8}

    def __init__(self, in_dim: int | None = None, out_dim: int = 3, hidden_dim: int = 256, depth: int = 3,
                 resolution: int = 16):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        self.in_dim, self.out_dim, self.resolution = in_dim, out_dim, resolution
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)

    def sample_features(self, z: Tensor, coords: Tensor) -> Tensor:
        """Summed bilinear samples of the three planes at the coordinates' projections: (B, N, D)."""
        b, n, _ = coords.shape
        feats = 0
        for plane, axes in zip(z.unbind(1), ((0, 1), (0, 2), (1, 2))):
            grid = coords[..., list(axes)].reshape(b, n, 1, 2)  # grid_sample wants (x, y)
            sampled = F.grid_sample(plane.permute(0, 3, 1, 2), grid, mode="bilinear", align_corners=True)
            feats = feats + sampled[..., 0].transpose(1, 2)
        return feats

    def forward(self, z: Tensor, coords: Tensor) -> Tensor:
        if z.dim() != 5 or z.shape[1] != 3 or z.shape[-1] != self.in_dim:
            raise ValueError(f"triplane latents must be (B, 3, R, R, {self.in_dim}), got {tuple(z.shape)}")
        return self.mlp(self.sample_features(z, coords.to(z.dtype)))

    def example_input(self, batch_size: int = 2) -> Tensor:
        r = self.resolution
        return torch.randn(batch_size, 3, r, r, self.in_dim)

    def example_cond(self, z: Tensor) -> dict[str, Tensor]:
        return {"coords": torch.rand(z.shape[0], 64, 3) * 2 - 1}
