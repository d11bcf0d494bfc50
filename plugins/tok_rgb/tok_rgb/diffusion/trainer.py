"""`diffusion`: the denoising objective of 4M's DiVAE and VQ-ControlNet, as a step for the shared loop."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from tok_rgb.diffusion.controlnet import ControlNetDecoder
from tok_rgb.diffusion.decoder import DiVAEDecoder
from tok_rgb.diffusion.schedule import add_noise, prediction_target
from tokcore.api import ConfigError, StepOutput, Trainer

_DECODERS = (DiVAEDecoder, ControlNetDecoder)


class DiffusionTrainer(Trainer):
    """Denoising training of a diffusion decoder (`divae`, `controlnet`) conditioned on the
    quantized latents.

    Each step draws a timestep per sample (uniform) and Gaussian noise, noises what the
    decoder diffuses (the image for `divae`, its VAE latents for `controlnet`), runs
    encoder -> quantizer -> decoder on (clean input, noisy input, timesteps) and minimizes the
    config's `loss` (default: L2) between the decoder's output and the target of the decoder's
    `prediction` type: the noise ("epsilon"), the velocity ("v_prediction") or the clean input
    ("sample"). The prediction type belongs to the decoder, so that decoding samples with the
    same one.

    The encoder and quantizer train end to end through the conditioning, or stay fixed: set
    `train.init_from` to a trained run (any decoder) and `train.freeze: [encoder, quantizer]`.
    The quantizer's losses join the objective only when they can change something (not for
    a frozen encoder); they are logged either way. A `controlnet` decoder needs them frozen
    (4M's VQ-ControlNet decodes the tokens of a trained tokenizer) and trains only its
    ControlNet and adapter; its UNet and VAE are frozen by the decoder itself.

    Args:
        quantizer_weight: factor on the sum of the quantizer's auxiliary losses.
        condition_dropout: probability that a sample's condition is dropped (all-zero token
            latents), which trains the unconditional branch of classifier-free guidance
            (4M: 0.2); `controlnet` decoders only.
    """

    def __init__(self, quantizer_weight: float = 1.0, condition_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError("condition_dropout must be in [0, 1)", key="condition_dropout")
        self.quantizer_weight = quantizer_weight
        self.condition_dropout = condition_dropout

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        tok = getattr(model, "module", model)  # model may be wrapped in DistributedDataParallel
        decoder = tok.decoder
        if not isinstance(decoder, _DECODERS):
            raise ConfigError(f"trainer 'diffusion' needs a diffusion decoder (model.decoder.name: divae or "
                              f"controlnet), not {type(decoder).__name__}", key="trainer.name")
        cond: dict[str, Any] = {}
        if isinstance(decoder, ControlNetDecoder):
            # frozen as train.freeze leaves a part: no gradients, and in eval mode (an EMA codebook would move)
            parts = (tok.encoder, tok.quantizer)
            if any(part.training or any(p.requires_grad for p in part.parameters()) for part in parts):
                raise ConfigError("a controlnet decoder trains on the tokens of a trained tokenizer: set "
                                  "train.init_from to a tok-rgb run and train.freeze: [encoder, quantizer]",
                                  key="train.freeze")
        elif self.condition_dropout:
            raise ConfigError("condition_dropout needs a controlnet decoder; set it to 0 for divae",
                              key="trainer.condition_dropout")
        x = batch["input"]
        clean = decoder.diffusion_input(x, tuple(tok.encoder.token_grid(tuple(x.shape[1:]))))
        t = torch.randint(0, decoder.num_train_timesteps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(clean)
        alpha_bar = decoder.alphas_cumprod[t]
        if self.condition_dropout:
            cond["drop"] = torch.rand(x.shape[0], device=x.device) < self.condition_dropout
        out = model(x, noisy=add_noise(clean, noise, alpha_bar), timesteps=t, **cond)
        rec = self.loss(out.recon, prediction_target(decoder.prediction, clean, noise, alpha_bar),
                        batch.get("mask") if clean is x else None)
        aux = sum(out.quant.losses.values(), torch.zeros((), device=x.device))
        metrics: dict[str, Any] = {f"loss/{k}": v for k, v in rec.terms.items()}
        metrics.update({f"quantizer/{k}": v.detach() for k, v in out.quant.losses.items()})
        metrics.update({f"codebook/{k}": v for k, v in out.quant.stats.items()})
        loss = rec.loss + self.quantizer_weight * aux if aux.requires_grad else rec.loss
        return StepOutput(loss, metrics)
