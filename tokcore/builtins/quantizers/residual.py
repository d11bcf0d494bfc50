"""`rvq` and `rfsq`: residual quantization, one mechanism over any inner quantizer.

Stage s quantizes what the previous stages left over, `residual_s / scale_s`, and its code
(times `scale_s`) is added to the running sum and subtracted from the residual. Indices
are stacked on a trailing axis `(..., stages)`; decoding sums the stages' codes in the same
order with the same operations, so `indices_to_codes` reproduces the forward output bit for
bit. One optional projection pair wraps all stages (the stages themselves have none).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from tokcore.builtins.quantizers._common import (
    check_positive,
    full_precision,
    projections,
    straight_through,
)
from tokcore.builtins.quantizers.fsq import FSQ
from tokcore.builtins.quantizers.vq import VQ
from tokcore.errors import ConfigError
from tokcore.interfaces import Quantizer, QuantizerOutput, require_dim


class ResidualQuantizer(Quantizer):
    """The residual mechanism; `RVQ` and `RFSQ` only choose the stages and their scales.

    `scales`: `(stages, inner_dim)`, the factor each stage's residual is divided by.
    """

    def __init__(self, dim: int, stages: list[Quantizer], scales: Tensor):
        super().__init__()
        inner_dim = stages[0].dim
        self.dim, self.inner_dim = dim, inner_dim
        self.codebook_size = stages[0].codebook_size
        self.index_shape = (len(stages),)
        self.stages = nn.ModuleList(stages)
        self.project_in, self.project_out = projections(dim, inner_dim)
        self.register_buffer("scales", scales.float(), persistent=False)

    def forward(self, z: Tensor) -> QuantizerOutput:
        with full_precision(z.device):
            latents = self.project_in(z.reshape(-1, self.dim).float())
            residual, total = latents, torch.zeros_like(latents)
            indices, losses, stats = [], {}, []
            for stage, scale in zip(self.stages, self.scales):
                out = stage(residual / scale)
                code = out.quantized.detach() * scale
                total = total + code
                residual = residual - code  # later stages' losses still reach the encoder
                indices.append(out.indices)
                for key, value in out.losses.items():
                    losses[key] = losses.get(key, 0.0) + value
                stats.append(out.stats)
            quantized = self.project_out(straight_through(total, latents))
        return QuantizerOutput(
            quantized=quantized.reshape(z.shape).to(z.dtype),
            indices=torch.stack(indices, dim=-1).reshape(*z.shape[:-1], len(self.stages)),
            losses=losses,
            stats=_merge_stage_stats(stats),
        )

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        lead = indices.shape[:-1]
        flat = indices.reshape(-1, len(self.stages))
        with full_precision(indices.device):
            total = torch.zeros(flat.shape[0], self.inner_dim, device=indices.device)
            for s, (stage, scale) in enumerate(zip(self.stages, self.scales)):
                total = total + stage.indices_to_codes(flat[:, s]) * scale
            out = self.project_out(total)
        return out.reshape(*lead, self.dim).to(dtype)


def _merge_stage_stats(stats: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Usage and perplexity averaged over stages; dead codes summed."""
    merged = {}
    for key in stats[0]:
        values = torch.stack([s[key] for s in stats])
        merged[key] = values.sum() if key == "dead_codes" else values.float().mean()
    return merged


class RVQ(ResidualQuantizer):
    """Residual VQ: `stages` VQ codebooks, each quantizing the previous stages' residual.

    Indices are `(..., stages)`. Each stage is a `vq` with the options below; statistics
    are averaged over stages (dead codes summed), losses summed.

    Args:
        dim: channels of the latents. Default: the encoder's out_dim in a tokenizer
            (codebook_dim when built alone with one).
        codebook_size: number of codes of each stage.
        stages: number of residual stages.
        codebook_dim: size of the codes; when it differs from `dim`, one learned projection
            pair wraps all stages. Default: `dim`.
        codebook_learning: "ema" or "loss", as for `vq`.
        decay: decay of the moving averages, as for `vq`.
        commitment_weight: weight of each stage's commitment loss.
        codebook_weight: weight of each stage's codebook loss ("loss" only).
        kmeans_init: k-means initialization of each stage on the first training batch.
        kmeans_iters: Lloyd iterations of that k-means.
        dead_after_steps: a code unused for this many training steps is dead.
        dead_usage_threshold: a code whose moving-average use per step is below this is dead.
        restart_dead_codes: replace dead codes by recent residuals.
        restart_reach: where a restarted code goes between a drawn residual's code (0) and
            the residual (1); below 1 it splits a busy code (see `vq`).
    """

    example_config = {"dim": 16, "codebook_size": 32, "stages": 3, "codebook_dim": 8}  # tiny, for the contract kit

    def __init__(
        self,
        *,
        dim: int | None = None,
        codebook_size: int,
        stages: int = 4,
        codebook_dim: int | None = None,
        codebook_learning: Literal["ema", "loss"] = "ema",
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_after_steps: int = 100,
        dead_usage_threshold: float = 0.0,
        restart_dead_codes: bool = True,
        restart_reach: float = 1.0,
    ):
        dim = codebook_dim if dim is None and codebook_dim is not None else require_dim(dim, "dim")
        check_positive(dim=dim, stages=stages)
        inner_dim = codebook_dim if codebook_dim is not None else dim
        make_stage = lambda: VQ(  # noqa: E731
            dim=inner_dim, codebook_size=codebook_size, codebook_learning=codebook_learning, decay=decay,
            commitment_weight=commitment_weight, codebook_weight=codebook_weight,
            kmeans_init=kmeans_init, kmeans_iters=kmeans_iters, dead_after_steps=dead_after_steps,
            dead_usage_threshold=dead_usage_threshold, restart_dead_codes=restart_dead_codes,
            restart_reach=restart_reach)
        super().__init__(dim, [make_stage() for _ in range(stages)], torch.ones(stages, inner_dim))


class RFSQ(ResidualQuantizer):
    """Residual FSQ: `stages` FSQ quantizers; stage s sees the residual scaled up by
    (levels - 1)^s per channel, so each stage refines the previous one's rounding step.

    Indices are `(..., stages)`, each in [0, prod(levels)).

    Args:
        levels: values per quantized channel, as for `fsq`.
        stages: number of residual stages.
        dim: channels of the latents; when it differs from `len(levels)`, one learned
            projection pair wraps all stages. Default: the encoder's out_dim in a tokenizer,
            `len(levels)` when built alone.
    """

    example_config = {"levels": [5, 5, 5], "stages": 3, "dim": 16}  # tiny, for the contract kit

    def __init__(self, levels: list[int], stages: int = 4, dim: int | None = None):
        check_positive(stages=stages)
        if dim is not None and dim < 1:
            raise ConfigError(f"must be a positive integer, got {dim}", key="dim")
        fsq_stages = [FSQ(levels) for _ in range(stages)]
        steps = torch.tensor(levels, dtype=torch.float64) - 1.0
        scales = steps.pow(-torch.arange(stages, dtype=torch.float64).unsqueeze(1))
        super().__init__(dim if dim is not None else len(levels), fsq_stages, scales)
