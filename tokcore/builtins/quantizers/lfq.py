"""`lfq`: lookup-free quantization (Yu et al., MAGVIT-v2): each channel becomes one bit.

The code of a latent is its sign pattern in {-1, +1}^bits and its index the bits read as a
binary number, most significant first. No codebook is stored and no search is needed.

The entropy loss uses the soft assignment p(c | x) ∝ exp(-inv_temperature * ||x - c||^2)
over all 2^bits codes. That distribution factorizes over bits, p(c | x) = Π_b σ(4τ x_b c_b),
which gives both of its terms without ever forming an (N, K) matrix:

* per-sample entropy = Σ_b H(σ(4τ x_b)), exactly, in O(N·bits);
* codebook entropy needs P(c) = mean_n p(c | x_n). Splitting the bits into a high and a low
  half, p(c | x_n) = p_hi(c_hi | x_n) · p_lo(c_lo | x_n), so the (2^h, 2^l) table of P is
  `T_hi^T @ T_lo / N`: two small per-half tables (N, 2^h), (N, 2^l) - each a matmul of
  per-bit log-probabilities with bit patterns - and one GEMM, computed in chunks of
  high-half codes. Memory is O(N·sqrt(K) + K) instead of O(N·K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tokcore.builtins.quantizers._common import (
    full_precision,
    projections,
    straight_through,
)
from tokcore.builtins.quantizers._dist import differentiable_mean
from tokcore.errors import ConfigError
from tokcore.interfaces import Quantizer, QuantizerOutput
from tokcore.metrics.codebook import batch_stats

# Elements of the P table computed at once: bounds memory for very large codebooks.
_TABLE_CHUNK_ELEMENTS = 1 << 20
_LOG_EPS = 1e-10


class LFQ(Quantizer):
    """Lookup-free quantization: binary codes, index = the sign bits of the latent.

    Losses (training only): `commitment` (mean((z - sg(code))^2)) and `entropy`
    (per-sample entropy - diversity_gamma * codebook entropy): confident assignments that
    use the whole codebook across the batch (and across ranks under torch.distributed).

    Args:
        codebook_size: number of codes, a power of two (2^bits).
        dim: channels of the latents; when it differs from bits, learned linear projections
            map in and out. Default: the encoder's out_dim in a tokenizer, log2(codebook_size)
            when built alone.
        entropy_weight: weight of the entropy loss.
        commitment_weight: weight of the commitment loss.
        diversity_gamma: weight of the codebook entropy inside the entropy loss.
        inv_temperature: sharpness of the soft assignment used by the entropy loss.
    """

    example_config = {"codebook_size": 2**10, "dim": 16}  # tiny, for the contract kit

    def __init__(
        self,
        codebook_size: int,
        dim: int | None = None,
        entropy_weight: float = 0.1,
        commitment_weight: float = 0.25,
        diversity_gamma: float = 1.0,
        inv_temperature: float = 100.0,
    ):
        super().__init__()
        if codebook_size < 2 or codebook_size & (codebook_size - 1):
            raise ConfigError(f"must be a power of two >= 2, got {codebook_size}", key="codebook_size")
        if dim is not None and dim < 1:
            raise ConfigError(f"must be a positive integer, got {dim}", key="dim")
        self.bits = codebook_size.bit_length() - 1
        self.codebook_size = codebook_size
        self.dim = dim if dim is not None else self.bits
        self.index_shape = ()
        self.entropy_weight, self.commitment_weight = entropy_weight, commitment_weight
        self.diversity_gamma, self.inv_temperature = diversity_gamma, inv_temperature
        self.project_in, self.project_out = projections(self.dim, self.bits)
        shifts = torch.arange(self.bits - 1, -1, -1, dtype=torch.long)  # most significant bit first
        self.register_buffer("shifts", shifts, persistent=False)

    # -- codes <-> indices -------------------------------------------------------------------
    @staticmethod
    def bits_to_codes(bits: Tensor) -> Tensor:
        """{0, 1} bits -> {-1, +1} fp32 codes."""
        return bits.float() * 2.0 - 1.0

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Exact inverse of `indices_to_codes` on the code set (before any out-projection)."""
        if self.bits > 24:  # beyond fp32's exact integers
            return ((codes > 0).long() << self.shifts).sum(dim=-1)
        # bit = (code + 1) / 2, so index = (codes @ 2^shifts + K - 1) / 2, exact in fp32
        offset = codes.new_full((), float(self.codebook_size - 1))
        powers = (1 << self.shifts).float()
        return torch.addmv(offset, codes.float(), powers, beta=0.5, alpha=0.5).long()

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        bits = (indices.unsqueeze(-1) >> self.shifts) & 1
        with full_precision(indices.device):
            out = self.project_out(self.bits_to_codes(bits.reshape(-1, self.bits)))
        return out.reshape(*indices.shape, self.dim).to(dtype)

    # -- forward -----------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantizerOutput:
        with full_precision(z.device):
            latents = self.project_in(z.reshape(-1, self.dim).float())
            codes = torch.where(latents > 0, 1.0, -1.0)
            indices = self.codes_to_indices(codes.reshape(-1, self.bits))
            losses = {}
            if self.training:
                losses["commitment"] = self.commitment_weight * F.mse_loss(latents, codes)
                if self.entropy_weight != 0:
                    sample, codebook = entropy_terms(latents, self.inv_temperature)
                    losses["entropy"] = self.entropy_weight * (sample - self.diversity_gamma * codebook)
            quantized = self.project_out(straight_through(codes, latents))
        return QuantizerOutput(
            quantized=quantized.reshape(z.shape).to(z.dtype),
            indices=indices.reshape(z.shape[:-1]),
            losses=losses,
            stats=batch_stats(indices, self.codebook_size),
        )


def entropy_terms(latents: Tensor, inv_temperature: float) -> tuple[Tensor, Tensor]:
    """(mean per-sample entropy, codebook entropy) of p(c | x) ∝ exp(-τ ||x - c||^2), in nats.

    `latents`: `(N, bits)`, fp32. Under torch.distributed the codebook distribution is the
    mean over all ranks' samples.
    """
    logits = 4.0 * inv_temperature * latents  # log p(bit = 1) - log p(bit = 0), per bit
    p_one = torch.sigmoid(logits)
    sample = (p_one * F.softplus(-logits) + (1.0 - p_one) * F.softplus(logits)).sum(dim=1).mean()

    high = (latents.shape[1] + 1) // 2
    table_hi = _half_table(logits[:, :high])  # (N, 2^high): p of each high-half pattern
    table_lo = _half_table(logits[:, high:])  # (N, 2^low)
    rows = max(1, _TABLE_CHUNK_ELEMENTS // table_lo.shape[1])
    codebook = latents.new_zeros(())
    for start in range(0, table_hi.shape[1], rows):
        probs = table_hi[:, start:start + rows].t() @ table_lo / latents.shape[0]
        probs = differentiable_mean(probs)
        codebook = codebook - (probs * probs.clamp_min(_LOG_EPS).log()).sum()
    return sample, codebook


def _half_table(logits: Tensor) -> Tensor:
    """p(pattern | x_n) for every bit pattern of these channels, `(N, 2^m)`.

    log p = Σ_b log σ(-a_b) + Σ_{b set} a_b: a matmul of the logits with the bit patterns.
    """
    m = logits.shape[1]
    if m == 0:
        return logits.new_ones(logits.shape[0], 1)
    shifts = torch.arange(m - 1, -1, -1, device=logits.device)
    patterns = ((torch.arange(2 ** m, device=logits.device).unsqueeze(1) >> shifts) & 1).to(logits.dtype)
    log_all_zero = -F.softplus(logits).sum(dim=1, keepdim=True)
    return torch.exp(torch.addmm(log_all_zero, logits, patterns.t()))

