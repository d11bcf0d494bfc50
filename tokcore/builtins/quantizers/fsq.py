"""`fsq`: finite scalar quantization (Mentzer et al., 2023) with an implicit codebook.

Channel b is squashed by tanh and rounded to one of `levels[b]` evenly spaced values in
[-1, 1]. Its digit `d_b` in [0, levels[b]) is the position of that value; the index is the
mixed-radix number of the digits, so index <-> code is an exact bijection computed with
integer arithmetic, and no codebook is stored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tokcore.builtins.quantizers._common import (
    full_precision,
    projections,
    straight_through,
)
from tokcore.errors import ConfigError
from tokcore.interfaces import Quantizer, QuantizerOutput
from tokcore.metrics.codebook import batch_stats


class FSQ(Quantizer):
    """Finite scalar quantization: per-channel rounding to a few levels; no codebook to learn.

    Code values are `2 d / (L - 1) - 1` for digit `d` of a channel with `L` levels.

    Args:
        levels: number of values per quantized channel, each >= 2; the codebook size is
            their product.
        dim: channels of the latents; when it differs from `len(levels)`, learned linear
            projections map in and out. Default: the encoder's out_dim in a tokenizer,
            `len(levels)` when built alone.
    """

    example_config = {"levels": [8, 5, 5, 5]}  # tiny, for the contract kit

    def __init__(self, levels: list[int], dim: int | None = None):
        super().__init__()
        if not levels:
            raise ConfigError("levels must list at least one level count, e.g. [8, 5, 5, 5]", key="levels")
        if any(level < 2 for level in levels):
            raise ConfigError(f"every level count must be >= 2, got {levels}", key="levels")
        if dim is not None and dim < 1:
            raise ConfigError(f"must be a positive integer, got {dim}", key="dim")
        self.levels = list(levels)
        self.dim = dim if dim is not None else len(levels)
        self.codebook_size = math.prod(levels)
        self.index_shape = ()
        self.project_in, self.project_out = projections(self.dim, len(levels))
        radix = torch.tensor(levels, dtype=torch.long)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), radix[:-1]]), dim=0)
        self.register_buffer("radix", radix, persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    # -- digits <-> codes <-> indices --------------------------------------------------------
    def digits_to_codes(self, digits: Tensor) -> Tensor:
        """Digits `(..., len(levels))` (integers, any dtype) -> fp32 codes in [-1, 1]."""
        return digits.float() * (2.0 / (self.radix - 1).float()) - 1.0

    def digits_to_indices(self, digits: Tensor) -> Tensor:
        """Mixed-radix number of the digits; one small matmul when fp32 holds it exactly."""
        if self.codebook_size <= 1 << 24:
            return (digits.float() @ self.basis.float()).long()
        return (digits.long() * self.basis).sum(dim=-1)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Exact inverse of `indices_to_codes` on the code set (before any out-projection)."""
        digits = torch.round((codes.float() + 1.0) * ((self.radix - 1).float() / 2.0))
        return self.digits_to_indices(digits)

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        digits = (indices.unsqueeze(-1) // self.basis) % self.radix
        with full_precision(indices.device):
            codes = self.digits_to_codes(digits.reshape(-1, len(self.levels)))
            out = self.project_out(codes)
        return out.reshape(*indices.shape, self.dim).to(dtype)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantizerOutput:
        with full_precision(z.device):
            squashed = torch.tanh(self.project_in(z.reshape(-1, self.dim).float()))
            half_steps = (self.radix - 1).float() / 2.0
            with torch.no_grad():  # digits are integers (kept in fp32): no gradient
                digits = torch.addcmul(half_steps, squashed, half_steps).round_()
            indices = self.digits_to_indices(digits)
            quantized = self.project_out(straight_through(self.digits_to_codes(digits), squashed))
        return QuantizerOutput(
            quantized=quantized.reshape(z.shape).to(z.dtype),
            indices=indices.reshape(z.shape[:-1]),
            losses={},
            stats=batch_stats(indices, self.codebook_size),
        )
