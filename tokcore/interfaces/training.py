"""The training side of the contract: Loss and Trainer (gradient steps, or a FitTrainer's
one-pass fit) and what they return."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor, nn


@dataclass
class LossOutput:
    """`loss`: the scalar to minimize; `terms`: its detached parts, for logging."""

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)


class Loss(nn.Module, ABC):
    """A reconstruction objective on normalized tensors; `mask` marks the valid elements."""

    @abstractmethod
    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        ...

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        """A small `(pred, target)` pair this loss accepts; override for particular shapes."""
        g = torch.Generator().manual_seed(0)
        return (torch.randn(batch_size, 3, 8, 8, generator=g), torch.randn(batch_size, 3, 8, 8, generator=g))


@dataclass
class StepOutput:
    """One training step's result: the loss to back-propagate and what to log."""

    loss: Tensor
    metrics: dict[str, Tensor | float] = field(default_factory=dict)


class Trainer(nn.Module, ABC):
    """The step logic of a training method; the shared loop owns everything else (data,
    devices, precision, accumulation, clipping, EMA, checkpoints, logging).

    The loop sets `self.loss` to the config's `loss` component before training. A trainer is
    a module so that its own parameters (a GAN discriminator, say) are saved with the run.
    Methods that need several optimizers name them in `optimizer_params`; the loop then calls
    `training_step` once per optimizer per micro-batch, in the order `optimizer_params` names
    them, and steps each on its own parameters (the trainer's own parameters have their
    gradients averaged over ranks). A step whose loss has no graph (`requires_grad` False, a
    plain zero say) leaves that optimizer alone for the step: a GAN discriminator before
    its start step.
    """

    loss: "Loss"

    def optimizer_params(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimizer name (one optimizer, "model", by default)."""
        return {"model": [p for p in model.parameters() if p.requires_grad]}

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        """Per optimizer name, the `train:` settings that differ for it: any of `lr`, `min_lr`,
        `betas`, `weight_decay`, `warmup_steps` (a GAN discriminator's own learning rate and
        betas, say). None by default: every optimizer follows `train:`."""
        return {}

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        """The loss to back-propagate into `optimizer`'s parameters, and metrics to log.

        `batch["input"]` is normalized; `batch["mask"]` marks valid elements (or is None).
        """


class FitTrainer(Trainer):
    """A trainer that fits the model in one pass over the data instead of gradient steps: a
    vocabulary (WordPiece, BPE), k-means bins, a PCA. `tokcore train` calls `fit` once on
    the main process and saves the result as an ordinary checkpoint (`step-1`), which
    `load_tokenizer`, `tokcore tokenize` and `tokcore decode` read like any other.
    """

    @abstractmethod
    def fit(self, model: nn.Module, train: Any, val: Any) -> dict[str, float]:
        """Fit `model` (a `tokcore.Tokenizer`) in place on the `train` dataset; returns figures to log, usually
        measured on the `val` dataset (prefixed `val/`)."""

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        raise TypeError(f"{type(self).__name__} fits in one pass and has no gradient step; "
                        "tokcore train calls its fit()")
