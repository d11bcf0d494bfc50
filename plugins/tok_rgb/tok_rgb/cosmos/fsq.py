"""`cosmos_fsq`: finite scalar quantization exactly as Cosmos's tokenizers do it.

It differs from tokcore's `fsq` in where the levels lie: a channel with L levels is bounded by
a shifted tanh to (-L/2, L/2) (slightly widened) and rounded to the integers there, so for
even L the codes are `(d - L//2) / (L//2)` for digit d: -1, -0.75, ..., 0.75 for L = 8, not
symmetric around 0. The released decoders were trained on these values, so importing them
needs this quantizer. The index is the mixed-radix number of the digits, first level least
significant (Cosmos's `_basis`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from tokcore.api import ConfigError, Quantizer, QuantizerOutput


class CosmosFSQ(Quantizer):
    """Cosmos's FSQ (levels [8, 8, 8, 5, 5, 5]: 64000 codes in its DV and DI tokenizers).

    Args:
        levels: values per channel, each >= 2; the codebook size is their product.
        dim: channels of the latents; must equal `len(levels)` (Cosmos's released
            tokenizers project to that width in the encoder). Default: `len(levels)`.
        eps: the widening of the tanh bound (Cosmos: 1e-3)."""

    example_config: ClassVar[dict] = {"levels": [8, 5, 5, 5]}

    def __init__(self, levels: list[int] = (8, 8, 8, 5, 5, 5), dim: int | None = None, eps: float = 1e-3):
        super().__init__()
        if not levels or any(level < 2 for level in levels):
            raise ConfigError(f"every level count must be >= 2, got {list(levels)}", key="levels")
        if dim is not None and dim != len(levels):
            raise ConfigError(f"must equal the number of levels ({len(levels)}), got {dim}; project to that width "
                              "in the encoder (embedding_dim)", key="dim")
        self.levels, self.dim, self.eps = list(levels), len(levels), eps
        self.codebook_size = math.prod(levels)
        self.index_shape = ()
        radix = torch.tensor(levels, dtype=torch.long)
        self.register_buffer("radix", radix, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), radix[:-1]]), 0),
                             persistent=False)

    def bound(self, z: Tensor) -> Tensor:
        half_l = (self.radix - 1).float() * (1 + self.eps) / 2
        offset = (self.radix % 2 == 0).float() * 0.5
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: Tensor) -> QuantizerOutput:
        bounded = self.bound(z.float())
        half = (self.radix // 2).float()
        rounded = bounded + (bounded.round() - bounded).detach()  # straight through
        digits = rounded.detach() + half
        indices = (digits.long() * self.basis).sum(-1)
        return QuantizerOutput(quantized=(rounded / half).to(z.dtype), indices=indices)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        half = (self.radix // 2).float()
        digits = (indices.long().unsqueeze(-1) // self.basis) % self.radix
        return (digits.float() - half) / half
