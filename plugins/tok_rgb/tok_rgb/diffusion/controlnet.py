"""`controlnet`: 4M's VQ-ControlNet detokenizer, a ControlNet on a frozen pretrained latent-diffusion UNet.

As in 4M (`fourm/vq/models/controlnet.py` ControlnetCond, `fourm/vq/vqvae.py` VQControlNet,
`run_training_vqcontrolnet.py`): a diffusers `ControlNetModel` beside a frozen
`UNet2DConditionModel`, both in the latent space of the pipeline's frozen `AutoencoderKL`.
The quantized latents `(B, h, w, D)` are upsampled (nearest) to the UNet's latent grid and
embedded by a small trainable adapter, a stack of 3x3 convs at that grid whose last conv
starts at zero (4M's ControlNetConditioningEmbedding: without strides, since the condition
is already at the latent grid); it takes the place of the ControlNet's own condition
embedding. The ControlNet's residuals, scaled by `conditioning_scale` (4M's `cond_scale`),
are added to the frozen UNet's skip connections. The text condition is always the empty
prompt, whose embedding is stored with the checkpoint, so no text encoder runs.

Training (`diffusion` trainer) noises the VAE latents of the image (4M samples them from
the VAE's posterior, times its scaling factor) with the pipeline's own noise schedule and
regresses the target of the pipeline's prediction type (epsilon for SD-1.5). Decoding
samples latents with DDIM or DPM-Solver from the pipeline's schedule, with classifier-free
guidance, and decodes them with the VAE.

Where this differs from 4M, on purpose:
- the unconditional branch of guidance is the ControlNet run on all-zero token latents,
  which is exactly what conditioning dropout trains (4M drops to zeros in training but zeroes
  only the down-block residuals at sampling, keeping the conditioned middle residual);
- 4M's optional pretrained adapter (`--adapter`) and its masked CFG (dropping a random
  subset of tokens) are not built: dropout here removes all of a sample's tokens.

Only the ControlNet and adapter are parameters a checkpoint stores; the frozen UNet and VAE
are read from the pipeline folder at build time, and the checkpoint stores a sha256 of
their weights taken when it was saved (`pipeline_digest`), checked on load against the
folder's: a checkpoint refuses to decode with other weights than it was trained with, and
a digest equal to the folder's proves the frozen parts were bit-identical after training.
"""

from __future__ import annotations

import tempfile
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tok_rgb.diffusion.pipeline import load_pipeline, weights_digest
from tok_rgb.diffusion.schedule import seeded_noise
from tokcore.api import ConfigError, Decoder, TokcoreError, require_dim
from tokcore.nn.shapes import check_layout

Sampler = Literal["ddim", "dpm_solver"]
SAMPLERS: dict[str, str] = {"ddim": "DDIMScheduler", "dpm_solver": "DPMSolverMultistepScheduler"}
_INSTALL = "pip install 'tok-rgb[diffusion]'"
_FROZEN = ("unet.", "vae.")


class ConditionAdapter(nn.Module):
    """Token latents at the UNet's latent grid `(B, D, H, W)` -> a residual for the
    ControlNet's input `(B, out_channels, H, W)`: 3x3 convs with SiLU, widening through
    `channels`, then a zero-initialized conv, so that training starts from the plain UNet."""

    def __init__(self, in_dim: int, channels: list[int], out_channels: int):
        super().__init__()
        widths = [in_dim, *channels]
        layers: list[nn.Module] = [nn.Conv2d(in_dim, in_dim, 3, padding=1), nn.SiLU()]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, a, 3, padding=1), nn.SiLU(), nn.Conv2d(a, b, 3, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, cond: Tensor) -> Tensor:
        return self.out(self.body(cond))


def _example_config() -> dict[str, Any]:
    """A tiny SD-shaped pipeline written to a temporary folder, for the contract kit."""
    from tok_rgb.diffusion.tiny_pipeline import write_tiny_pipeline

    folder = write_tiny_pipeline(tempfile.mkdtemp(prefix="tok-rgb-pipeline-"))
    return {"in_dim": 4, "pipeline": str(folder), "downsample": 8, "adapter_channels": [8],
            "sampling_steps": 2}


class ControlNetDecoder(Decoder):
    """4M's VQ-ControlNet: latents `(B, h, w, in_dim)` -> images `(B, 3, h*f, w*f)` in [-1, 1].

    `forward(z)` samples an image (deterministic, see `seed`);
    `forward(z, noisy=x_t, timesteps=t, drop=mask)` returns the prediction of the UNet for
    noisy VAE latents (the training path; `drop` marks samples whose condition is dropped
    for classifier-free guidance). Sampling options at decode time:
    `tok.decode(tokens, steps=20, guidance_scale=1.5, seed=1)` (or `tokcore decode ...
    decoder.seed=1`).

    Args:
        in_dim: channels of the latents. Default: the quantizer's dim in a tokenizer.
        pipeline: a local diffusers folder with `unet/`, `vae/`, `scheduler/` and
            `empty_prompt.safetensors` (see `tok_rgb.diffusion.pipeline`); nothing is downloaded.
        downsample: pixels per token along each side, f: images are decoded at f times the
            token grid (the encoder's factor decodes at the input size; 4M decodes at SD's 512).
        adapter_channels: widths of the adapter's conv stack after `in_dim` (4M: [32, 96, 256]).
        controlnet_init: "unet" copies the UNet's encoder weights into the ControlNet
            (ControlNet's recipe; 4M's `--pretrained_cn`), "random" starts it afresh (4M's default).
        conditioning_scale: factor on the ControlNet's residuals (4M's `cond_scale`, 0.8).
        guidance_scale: classifier-free guidance when decoding (4M: 2.5); 1 is no guidance.
        sampler: "ddim" (eta 0) or "dpm_solver" (DPM-Solver++ multistep), on the pipeline's schedule.
        sampling_steps: denoising steps when decoding.
        seed: seed of the sampling noise; each sample's noise is drawn from this seed and its
            own latents, so a sample gets the same noise in any batch or process.
    """

    example_config: ClassVar = staticmethod(_example_config)

    def __init__(self, in_dim: int | None = None, pipeline: str = "", downsample: int = 16,
                 adapter_channels: list[int] = (32, 96, 256), controlnet_init: Literal["unet", "random"] = "unet",
                 conditioning_scale: float = 0.8, guidance_scale: float = 2.5, sampler: Sampler = "ddim",
                 sampling_steps: int = 50, seed: int = 0):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        try:
            import diffusers
        except ImportError as exc:
            raise ConfigError(f"decoder 'controlnet' needs diffusers, which cannot be imported ({exc}): {_INSTALL}",
                              key="name") from None
        if not pipeline:
            raise ConfigError("name the local diffusers folder of the pretrained model (unet/, vae/, scheduler/, "
                              "empty_prompt.safetensors)", key="pipeline")
        if sampling_steps < 1:
            raise ConfigError("sampling_steps must be at least 1", key="sampling_steps")
        if guidance_scale < 0:
            raise ConfigError("guidance_scale must be >= 0 (1: no guidance)", key="guidance_scale")
        meta = torch.get_default_device().type == "meta"
        parts = load_pipeline(pipeline, device="meta" if meta else "cpu")
        self.in_dim, self.pipeline, self.downsample = in_dim, str(pipeline), downsample
        self.conditioning_scale, self.guidance_scale = conditioning_scale, guidance_scale
        self.sampler, self.sampling_steps, self.seed = sampler, sampling_steps, seed
        self.unet, self.vae = parts.unet, parts.vae
        self.vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if downsample % self.vae_factor:
            raise ConfigError(f"downsample {downsample} must be a multiple of the VAE's factor {self.vae_factor}",
                              key="downsample")
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.controlnet = diffusers.ControlNetModel.from_unet(
            self.unet, load_weights_from_unet=controlnet_init == "unet" and not meta)
        self.controlnet.controlnet_cond_embedding = ConditionAdapter(
            in_dim, list(adapter_channels), self.controlnet.config.block_out_channels[0])
        self.scheduler_config = dict(parts.scheduler_config)
        train_schedule = diffusers.DDPMScheduler.from_config(self.scheduler_config)
        self.prediction = train_schedule.config.prediction_type
        self.num_train_timesteps = train_schedule.config.num_train_timesteps
        # derived from the folder, so not saved; buffers so that they follow the module's device
        self.register_buffer("alphas_cumprod", train_schedule.alphas_cumprod.clone().float(), persistent=False)
        self.register_buffer("prompt_embeds", parts.prompt_embeds.clone())  # stored with the checkpoint
        self.folder_digest = b"" if meta else weights_digest(self.unet, self.vae)
        self.register_buffer("pipeline_digest", torch.tensor(list(self.folder_digest or bytes(32)), dtype=torch.uint8))
        self.register_state_dict_post_hook(_without_frozen_parts)
        self.register_load_state_dict_pre_hook(_check_frozen_parts)

    @property
    def adapter(self) -> ConditionAdapter:
        return self.controlnet.controlnet_cond_embedding

    def train(self, mode: bool = True) -> "ControlNetDecoder":
        super().train(mode)
        self.unet.eval(), self.vae.eval()  # frozen: no dropout, whatever the loop asks
        return self

    # -- training path ------------------------------------------------------------------------
    @torch.no_grad()
    def diffusion_input(self, x: Tensor, grid: tuple[int, ...]) -> Tensor:
        """What the diffusion process noises in training: the VAE latents (a posterior
        sample, times the scaling factor) of images `x` in [-1, 1], resized (bilinear, as 4M)
        to the decoded size of a token `grid`."""
        size = tuple(n * self.downsample for n in grid)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.vae.encode(x.to(self.vae.dtype)).latent_dist.sample() * self.scaling_factor

    def denoise(self, noisy: Tensor, timesteps: Tensor, z: Tensor, drop: Tensor | None = None,
                conditioning_scale: float | None = None) -> Tensor:
        """The UNet's prediction for noisy latents `(B, 4, H, W)` at `timesteps` `(B,)`, with
        the ControlNet conditioned on token latents `z` `(B, h, w, in_dim)`; samples where
        `drop` `(B,)` is True get all-zero token latents (the unconditional condition)."""
        check_layout(z, "controlnet decoder latents", "BHWD", self.in_dim, 3)
        _, h, w, _ = z.shape
        height, width = noisy.shape[-2:]
        if (height * self.vae_factor, width * self.vae_factor) != (h * self.downsample, w * self.downsample):
            raise ValueError(f"controlnet decoder: a {h}x{w} token grid decodes {h * self.downsample}x"
                             f"{w * self.downsample} images, i.e. {h * self.downsample // self.vae_factor}x"
                             f"{w * self.downsample // self.vae_factor} VAE latents, got {height}x{width}")
        if drop is not None:
            z = torch.where(drop.reshape(-1, 1, 1, 1), torch.zeros_like(z), z)
        cond = F.interpolate(z.permute(0, 3, 1, 2), size=(height, width), mode="nearest").to(noisy.dtype)
        text = self.prompt_embeds.expand(noisy.shape[0], -1, -1).to(noisy.dtype)
        scale = self.conditioning_scale if conditioning_scale is None else conditioning_scale
        down, mid = self.controlnet(noisy, timesteps, encoder_hidden_states=text, controlnet_cond=cond,
                                    conditioning_scale=scale, return_dict=False)
        return self.unet(noisy, timesteps, encoder_hidden_states=text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]

    # -- decoding -----------------------------------------------------------------------------
    def make_scheduler(self, sampler: str | None = None):
        """A fresh scheduler of `sampler` (default: the config's) on the pipeline's schedule."""
        import diffusers

        sampler = self.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"controlnet decoder: unknown sampler '{sampler}'; use one of {', '.join(SAMPLERS)}")
        return getattr(diffusers, SAMPLERS[sampler]).from_config(self.scheduler_config)

    @torch.no_grad()
    def sample(self, z: Tensor, steps: int | None = None, guidance_scale: float | None = None,
               seed: int | None = None, generator: torch.Generator | None = None, sampler: str | None = None,
               conditioning_scale: float | None = None) -> Tensor:
        """Images in [-1, 1] for token latents `z`: `steps` denoising steps with
        classifier-free guidance `guidance_scale` (the unconditional branch is all-zero token
        latents), from noise of `generator` if given, else of `seed` and each sample's latents."""
        steps = self.sampling_steps if steps is None else int(steps)
        w = self.guidance_scale if guidance_scale is None else float(guidance_scale)
        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"controlnet decoder: steps must be in 1..{self.num_train_timesteps}, got {steps}")
        _, h, w_tokens, _ = z.shape
        latent_shape = (self.unet.config.in_channels, h * self.downsample // self.vae_factor,
                        w_tokens * self.downsample // self.vae_factor)
        scheduler = self.make_scheduler(sampler)
        scheduler.set_timesteps(steps, device=z.device)
        x = seeded_noise(z, latent_shape, generator, self.seed if seed is None else seed) * scheduler.init_noise_sigma
        guided = w != 1.0
        zz = torch.cat([torch.zeros_like(z), z]) if guided else z
        for t in scheduler.timesteps:
            xin = scheduler.scale_model_input(torch.cat([x, x]) if guided else x, t)
            out = self.denoise(xin, t.expand(xin.shape[0]), zz, conditioning_scale=conditioning_scale).float()
            if guided:
                uncond, cond = out.chunk(2)
                out = uncond + w * (cond - uncond)
            x = scheduler.step(out, t, x).prev_sample
        images = self.vae.decode((x / self.scaling_factor).to(self.vae.dtype)).sample
        return images.float().clamp(-1, 1)

    # -- Decoder interface ----------------------------------------------------------------------
    def forward(self, z: Tensor, noisy: Tensor | None = None, timesteps: Tensor | None = None,
                drop: Tensor | None = None, *, steps: int | None = None, guidance_scale: float | None = None,
                seed: int | None = None, generator: torch.Generator | None = None, sampler: str | None = None,
                conditioning_scale: float | None = None) -> Tensor:
        if noisy is None and timesteps is None:
            return self.sample(z, steps, guidance_scale, seed, generator, sampler, conditioning_scale)
        if noisy is None or timesteps is None:
            raise ValueError("controlnet decoder: the training path needs both noisy and timesteps")
        return self.denoise(noisy, timesteps, z, drop, conditioning_scale)

    def example_input(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, 2, 2, self.in_dim, generator=g)

    def example_cond(self, z: Tensor) -> dict[str, Any]:
        """The training path: noisy latents and their timesteps."""
        g = torch.Generator().manual_seed(1)
        b, h, w, _ = z.shape
        side = (h * self.downsample // self.vae_factor, w * self.downsample // self.vae_factor)
        return {"noisy": torch.randn(b, self.unet.config.in_channels, *side, generator=g),
                "timesteps": torch.randint(0, self.num_train_timesteps, (b,), generator=g)}


def _without_frozen_parts(module: ControlNetDecoder, state: dict[str, Tensor], prefix: str, _meta: Any) -> None:
    """State-dict hook: the frozen UNet and VAE stay in the pipeline folder; the digest of
    their weights as they are now goes in their place."""
    for key in [k for k in state if k.startswith(tuple(prefix + p for p in _FROZEN))]:
        del state[key]
    if module.folder_digest:  # not on the meta device
        state[prefix + "pipeline_digest"] = torch.tensor(list(weights_digest(module.unet, module.vae)),
                                                         dtype=torch.uint8)


def _check_frozen_parts(module: ControlNetDecoder, state: dict[str, Tensor], prefix: str, _meta: Any, _strict: bool,
                        _missing: list[str], _unexpected: list[str], _errors: list[str]) -> None:
    """Load hook: a saved digest must be the pipeline folder's (same frozen weights); the
    frozen parts are then filled in from the module itself, so nothing is missing."""
    saved = state.get(prefix + "pipeline_digest")
    if saved is not None and module.folder_digest and bytes(saved.tolist()) != module.folder_digest:
        raise TokcoreError(f"the UNet/VAE weights in {module.pipeline} differ from those this controlnet decoder "
                           "was trained with (pipeline_digest); decode with the pipeline folder it was trained on")
    for name, part in (("unet.", module.unet), ("vae.", module.vae)):
        for key, value in part.state_dict().items():
            state.setdefault(prefix + name + key, value)
