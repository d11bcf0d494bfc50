"""Optimizers, the learning-rate schedule and the weight EMA of the shared loop."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Collection, Iterable, Mapping

import torch
from torch import nn

from tokcore.config.spec import TrainSettings
from tokcore.errors import ConfigError

PER_OPTIMIZER = ("lr", "min_lr", "betas", "weight_decay", "warmup_steps")


def settings_for(s: TrainSettings, name: str, overrides: Mapping[str, Mapping[str, Any]]) -> TrainSettings:
    """The settings optimizer `name` runs with: `train:` with the trainer's overrides for it
    (`Trainer.optimizer_settings`); only the keys of `PER_OPTIMIZER` may differ."""
    changes = dict(overrides.get(name) or {})
    unknown = sorted(set(changes) - set(PER_OPTIMIZER))
    if unknown:
        raise ConfigError(f"optimizer '{name}': {', '.join(unknown)} cannot differ per optimizer; "
                          f"choose from {', '.join(PER_OPTIMIZER)}", key="trainer")
    if "betas" in changes:
        changes["betas"] = list(changes["betas"])
    return dataclasses.replace(s, **changes)


def no_weight_decay(*modules: nn.Module) -> set[int]:
    """The ids of the parameters that components declare as not weight-decayed.

    A component (any `nn.Module` in the tree: a quantizer, a position embedding, a plugin's
    block) lists them in a class attribute `no_weight_decay: ClassVar[tuple[str, ...]]`,
    names relative to that module, e.g. `("embed",)` for a VQ codebook. A declared name that
    is not a parameter of the instance (a codebook kept as an EMA buffer, a fixed sinusoidal
    table) is skipped.
    """
    ids: set[int] = set()
    for root in modules:
        for module in root.modules():
            for name in getattr(type(module), "no_weight_decay", ()):
                try:
                    ids.add(id(module.get_parameter(name)))
                except AttributeError:
                    continue
    return ids


def adamw(params: Iterable[nn.Parameter], s: TrainSettings, exempt: Collection[int] = frozenset()
          ) -> torch.optim.AdamW:
    """AdamW with `s.weight_decay` on matrices and kernels (`p.dim() >= 2`, as nanoGPT decides)
    except the parameters whose ids are in `exempt` (see `no_weight_decay`); norm scales,
    biases and other vectors are never decayed. A rule by dimension cannot miss a new layer,
    as a rule by parameter name does."""
    decay, rest = [], []
    for p in params:
        (decay if p.dim() >= 2 and id(p) not in exempt else rest).append(p)
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
