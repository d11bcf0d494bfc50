"""`diffusion`: the denoising objective of 4M's DiVAE, as a step for the shared loop."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from tok_rgb.diffusion.decoder import DiVAEDecoder
from tok_rgb.diffusion.schedule import add_noise, prediction_target
from tokcore.api import ConfigError, StepOutput, Trainer


class DiffusionTrainer(Trainer):
    """Denoising training of a diffusion decoder (`divae`) conditioned on the quantized latents.

    Each step draws a timestep per sample (uniform) and Gaussian noise, noises the input, runs
    encoder -> quantizer -> decoder on (clean input, noisy input, timesteps) and minimizes the
    config's `loss` (default: L2) between the decoder's output and the target of the decoder's
    `prediction` type: the noise ("epsilon"), the velocity ("v_prediction") or the clean input
    ("sample"). The prediction type belongs to the decoder, so that decoding samples with the
    same one.

    The encoder and quantizer train end to end through the conditioning, or stay fixed: set
    `train.init_from` to a trained run (any decoder) and `train.freeze: [encoder, quantizer]`.
    The quantizer's losses join the objective only when they can change something (not for
    a frozen encoder); they are logged either way.

    Args:
        quantizer_weight: factor on the sum of the quantizer's auxiliary losses.
    """

    def __init__(self, quantizer_weight: float = 1.0):
        super().__init__()
        self.quantizer_weight = quantizer_weight

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        decoder = getattr(model, "module", model).decoder  # model may be wrapped in DistributedDataParallel
        if not isinstance(decoder, DiVAEDecoder):
            raise ConfigError(f"trainer 'diffusion' needs a diffusion decoder (model.decoder.name: divae), "
                              f"not {type(decoder).__name__}", key="trainer.name")
        x = batch["input"]
        t = torch.randint(0, decoder.num_train_timesteps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        alpha_bar = decoder.alphas_cumprod[t]
        out = model(x, noisy=add_noise(x, noise, alpha_bar), timesteps=t)
        rec = self.loss(out.recon, prediction_target(decoder.prediction, x, noise, alpha_bar), batch.get("mask"))
        aux = sum(out.quant.losses.values(), torch.zeros((), device=x.device))
        metrics: dict[str, Any] = {f"loss/{k}": v for k, v in rec.terms.items()}
        metrics.update({f"quantizer/{k}": v.detach() for k, v in out.quant.losses.items()})
        metrics.update({f"codebook/{k}": v for k, v in out.quant.stats.items()})
        loss = rec.loss + self.quantizer_weight * aux if aux.requires_grad else rec.loss
        return StepOutput(loss, metrics)
