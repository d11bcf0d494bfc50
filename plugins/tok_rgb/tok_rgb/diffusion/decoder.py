"""`divae`: 4M's DiVAE decoder, a diffusers UNet2DModel conditioned on the quantized latents.

As in 4M (`fourm/vq/models/unet/unet.py`, PatchedUNetCondCat): the noisy image is cut into
`patch_size` x `patch_size` patches folded into channels (pixel unshuffle), the latents are
upsampled (nearest) to that patch grid and concatenated as extra channels, and the UNet's
output is unfolded back to pixels. Training feeds a noisy image and its timesteps (the
`diffusion` trainer); decoding samples with DDIM from noise (`Tokenizer.decode`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from tok_rgb.diffusion.schedule import PREDICTIONS, Prediction, ddim_sample, seeded_noise
from tokcore.api import ConfigError, Decoder, require_dim
from tokcore.nn.shapes import check_layout, divide

_INSTALL = "pip install 'tok-rgb[diffusion]'"


def _require_diffusers():
    try:
        import diffusers
    except ImportError as exc:
        raise ConfigError(f"decoder 'divae' needs diffusers, which cannot be imported ({exc}): {_INSTALL}",
                          key="name") from None
    return diffusers


class DiVAEDecoder(Decoder):
    """Diffusion decoder of 4M's DiVAE: latents `(B, h, w, in_dim)` -> images `(B, C, h*f, w*f)`.

    `forward(z)` samples an image with DDIM (deterministic, see `seed`);
    `forward(z, noisy=x_t, timesteps=t)` returns the UNet's prediction for a noisy batch (the
    training path). Sampling options at decode time: `tok.decode(tokens, steps=10, seed=1)`
    or `generator=torch.Generator().manual_seed(1)`.

    Args:
        in_dim: channels of the latents. Default: the quantizer's dim in a tokenizer.
        out_channels: image channels C.
        downsample: pixels per token along each side, f (the encoder's downsampling factor);
            the sampled image is f times the token grid.
        patch_size: side of the pixel patches folded into channels before the UNet (4 in 4M).
        channels: UNet channels at each resolution level (4M: 256 x [1, 2, 2, 2]).
        layers_per_block: ResNet blocks per level (4M: 3).
        attention_levels: levels (0 = full patch-grid resolution) with self-attention; the
            middle block always has it (4M: [2, 3], at 4x and 8x below the patch grid).
        head_dim: channels per attention head, or None for one head (4M).
        norm_groups: GroupNorm groups; must divide every entry of `channels`.
        dropout: dropout in the ResNet blocks.
        prediction: what the UNet predicts: "v_prediction" (4M), "epsilon" or "sample" (x0).
        num_train_timesteps: diffusion steps of the training process.
        beta_schedule: diffusers' beta schedule: "squaredcos_cap_v2" (cosine, 4M), "linear",
            "scaled_linear".
        zero_terminal_snr: rescale the schedule so that the last step is pure noise (4M;
            Lin et al. 2023); needs "v_prediction" or "sample".
        thresholding: dynamic thresholding of the predicted x0 while sampling (4M; Imagen).
        clip_sample: clip the predicted x0 to [-1, 1] while sampling.
        sampling_steps: DDIM steps when decoding (timesteps spaced "trailing", as in 4M).
        seed: seed of the sampling noise. Each sample's noise is drawn from this seed and the
            sample's own latents, so a sample gets the same noise in any batch, batch size or
            process (the image then differs only by the float rounding of batched kernels).
    """

    example_config: ClassVar[dict] = {
        "in_dim": 4, "downsample": 8, "patch_size": 2, "channels": [8, 16], "layers_per_block": 1,
        "attention_levels": [1], "norm_groups": 4, "num_train_timesteps": 100, "sampling_steps": 2,
    }

    def __init__(self, in_dim: int | None = None, out_channels: int = 3, downsample: int = 16, patch_size: int = 4,
                 channels: list[int] = (256, 512, 512, 512), layers_per_block: int = 3,
                 attention_levels: list[int] = (2, 3), head_dim: int | None = None, norm_groups: int = 32,
                 dropout: float = 0.0, prediction: Prediction = "v_prediction", num_train_timesteps: int = 1000,
                 beta_schedule: str = "squaredcos_cap_v2", zero_terminal_snr: bool = True,
                 thresholding: bool = True, clip_sample: bool = False, sampling_steps: int = 50, seed: int = 0):
        super().__init__()
        in_dim = require_dim(in_dim, "in_dim")
        diffusers = _require_diffusers()
        channels, attention_levels = list(channels), list(attention_levels)
        if prediction not in PREDICTIONS:
            raise ConfigError(f"unknown prediction '{prediction}'; use one of {', '.join(PREDICTIONS)}", key="prediction")
        if prediction == "epsilon" and zero_terminal_snr:
            raise ConfigError("'epsilon' cannot be used with zero_terminal_snr: the last step holds no signal, so "
                              "x0 cannot be recovered from the noise; use v_prediction or set zero_terminal_snr: false",
                              key="prediction")
        if downsample % patch_size:
            raise ConfigError(f"patch_size {patch_size} must divide downsample {downsample}", key="patch_size")
        if bad := [c for c in channels if c % norm_groups]:
            raise ConfigError(f"norm_groups {norm_groups} must divide every entry of channels; {bad} are not "
                              "multiples", key="norm_groups")
        if bad := [lvl for lvl in attention_levels if not 0 <= lvl < len(channels)]:
            raise ConfigError(f"attention_levels {bad} are outside 0..{len(channels) - 1} (one per entry of channels)",
                              key="attention_levels")
        if sampling_steps < 1 or sampling_steps > num_train_timesteps:
            raise ConfigError(f"sampling_steps must be in 1..num_train_timesteps ({num_train_timesteps})",
                              key="sampling_steps")
        self.in_dim, self.out_channels = in_dim, out_channels
        self.downsample, self.patch_size = downsample, patch_size
        self.prediction, self.num_train_timesteps = prediction, num_train_timesteps
        self.sampling_steps, self.seed = sampling_steps, seed
        self.levels = len(channels)
        folded = out_channels * patch_size ** 2
        attn = set(attention_levels)
        self.unet = diffusers.UNet2DModel(
            in_channels=folded + in_dim, out_channels=folded, block_out_channels=tuple(channels),
            layers_per_block=layers_per_block, norm_num_groups=norm_groups, dropout=dropout,
            attention_head_dim=head_dim,
            down_block_types=tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(self.levels)),
            up_block_types=tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(self.levels))),
        )
        self.scheduler = diffusers.DDIMScheduler(
            num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction,
            rescale_betas_zero_snr=zero_terminal_snr, thresholding=thresholding, clip_sample=clip_sample,
            timestep_spacing="trailing", set_alpha_to_one=True)
        # derived from the config, so not saved; a buffer so that it follows the module's device
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)

    # -- training path ------------------------------------------------------------------------
    def denoise(self, noisy: Tensor, timesteps: Tensor, z: Tensor) -> Tensor:
        """The UNet's prediction (of `self.prediction`) for noisy images `(B, C, H, W)` at
        integer `timesteps` `(B,)`, conditioned on latents `z` `(B, h, w, in_dim)`."""
        check_layout(noisy, "divae decoder", "BCHW", self.out_channels, 1)
        check_layout(z, "divae decoder latents", "BHWD", self.in_dim, 3)
        _, _, height, width = noisy.shape
        _, h, w, _ = z.shape
        if (height, width) != (h * self.downsample, w * self.downsample):
            raise ValueError(f"divae decoder: a {h}x{w} token grid with downsample {self.downsample} decodes "
                             f"{h * self.downsample}x{w * self.downsample} images, got {height}x{width}; set "
                             "model.decoder.downsample to the encoder's downsampling factor")
        grid = 2 ** (self.levels - 1)
        divide(height // self.patch_size, grid, "divae decoder", "H / patch_size", "2^(levels - 1)")
        divide(width // self.patch_size, grid, "divae decoder", "W / patch_size", "2^(levels - 1)")
        x = F.pixel_unshuffle(noisy, self.patch_size)
        cond = F.interpolate(z.permute(0, 3, 1, 2), size=x.shape[-2:], mode="nearest").to(x.dtype)
        out = self.unet(torch.cat([x, cond], dim=1), timesteps).sample
        return F.pixel_shuffle(out, self.patch_size)

    def diffusion_input(self, x: Tensor, grid: tuple[int, ...]) -> Tensor:
        """What the diffusion process noises in training: the normalized images themselves."""
        return x

    # -- decoding -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, z: Tensor, steps: int | None = None, generator: torch.Generator | None = None,
               seed: int | None = None) -> Tensor:
        """Images for latents `z` by DDIM in `steps` steps (default `sampling_steps`), from
        noise of `generator` if given, else of `seed` (default `self.seed`) and each sample's
        latents."""
        steps = self.sampling_steps if steps is None else int(steps)
        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"divae decoder: steps must be in 1..{self.num_train_timesteps}, got {steps}")
        _, h, w, _ = z.shape
        shape = (self.out_channels, h * self.downsample, w * self.downsample)
        noise = seeded_noise(z, shape, generator, self.seed if seed is None else seed)
        # a fresh scheduler per call: set_timesteps changes its state
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        return ddim_sample(lambda x, t: self.denoise(x, t, z), scheduler, noise, steps)

    # -- Decoder interface ----------------------------------------------------------------------
    def forward(self, z: Tensor, noisy: Tensor | None = None, timesteps: Tensor | None = None, *,
                steps: int | None = None, generator: torch.Generator | None = None,
                seed: int | None = None) -> Tensor:
        if noisy is None and timesteps is None:
            return self.sample(z, steps, generator, seed)
        if noisy is None or timesteps is None:
            raise ValueError("divae decoder: the training path needs both noisy and timesteps")
        return self.denoise(noisy, timesteps, z)

    def example_input(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, 2, 2, self.in_dim, generator=g)

    def example_cond(self, z: Tensor) -> dict[str, Any]:
        """The training path: a noisy image and its timesteps."""
        g = torch.Generator().manual_seed(1)
        b, h, w, _ = z.shape
        return {"noisy": torch.randn(b, self.out_channels, h * self.downsample, w * self.downsample, generator=g),
                "timesteps": torch.randint(0, self.num_train_timesteps, (b,), generator=g)}
