"""The diffusion process in the closed forms the trainer and the tests use, and DDIM sampling.

With `a = alpha_bar_t` (the cumulative product of 1 - beta up to step t):

    x_t = sqrt(a) * x0 + sqrt(1 - a) * eps                  (forward process)
    v   = sqrt(a) * eps - sqrt(1 - a) * x0                  (Salimans & Ho's velocity)

so a network output of any prediction type gives back x0:

    "epsilon":      x0 = (x_t - sqrt(1 - a) * eps) / sqrt(a)    (undefined where a = 0)
    "v_prediction": x0 = sqrt(a) * x_t - sqrt(1 - a) * v
    "sample":       x0 = the output itself

Prediction names are diffusers' (`prediction_type`), so the schedule and the DDIM step come
from diffusers' `DDIMScheduler` unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Literal

import torch
from torch import Tensor

Prediction = Literal["epsilon", "v_prediction", "sample"]
PREDICTIONS: tuple[str, ...] = ("epsilon", "v_prediction", "sample")


def _per_sample(alpha_bar: Tensor, like: Tensor) -> Tensor:
    """`(B,)` -> `(B, 1, ..., 1)` in `like`'s dtype and device, to broadcast over a sample."""
    return alpha_bar.reshape(-1, *[1] * (like.dim() - 1)).to(like)


def add_noise(x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_t for clean samples `x0`, Gaussian `noise` and per-sample `alpha_bar` `(B,)`."""
    a = _per_sample(alpha_bar, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def prediction_target(prediction: str, x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """What a network of this prediction type should output for x_t = add_noise(x0, noise)."""
    if prediction == "epsilon":
        return noise
    if prediction == "sample":
        return x0
    if prediction == "v_prediction":
        a = _per_sample(alpha_bar, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise ValueError(f"unknown prediction '{prediction}'; use one of {', '.join(PREDICTIONS)}")


def predicted_x0(prediction: str, output: Tensor, x_t: Tensor, alpha_bar: Tensor) -> Tensor:
    """The clean sample a network output of this prediction type implies at x_t."""
    if prediction == "sample":
        return output
    a = _per_sample(alpha_bar, x_t)
    if prediction == "epsilon":
        return (x_t - (1 - a).sqrt() * output) / a.sqrt()
    if prediction == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * output
    raise ValueError(f"unknown prediction '{prediction}'; use one of {', '.join(PREDICTIONS)}")


def ddim_sample(denoise: Callable[[Tensor, Tensor], Tensor], scheduler, noise: Tensor, steps: int) -> Tensor:
    """Deterministic DDIM (eta = 0) from `noise` in `steps` network evaluations.

    `denoise(x_t, t)` returns the network's prediction for timesteps `t` `(B,)`; `scheduler`
    is a diffusers `DDIMScheduler` (its `set_timesteps` is called here, so pass one that no
    other sampling uses at the same time). All randomness is in `noise`."""
    scheduler.set_timesteps(steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        out = denoise(x, t.expand(x.shape[0]))
        x = scheduler.step(out.float(), t, x, eta=0.0).prev_sample
    return x


def seeded_noise(z: Tensor, shape: tuple[int, ...], generator: torch.Generator | None, seed: int) -> Tensor:
    """Starting noise `(B, *shape)` for conditions `z` `(B, ...)`: from `generator` if given,
    else each sample's from `seed` and its own condition, so a sample gets the same noise in
    any batch, batch size or process."""
    if generator is not None:
        return torch.randn((z.shape[0], *shape), generator=generator, device=generator.device).to(z.device)
    noise = []
    for cond in z:
        digest = hashlib.blake2b(cond.detach().float().cpu().numpy().tobytes(), digest_size=8,
                                 key=str(seed).encode()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        noise.append(torch.randn(shape, generator=g))
    return torch.stack(noise).to(z.device)
