"""The interfaces every component implements: Encoder, Quantizer, Decoder, Loss, Trainer.

Conventions shared by all of them, so that none of core assumes a fixed grid, a fixed length
or a discrete code:

* Latents are channels-last: `(B, *grid, D)`. The grid may be 1D (a sequence, `(B, L, D)`),
  2D (`(B, H, W, D)`), 3D (`(B, T, H, W, D)`) or anything else a method needs (a triplane is
  `(B, 3, H, W, D)`). Variable-length sequences carry a boolean `mask` of shape `(B, L)`.
* Indices are int64 `(B, *grid, *index_shape)`: `index_shape` is `()` for one code per token
  and `(n,)` for residual stages or heads. A continuous bottleneck has no indices.
* Encoders and decoders work on *normalized* inputs; the Tokenizer applies the modality's
  recorded normalization, so users never handle statistics themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor, nn


class Encoder(nn.Module, ABC):
    """Maps a normalized input batch to channels-last latents `(B, *grid, out_dim)`."""

    out_dim: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """`x`: a batch in the modality's layout, normalized."""

    @abstractmethod
    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The latent grid for one sample of `input_shape` (no batch axis)."""

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Tensor:
        """A small valid input batch (used by the contract kit and `--dry-run`)."""


class Decoder(nn.Module, ABC):
    """Maps channels-last latents `(B, *grid, in_dim)` back to a normalized output batch.

    Decoders that need more than the latents (query coordinates, a target size) take them
    as keyword arguments of `forward`.
    """

    in_dim: int

    @abstractmethod
    def forward(self, z: Tensor, **cond: Any) -> Tensor:
        ...

    @abstractmethod
    def example_input(self, batch_size: int = 2) -> Tensor:
        """Small valid latents `(B, *grid, in_dim)` for this decoder."""

    def example_cond(self, z: Tensor) -> dict[str, Any]:
        """Keyword arguments `forward` needs beside the latents `z` (none by default)."""
        return {}


@dataclass
class QuantizerOutput:
    """What every quantizer returns.

    Attributes:
        quantized: `(..., dim)`, same shape as the input; straight-through in training.
        indices: int64 `(..., *index_shape)`, or None for a continuous bottleneck.
        losses: auxiliary losses, already weighted; the trainer adds them to the total.
        stats: detached figures to log (codebook usage, perplexity, dead codes, ...).
    """

    quantized: Tensor
    indices: Tensor | None
    losses: dict[str, Tensor] = field(default_factory=dict)
    stats: dict[str, Tensor] = field(default_factory=dict)


class Quantizer(nn.Module, ABC):
    """The bottleneck: latents `(..., dim)` to codes and indices.

    `indices_to_codes(out.indices)` must equal `out.quantized` exactly in eval mode: a token
    store holds indices only, and decoding them must give what training saw.
    """

    dim: int
    codebook_size: int | None  # per index position; None for a continuous bottleneck
    index_shape: tuple[int, ...] = ()

    @abstractmethod
    def forward(self, z: Tensor) -> QuantizerOutput:
        ...

    @abstractmethod
    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """int64 `(..., *index_shape)` -> `(..., dim)`."""

    @property
    def is_discrete(self) -> bool:
        return self.codebook_size is not None

    @property
    def bits_per_token(self) -> float:
        """Bits one token carries (0 for a continuous bottleneck)."""
        if self.codebook_size is None:
            return 0.0
        n = 1
        for s in self.index_shape:
            n *= s
        return n * float(torch.log2(torch.tensor(float(self.codebook_size))))


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

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        """The loss to back-propagate into `optimizer`'s parameters, and metrics to log.

        `batch["input"]` is normalized; `batch["mask"]` marks valid elements (or is None).
        """
