"""Optimizers, the learning-rate schedule and the weight EMA of the shared loop."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from tokcore.config.spec import TrainSettings


def _no_decay(name: str, p: nn.Parameter) -> bool:
    """Norm scales, biases, embeddings and codebooks are not weight-decayed."""
    return p.ndim < 2 or "quantizer." in name or "embed" in name or name.endswith("pos")


def adamw(named: list[tuple[str, nn.Parameter]], s: TrainSettings) -> torch.optim.AdamW:
    decay = [p for n, p in named if not _no_decay(n, p)]
    rest = [p for n, p in named if _no_decay(n, p)]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=s.lr, betas=tuple(s.betas))


def learning_rate(step: int, s: TrainSettings) -> float:
    """Linear warmup to `lr`, then constant or cosine down to `min_lr` at the last step."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "constant":
        return s.lr
    span = max(1, s.steps - s.warmup_steps)
    progress = min(1.0, (step - s.warmup_steps) / span)
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * progress))


class WeightEMA:
    """An exponential moving average of a model's parameters (buffers are copied as they
    are: EMA codebooks already average themselves)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - self.decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
