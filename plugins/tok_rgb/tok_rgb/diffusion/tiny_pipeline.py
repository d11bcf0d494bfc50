"""Pipeline folders for the `controlnet` decoder without a download: a tiny Stable-Diffusion-
shaped pipeline with random weights (CPU tests, `tok-rgb:controlnet-quick`), and SD-1.5's
configs without weights (to build the full decoder on the meta device and count it).

    python -m tok_rgb.diffusion.tiny_pipeline pipelines/tiny-sd            # the quick config's
    python -m tok_rgb.diffusion.tiny_pipeline pipelines/sd15-configs --sd15-configs

The tiny pipeline has SD's parts and block types (a cross-attention UNet2DConditionModel,
a 4-level AutoencoderKL with 8x downsampling and 4 latent channels, SD's scaled-linear
epsilon schedule), scaled down. It has no text encoder: its `empty_prompt.safetensors` is a
fixed random embedding, which is what a random text encoder would give for "" anyway, and its
VAE's scaling factor is SD's rule (1 / std of the latents) applied to the random VAE.
Everything is written with `save_pretrained` into a temporary folder that is then renamed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tok_rgb.diffusion.pipeline import write_empty_prompt
from tokcore.api import atomic_directory

# SD-1.5 (runwayml/stable-diffusion-v1-5): its unet/, vae/ and scheduler/ configs
SD15_UNET = {
    "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
    "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SD15_VAE = {
    "act_fn": "silu", "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
    "sample_size": 512, "up_block_types": ["UpDecoderBlock2D"] * 4, "scaling_factor": 0.18215,
}
SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
    "clip_sample": False, "prediction_type": "epsilon", "trained_betas": None,
}
SD15_PROMPT_TOKENS = 77

TINY_UNET = {
    **SD15_UNET, "block_out_channels": [32, 64], "attention_head_dim": 8, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 4,
}
TINY_VAE = {**SD15_VAE, "block_out_channels": [8, 16, 16, 16], "layers_per_block": 1, "norm_num_groups": 8,
            "sample_size": 32}
TINY_PROMPT_TOKENS = 8


def write_tiny_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """A tiny SD-shaped pipeline with random weights (seeded) at `folder`; returns it."""
    import diffusers

    folder = Path(folder)
    g_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = diffusers.UNet2DConditionModel(**TINY_UNET)
        vae = diffusers.AutoencoderKL(**TINY_VAE)
        prompt = torch.randn(1, TINY_PROMPT_TOKENS, TINY_UNET["cross_attention_dim"])
        vae.register_to_config(scaling_factor=_unit_variance_scale(vae))
    finally:
        torch.random.set_rng_state(g_state)  # building a pipeline leaves the caller's random stream alone
    scheduler = diffusers.PNDMScheduler.from_config(SD15_SCHEDULER)
    with atomic_directory(folder) as tmp:
        unet.save_pretrained(Path(tmp) / "unet", safe_serialization=True)
        vae.save_pretrained(Path(tmp) / "vae", safe_serialization=True)
        scheduler.save_pretrained(Path(tmp) / "scheduler")
        write_empty_prompt(tmp, prompt)
    return folder


@torch.no_grad()
def _unit_variance_scale(vae) -> float:
    """SD's rule for the VAE's scaling factor (1 / std of the latents of images), on smooth
    random images: SD-1.5's 0.18215 is that of its own trained VAE, not of a random one."""
    coarse = torch.rand(8, 3, 4, 4) * 2 - 1
    images = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    return round(1.0 / float(vae.encode(images).latent_dist.mode().std()), 5)


def write_sd15_configs(folder: str | Path) -> Path:
    """SD-1.5's unet/, vae/ and scheduler/ configs without weights at `folder` (enough for a
    build on the meta device); returns it."""
    folder = Path(folder)
    with atomic_directory(folder) as tmp:
        for sub, name, config in (("unet", "config.json", {"_class_name": "UNet2DConditionModel", **SD15_UNET}),
                                  ("vae", "config.json", {"_class_name": "AutoencoderKL", **SD15_VAE}),
                                  ("scheduler", "scheduler_config.json", SD15_SCHEDULER)):
            (Path(tmp) / sub).mkdir()
            (Path(tmp) / sub / name).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tok_rgb.diffusion.tiny_pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="where to write the pipeline folder (must not exist)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tiny pipeline's random weights")
    p.add_argument("--sd15-configs", action="store_true", help="SD-1.5's configs without weights instead")
    args = p.parse_args(argv)
    if Path(args.folder).exists():
        p.error(f"{args.folder} exists; name a new folder")
    folder = write_sd15_configs(args.folder) if args.sd15_configs else write_tiny_pipeline(args.folder, args.seed)
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
