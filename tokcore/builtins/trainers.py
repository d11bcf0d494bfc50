"""The default trainer: reconstruction loss plus the quantizer's auxiliary losses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from tokcore.interfaces import LossOutput, StepOutput, TokenizerOutput, Trainer


@dataclass
class AutoencoderTerms:
    """One autoencoder pass, taken apart so that subclasses can add terms (a GAN loss).

    Attributes:
        out: the model's output (reconstruction, quantizer output, latents).
        reconstruction: the config's `loss` between reconstruction and input.
        quantizer: the quantizer's auxiliary losses, summed and weighted by `quantizer_weight`.
        metrics: what to log of both.
    """

    out: TokenizerOutput
    reconstruction: Tensor
    quantizer: Tensor
    metrics: dict[str, Any]


def packed_loss(loss: nn.Module, recons: list[Tensor], xs: list[Tensor]) -> LossOutput:
    """The loss of a packed batch (samples of different sizes): each sample's loss, weighted
    by its number of values, so a pixel counts the same wherever it is (as in a padded batch)."""
    weights = torch.tensor([float(x.numel()) for x in xs], device=xs[0].device)
    weights = weights / weights.sum()
    parts = [loss(r[None], x[None]) for r, x in zip(recons, xs)]
    terms = {k: sum(w * p.terms[k] for w, p in zip(weights, parts)) for k in parts[0].terms}
    return LossOutput(sum(w * p.loss for w, p in zip(weights, parts)), terms)


class VQVAETrainer(Trainer):
    """Encode, quantize, decode; minimize the config's `loss` between reconstruction and input
    plus the quantizer's own losses (commitment, codebook, entropy), weighted by
    `quantizer_weight`. Logs each loss term and the quantizer's statistics.

    Args:
        quantizer_weight: factor on the sum of the quantizer's auxiliary losses.
    """

    def __init__(self, quantizer_weight: float = 1.0):
        super().__init__()
        self.quantizer_weight = quantizer_weight

    def autoencoder_terms(self, model: nn.Module, batch: Mapping[str, Any]) -> AutoencoderTerms:
        x = batch["input"]
        out = model(x, **({"num_tokens": batch["num_tokens"]} if batch.get("num_tokens") is not None else {}))
        rec = self.loss(out.recon, x, batch.get("mask")) if not isinstance(x, list) else packed_loss(self.loss, out.recon, x)
        aux = sum(out.quant.losses.values(), torch.zeros((), device=out.quant.quantized.device))
        metrics: dict[str, Any] = {f"loss/{k}": v for k, v in rec.terms.items()}
        metrics.update({f"quantizer/{k}": v.detach() for k, v in out.quant.losses.items()})
        metrics.update({f"codebook/{k}": v for k, v in out.quant.stats.items()})
        return AutoencoderTerms(out, rec.loss, self.quantizer_weight * aux, metrics)

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        terms = self.autoencoder_terms(model, batch)
        return StepOutput(terms.reconstruction + terms.quantizer, terms.metrics)
