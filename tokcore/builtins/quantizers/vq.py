"""`vq`: nearest-neighbour vector quantization with a learned codebook.

Forward pass, top to bottom:
  1. latents `(..., dim)` -> optional projection -> `heads` vectors of `codebook_dim` each
     (l2-normalized for `cosine`);
  2. on the first training batch, optional k-means initialization of the codebook;
  3. nearest-code search (`_search.nearest_codes`: one GEMM + argmax per chunk);
  4. losses (commitment; codebook loss when the codebook is learned by gradient);
  5. training only: EMA statistics (bincount / index_add, all-reduced across ranks),
     dead-code bookkeeping and restarts;
  6. straight-through output, merged heads, optional projection back to `dim`.

All of it runs in fp32 with autocast off; the output is cast back to the input's dtype.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tokcore.builtins.quantizers._common import (
    check_positive,
    full_precision,
    projections,
    straight_through,
)
from tokcore.builtins.quantizers._dist import (
    all_gather_cat,
    all_reduce_sum_,
    world_size,
)
from tokcore.builtins.quantizers._kmeans import kmeans, sample_rows
from tokcore.builtins.quantizers._search import nearest_codes
from tokcore.errors import ConfigError
from tokcore.interfaces import Quantizer, QuantizerOutput, require_dim
from tokcore.metrics.codebook import code_counts, perplexity

# Cluster sizes below this carry no information: such a code keeps its vector.
_EMPTY_CLUSTER = 1e-5


class VQ(Quantizer):
    """Vector quantization: each latent (or each head of it) becomes its nearest code.

    Statistics: `usage` is the fraction of codes used within the last `dead_after_steps`
    training steps (in eval mode: within the batch), `perplexity` is that of this batch's
    code distribution, `dead_codes` counts the dead codes (see `dead_after_steps`).

    Args:
        dim: channels of the latents. Default: the encoder's out_dim in a tokenizer
            (`heads * codebook_dim` when built alone with a codebook_dim).
        codebook_size: number of codes.
        codebook_dim: size of a code; when `heads * codebook_dim != dim`, learned linear
            projections map latents in and codes out. Default: `dim // heads`.
        heads: split each latent into this many vectors, each quantized with the shared
            codebook; the indices then get a trailing axis of size `heads`.
        codebook_learning: "ema" (codes are moving averages of their assigned vectors) or
            "loss" (codes are parameters trained by the codebook loss).
        decay: decay of the moving averages (codebook and usage counts).
        commitment_weight: weight of the commitment loss mean((z - sg(code))^2).
        codebook_weight: weight of the codebook loss mean((sg(z) - code)^2); "loss" only.
        cosine: l2-normalize latents and codes, so the search is by cosine similarity.
        kmeans_init: initialize the codebook by k-means on the first training batch
            (gathered from all ranks under torch.distributed).
        kmeans_iters: Lloyd iterations of that k-means.
        dead_after_steps: a code unused for this many training steps is dead.
        dead_usage_threshold: a code whose moving-average count of assigned vectors per
            step falls below this is dead too; 0 disables this criterion.
        restart_dead_codes: replace dead codes by recent encoder outputs.
        restart_reach: where a restarted code goes on the way from a drawn encoder output's
            current code (0) to that output (1). Below 1 it splits a busy code's cell (as in
            LBG splitting) and so takes part of its traffic at once; in high dimensions a code
            put on one output can sit outside every other output's reach and die again.
    """

    example_config = {"dim": 16, "codebook_size": 64}  # tiny, for the contract kit
    no_weight_decay: ClassVar[tuple[str, ...]] = ("embed",)  # the codebook, when learned by the loss

    def __init__(
        self,
        *,
        dim: int | None = None,
        codebook_size: int,
        codebook_dim: int | None = None,
        heads: int = 1,
        codebook_learning: Literal["ema", "loss"] = "ema",
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        cosine: bool = False,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_after_steps: int = 100,
        dead_usage_threshold: float = 0.0,
        restart_dead_codes: bool = True,
        restart_reach: float = 1.0,
    ):
        super().__init__()
        dim = heads * codebook_dim if dim is None and codebook_dim is not None else require_dim(dim, "dim")
        check_positive(dim=dim, codebook_size=codebook_size, heads=heads, kmeans_iters=kmeans_iters,
                       dead_after_steps=dead_after_steps)
        if codebook_dim is None:
            if dim % heads:
                raise ConfigError(f"dim {dim} is not divisible by heads {heads}; set codebook_dim", key="heads")
            codebook_dim = dim // heads
        check_positive(codebook_dim=codebook_dim)
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"decay must be in [0, 1), got {decay}", key="decay")
        if not 0.0 < restart_reach <= 1.0:
            raise ConfigError(f"restart_reach must be in (0, 1], got {restart_reach}", key="restart_reach")
        if codebook_learning not in ("ema", "loss"):
            raise ConfigError(f"codebook_learning must be 'ema' or 'loss', got {codebook_learning!r}",
                              key="codebook_learning")

        self.dim, self.codebook_size, self.codebook_dim, self.heads = dim, codebook_size, codebook_dim, heads
        self.index_shape = (heads,) if heads > 1 else ()
        self.use_ema = codebook_learning == "ema"
        self.decay, self.cosine = decay, cosine
        self.commitment_weight, self.codebook_weight = commitment_weight, codebook_weight
        self.kmeans_iters = kmeans_iters
        self.dead_after_steps, self.dead_usage_threshold = dead_after_steps, dead_usage_threshold
        self.restart_dead_codes, self.restart_reach = restart_dead_codes, restart_reach
        self.project_in, self.project_out = projections(dim, heads * codebook_dim)

        embed = torch.randn(codebook_size, codebook_dim)
        if cosine:
            embed = F.normalize(embed, dim=1)
        if self.use_ema:
            self.register_buffer("embed", embed)
            # embed == embed_sum / cluster_size, both decaying in step: unused codes stay put.
            self.register_buffer("embed_sum", embed.clone())
            self.register_buffer("cluster_size", torch.ones(codebook_size))
        else:
            self.embed = nn.Parameter(embed)
            self.register_buffer("cluster_size", torch.ones(codebook_size))  # usage EMA only
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(not kmeans_init))

    # -- codes -----------------------------------------------------------------------------
    def codebook(self) -> Tensor:
        """The codes as used by the search, `(codebook_size, codebook_dim)`."""
        return F.normalize(self.embed, dim=1) if self.cosine else self.embed

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        lead = indices.shape[: indices.dim() - len(self.index_shape)]
        with full_precision(indices.device):
            codes = F.embedding(indices.reshape(-1), self.codebook())
            out = self.project_out(codes.reshape(-1, self.heads * self.codebook_dim))
        return out.reshape(*lead, self.dim).to(dtype)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantizerOutput:
        lead = z.shape[:-1]
        update = self.training and not torch.is_inference_mode_enabled()
        with full_precision(z.device):
            flat = self.project_in(z.reshape(-1, self.dim).float())
            vectors = flat.reshape(-1, self.codebook_dim)  # heads become rows
            if self.cosine:
                vectors = F.normalize(vectors, dim=1)
            if update and not bool(self.initialized):
                self._kmeans_init(vectors.detach())

            codebook = self.codebook()
            indices = nearest_codes(vectors.detach(), codebook.detach(), cosine=self.cosine)
            codes = F.embedding(indices, codebook)
            losses = self._losses(vectors, codes)

            counts = code_counts(indices, self.codebook_size)
            dead_codes = self._update_state(vectors.detach(), indices, counts) if update else None
            stats = self._stats(counts, dead_codes)

            quantized = straight_through(codes.detach(), vectors)
            quantized = self.project_out(quantized.reshape(-1, self.heads * self.codebook_dim))
        return QuantizerOutput(
            quantized=quantized.reshape(z.shape).to(z.dtype),
            indices=indices.reshape(*lead, *self.index_shape),
            losses=losses,
            stats=stats,
        )

    def _losses(self, vectors: Tensor, codes: Tensor) -> dict[str, Tensor]:
        losses = {"commitment": self.commitment_weight * F.mse_loss(vectors, codes.detach())}
        if not self.use_ema:
            losses["codebook"] = self.codebook_weight * F.mse_loss(codes, vectors.detach())
        return losses

    def _stats(self, counts: Tensor, dead_codes: Tensor | None) -> dict[str, Tensor]:
        """`dead_codes`: how many this training step found dead (None in eval mode)."""
        if dead_codes is not None:
            usage = (self.steps_unused < self.dead_after_steps).float().mean()
        else:
            usage = (counts > 0).float().mean()
            dead_codes = self.dead_mask().sum()
        return {"usage": usage, "perplexity": perplexity(counts), "dead_codes": dead_codes}

    # -- state: k-means, EMA, restarts ------------------------------------------------------
    def dead_mask(self) -> Tensor:
        """Codes unused for too long or too rarely, `(codebook_size,)` bool."""
        dead = self.steps_unused >= self.dead_after_steps
        if self.dead_usage_threshold > 0:
            dead |= self.cluster_size < self.dead_usage_threshold
        return dead

    @torch.no_grad()
    def _kmeans_init(self, vectors: Tensor) -> None:
        centres, sizes = kmeans(vectors, self.codebook_size, self.kmeans_iters, cosine=self.cosine)
        self.embed.data.copy_(centres)
        self.cluster_size.copy_(sizes)
        if self.use_ema:
            self.embed_sum.copy_(centres * sizes.unsqueeze(1))
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_state(self, vectors: Tensor, indices: Tensor, counts: Tensor) -> Tensor:
        """One training step of codebook state; returns the number of dead codes found."""
        counts = all_reduce_sum_(counts.clone())
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        if self.use_ema:
            sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, vectors)
            self.embed_sum.mul_(self.decay).add_(all_reduce_sum_(sums), alpha=1.0 - self.decay)
            sizes = self.cluster_size.unsqueeze(1)
            embed = torch.where(sizes > _EMPTY_CLUSTER, self.embed_sum / sizes.clamp_min(_EMPTY_CLUSTER), self.embed)
            self.embed.copy_(F.normalize(embed, dim=1) if self.cosine else embed)
        dead = self.dead_mask()
        if self.restart_dead_codes and dead.any():
            self._restart(dead, vectors, indices)
        return dead.sum()

    @torch.no_grad()
    def _restart(self, dead: Tensor, vectors: Tensor, indices: Tensor) -> None:
        """Replace dead codes by encoder outputs of this step (or points on the way to them
        from their codes, see `restart_reach`), drawn from every rank alike."""
        ids = dead.nonzero().squeeze(1)
        num = ids.numel()
        # Each rank offers `num` random vectors with their codes; dead code i takes rank
        # (i % W)'s i-th offer.
        offers = all_gather_cat(sample_rows(torch.cat([vectors, self.codebook()[indices]], dim=1), num))
        order = torch.arange(num, device=ids.device)
        vector, code = offers[(order % world_size()) * num + order].chunk(2, dim=1)
        fresh = torch.lerp(code, vector, self.restart_reach)
        if self.cosine:
            fresh = F.normalize(fresh, dim=1)
        self.embed.data.index_copy_(0, ids, fresh)
        size = max(self.dead_usage_threshold, 1.0)  # counts as one step's worth of use
        self.cluster_size.index_fill_(0, ids, size)
        if self.use_ema:
            self.embed_sum.index_copy_(0, ids, fresh * size)
        self.steps_unused.index_fill_(0, ids, 0)

