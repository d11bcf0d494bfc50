"""The `vqgan` trainer: core's VQ-VAE step plus an adversarial term (taming-transformers' VQGAN).

Two optimizers in the shared loop, in this order:

* "model": the VQ-VAE loss (the config's `loss`, perceptual terms included, plus the
  quantizer's losses) + `disc_weight` x an adaptive factor x the generator loss, which asks the
  discriminator to score reconstructions as real. The adaptive factor (taming's) balances the
  two gradients at the decoder's last layer: |grad rec| / |grad gen|.
* "discriminator": the trainer's own PatchGAN learns to tell inputs from the reconstructions
  of the same step (hinge or non-saturating loss).

Before `disc_start` neither the adversarial term nor the discriminator's update happens (the
discriminator's step returns a loss without a graph, which the loop skips); the generator's
adversarial weight then ramps up linearly over `disc_warmup_steps`.

TiTok-Video's recipe is `disc_loss: relativistic` (R3GAN, Huang et al., 2024): both players
score a real input against its own reconstruction, D(real) - D(fake), with zero-centred
gradient penalties on real (R1) and fake (R2) inputs. The penalties are approximated without
double back-propagation: for a small `penalty_sigma` and Gaussian n,
E[(D(x + sigma n) - D(x))^2] / sigma^2 ~ ||grad_x D(x)||^2. An optional LeCam term (Tseng et
al., 2021) keeps the logits near EMAs of the other side's. The discriminator's optimizer may
run with its own learning rate and betas (`disc_lr`, `disc_betas`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tok_rgb.discriminator import PatchDiscriminator
from tokcore.api import ConfigError, StepOutput, VQVAETrainer


def discriminator_loss(kind: str, real: Tensor, fake: Tensor) -> Tensor:
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    if kind == "relativistic":
        return F.softplus(-(real - fake)).mean()  # each real scored against its own reconstruction
    return 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())


def generator_loss(kind: str, fake: Tensor, real: Tensor | None = None) -> Tensor:
    """The generator's adversarial loss; `real`: the real inputs' logits (relativistic only)."""
    if kind == "relativistic":
        return F.softplus(-(fake - real)).mean()
    return -fake.mean() if kind == "hinge" else F.softplus(-fake).mean()


def approx_gradient_penalty(score: Callable[[Tensor], Tensor], x: Tensor, logits: Tensor, sigma: float) -> Tensor:
    """~ E ||grad_x D(x)||^2 by a finite difference along a random direction: for Gaussian n,
    E[(D(x + sigma n) - D(x))^2] / sigma^2 -> ||grad_x D(x)||^2 as sigma -> 0; one extra
    forward pass, no double back-propagation. `logits` = D(x), already computed."""
    shifted = score(x + sigma * torch.randn_like(x))
    return (shifted - logits).float().square().flatten(1).sum(1).mean() / sigma**2


def lecam_loss(real: Tensor, fake: Tensor, ema_real: Tensor, ema_fake: Tensor) -> Tensor:
    """LeCam regularization: mean logits kept near the EMA of the other side's."""
    return F.relu(real.mean() - ema_fake).square() + F.relu(ema_real - fake.mean()).square()


def last_layer_weight(decoder: nn.Module) -> nn.Parameter:
    """The weight the adaptive factor is measured on: `decoder.last_layer` if the decoder
    names one, else its last registered parameter of two or more dimensions (the output
    conv or linear of core's decoders)."""
    named = getattr(decoder, "last_layer", None)
    if isinstance(named, nn.Parameter):
        return named
    weights = [p for p in decoder.parameters() if p.dim() >= 2]
    if not weights:
        raise ValueError(f"{type(decoder).__name__} has no weight matrix to balance the adversarial loss on; "
                         "set trainer.adaptive_weight=false")
    return weights[-1]


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Gradients flow through `module` to its input but not into its parameters."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class VQGANTrainer(VQVAETrainer):
    """VQ-VAE training plus a PatchGAN discriminator with its own optimizer (taming's VQGAN).

    Args:
        quantizer_weight: factor on the sum of the quantizer's auxiliary losses.
        disc_weight: factor on the generator's adversarial loss (times the adaptive factor).
        disc_start: first step with the adversarial term and discriminator updates; the
            autoencoder trains alone before (taming starts it once reconstructions are decent).
        disc_warmup_steps: steps after disc_start over which the generator's adversarial
            weight rises linearly from 0 to disc_weight (the discriminator trains throughout).
        disc_loss: "hinge" (taming's), "non_saturating" (softplus, the original GAN's) or
            "relativistic" (R3GAN's pairing loss, TiTok-Video's).
        r1_weight: gamma of the approximated R1 penalty on real inputs (gamma/2 x ||grad D||^2).
        r2_weight: gamma of the approximated R2 penalty on reconstructions.
        penalty_sigma: the noise scale of the approximated penalties' finite difference.
        lecam_weight: factor on the LeCam regularizer (0: off).
        lecam_decay: decay of the EMAs of the mean real and fake logits LeCam compares with.
        disc_lr: the discriminator optimizer's peak learning rate (None: train.lr).
        disc_betas: the discriminator optimizer's AdamW betas (None: train.betas).
        adaptive_weight: scale the adversarial loss by |grad rec| / |grad gen| at the decoder's
            last layer (clamped to [0, 1e4]), as taming does; false uses disc_weight alone.
        discriminator: "2d" scores images, and videos frame by frame; "3d" scores video clips
            with 3x4x4 convolutions.
        in_channels: channels of the inputs the discriminator sees.
        disc_channels: channels of the discriminator's first layer.
        disc_layers: stride-2 layers of the discriminator (inputs need H, W >= 3 * 2^layers).
        disc_norm: "group", "batch" or "none" normalization in the discriminator.
    """

    example_config = {"disc_channels": 8, "disc_layers": 2}

    def __init__(self, quantizer_weight: float = 1.0, disc_weight: float = 0.8, disc_start: int = 0,
                 disc_loss: Literal["hinge", "non_saturating", "relativistic"] = "hinge", adaptive_weight: bool = True,
                 discriminator: Literal["2d", "3d"] = "2d", in_channels: int = 3, disc_channels: int = 64,
                 disc_layers: int = 3, disc_norm: Literal["group", "batch", "none"] = "group",
                 disc_warmup_steps: int = 0, r1_weight: float = 0.0, r2_weight: float = 0.0,
                 penalty_sigma: float = 0.01, lecam_weight: float = 0.0, lecam_decay: float = 0.999,
                 disc_lr: float | None = None, disc_betas: list[float] | None = None):
        super().__init__(quantizer_weight)
        if disc_betas is not None and len(disc_betas) != 2:
            raise ConfigError(f"must be two numbers [beta1, beta2], got {disc_betas}", key="disc_betas")
        if penalty_sigma <= 0:
            raise ConfigError(f"must be positive, got {penalty_sigma}", key="penalty_sigma")
        self.disc_weight, self.disc_start, self.disc_warmup_steps = disc_weight, disc_start, disc_warmup_steps
        self.disc_loss, self.adaptive_weight = disc_loss, adaptive_weight
        self.r1_weight, self.r2_weight, self.penalty_sigma = r1_weight, r2_weight, penalty_sigma
        self.lecam_weight, self.lecam_decay = lecam_weight, lecam_decay
        self.disc_lr, self.disc_betas = disc_lr, disc_betas
        # EMAs of the mean real and fake logits (LeCam), saved with the trainer
        self.register_buffer("lecam_ema", torch.zeros(2))
        self.frame_wise = discriminator == "2d"
        self.discriminator = PatchDiscriminator(in_channels, disc_channels, disc_layers,
                                                dims=2 if self.frame_wise else 3, norm=disc_norm)
        # This step's reconstructions, kept from the model pass for the discriminator pass
        # (recomputing them would update EMA codebooks twice). Never saved: steps end empty.
        self._fakes: dict[int, Tensor] = {}
        self._fakes_step = -1

    def optimizer_params(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {**super().optimizer_params(model), "discriminator": list(self.discriminator.parameters())}

    def optimizer_settings(self) -> dict[str, dict[str, Any]]:
        own = {"lr": self.disc_lr, "betas": self.disc_betas}
        return {"discriminator": {k: v for k, v in own.items() if v is not None}}

    def warmup(self, step: int) -> float:
        """The generator's adversarial weight ramp: 0 before disc_start, then up to 1."""
        if step < self.disc_start:
            return 0.0
        return min(1.0, (step - self.disc_start + 1) / self.disc_warmup_steps) if self.disc_warmup_steps else 1.0

    def score(self, x: Tensor) -> Tensor:
        """Patch logits of a batch of images `(B, C, H, W)` or clips `(B, C, T, H, W)`."""
        if self.frame_wise and x.dim() == 5:
            x = x.transpose(1, 2).flatten(0, 1)  # each frame an image
        return self.discriminator(x)

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        if optimizer == "discriminator":
            return self._discriminator_step(model, batch, step)
        terms = self.autoencoder_terms(model, batch)
        recon = terms.out.recon
        if step != self._fakes_step:
            self._fakes, self._fakes_step = {}, step
        self._fakes[id(batch["input"])] = recon.detach()
        loss, metrics = terms.reconstruction + terms.quantizer, terms.metrics
        if step >= self.disc_start:
            with frozen(self.discriminator):
                real = self.score(batch["input"].detach()) if self.disc_loss == "relativistic" else None
                gen = generator_loss(self.disc_loss, self.score(recon), real)
            weight = self.warmup(step) * self.disc_weight * self._adaptive_factor(model, terms.reconstruction, gen)
            loss = loss + weight * gen
            metrics = {**metrics, "gan/generator": gen.detach(), "gan/weight": weight}
        return StepOutput(loss, metrics)

    def _adaptive_factor(self, model: nn.Module, rec: Tensor, gen: Tensor) -> Tensor:
        if not (self.adaptive_weight and torch.is_grad_enabled()):
            return torch.ones((), device=rec.device)
        last = last_layer_weight(getattr(model, "module", model).decoder)  # model may be DDP-wrapped
        if not last.requires_grad:  # a frozen decoder: nothing to balance
            return torch.ones((), device=rec.device)
        rec_grad = torch.autograd.grad(rec, last, retain_graph=True)[0]
        gen_grad = torch.autograd.grad(gen, last, retain_graph=True)[0]
        factor = rec_grad.float().norm() / (gen_grad.float().norm() + 1e-4)
        return factor.clamp(0.0, 1e4).detach()

    def _discriminator_step(self, model: nn.Module, batch: Mapping[str, Any], step: int) -> StepOutput:
        x = batch["input"]
        if step < self.disc_start:
            return StepOutput(torch.zeros((), device=x.device))  # no graph: the loop skips the update
        fake = self._fakes.pop(id(batch["input"]), None) if step == self._fakes_step else None
        if fake is None:
            raise RuntimeError(f"step {step}: the discriminator step needs the reconstructions of this step's "
                               "model step on the same batch; run the 'model' optimizer's step first")
        real, fake = x.detach(), fake.detach()
        real_logits, fake_logits = self.score(real), self.score(fake)
        loss = discriminator_loss(self.disc_loss, real_logits, fake_logits)
        metrics: dict[str, Any] = {"gan/logits_real": real_logits.detach().mean(),
                                   "gan/logits_fake": fake_logits.detach().mean()}
        for name, weight, inputs, logits in (("r1", self.r1_weight, real, real_logits),
                                             ("r2", self.r2_weight, fake, fake_logits)):
            if weight > 0:
                penalty = approx_gradient_penalty(self.score, inputs, logits, self.penalty_sigma)
                loss = loss + 0.5 * weight * penalty
                metrics[f"gan/{name}"] = penalty.detach()
        if self.lecam_weight > 0:
            lecam = lecam_loss(real_logits, fake_logits, self.lecam_ema[0], self.lecam_ema[1])
            loss = loss + self.lecam_weight * lecam
            metrics["gan/lecam"] = lecam.detach()
            with torch.no_grad():
                means = torch.stack([real_logits.mean(), fake_logits.mean()]).float()
                self.lecam_ema.lerp_(means, 1.0 - self.lecam_decay)
        return StepOutput(loss, metrics)
