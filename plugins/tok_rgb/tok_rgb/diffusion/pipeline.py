"""A local diffusers folder holding a pretrained latent-diffusion model: its parts, checked.

The `controlnet` decoder reads the frozen parts of a Stable-Diffusion-shaped pipeline from a
folder laid out as `save_pretrained` writes it (nothing is downloaded):

    unet/config.json, unet/diffusion_pytorch_model.safetensors    the denoiser
    vae/config.json, vae/diffusion_pytorch_model.safetensors      the latent space
    scheduler/scheduler_config.json                               the noise schedule
    empty_prompt.safetensors                                      the empty prompt's text embedding

The last file is tokcore's: the text encoder's output for the empty prompt (`prompt_embeds`,
`(1, tokens, cross_attention_dim)`), computed once so that no text encoder runs when training
or decoding (`python -m tok_rgb.diffusion.empty_prompt FOLDER` writes it for a folder that
has `text_encoder/` and `tokenizer/`; `tok_rgb.diffusion.tiny_pipeline` writes a whole tiny
folder). Weights are read from safetensors only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from tokcore.api import ConfigError, atomic_write_bytes

WEIGHTS = "diffusion_pytorch_model.safetensors"
EMPTY_PROMPT = "empty_prompt.safetensors"
CONFIGS = ("unet/config.json", "vae/config.json", "scheduler/scheduler_config.json")
FILES = (*CONFIGS, f"unet/{WEIGHTS}", f"vae/{WEIGHTS}", EMPTY_PROMPT)


@dataclass
class Pipeline:
    """The frozen parts of a pipeline folder, built (and, unless on the meta device, loaded)."""

    unet: nn.Module
    vae: nn.Module
    scheduler_config: dict[str, Any]
    prompt_embeds: Tensor  # (1, tokens, cross_attention_dim)


def check_folder(path: str | Path, *, weights: bool = True) -> Path:
    """`path` as a Path, or a ConfigError (key `pipeline`) naming every file it lacks."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder; name a local diffusers pipeline folder (unet/, vae/, "
                          "scheduler/, empty_prompt.safetensors), e.g. one made by "
                          "`python -m tok_rgb.diffusion.tiny_pipeline DIR`", key="pipeline")
    missing = [f for f in (FILES if weights else CONFIGS) if not (folder / f).is_file()]
    if missing:
        fix = (f"; write it with `python -m tok_rgb.diffusion.empty_prompt {folder}`"
               if missing == [EMPTY_PROMPT] else "")
        raise ConfigError(f"pipeline folder {folder} is incomplete: missing {', '.join(missing)}{fix}",
                          key="pipeline")
    return folder


def _read_json(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{file}: not a readable JSON config ({err})", key="pipeline") from None


def load_pipeline(path: str | Path, *, device: str | torch.device = "cpu") -> Pipeline:
    """The UNet, VAE, scheduler config and empty-prompt embedding of a pipeline folder, in eval
    mode with gradients off. On the meta device only the configs are read (shapes, counts)."""
    import diffusers

    meta = torch.device(device).type == "meta"
    folder = check_folder(path, weights=not meta)
    unet_config, vae_config = _read_json(folder / CONFIGS[0]), _read_json(folder / CONFIGS[1])
    scheduler_config = _read_json(folder / CONFIGS[2])
    if meta:
        with torch.device("meta"):
            unet = diffusers.UNet2DConditionModel.from_config(unet_config)
            vae = diffusers.AutoencoderKL.from_config(vae_config)
        tokens, width = 77, unet.config.cross_attention_dim
        prompt = torch.empty(1, tokens, width, device="meta")
    else:
        try:
            unet = diffusers.UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True,
                                                                  local_files_only=True, low_cpu_mem_usage=False)
            vae = diffusers.AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True,
                                                          local_files_only=True, low_cpu_mem_usage=False)
        except (OSError, ValueError, RuntimeError) as err:
            raise ConfigError(f"pipeline folder {folder}: cannot load its unet/ or vae/ ({err})",
                              key="pipeline") from None
        prompt = read_empty_prompt(folder)
        if prompt.shape[-1] != unet.config.cross_attention_dim:
            raise ConfigError(f"{folder / EMPTY_PROMPT}: the embedding has width {prompt.shape[-1]}, the UNet's "
                              f"cross_attention_dim is {unet.config.cross_attention_dim}; compute it with this "
                              "pipeline's text encoder", key="pipeline")
    for part in (unet, vae):
        part.requires_grad_(False).eval()
    return Pipeline(unet, vae, scheduler_config, prompt)


def read_empty_prompt(folder: Path) -> Tensor:
    file = folder / EMPTY_PROMPT
    try:
        embeds = load_file(str(file))["prompt_embeds"]
    except Exception as err:  # safetensors' errors name neither the file nor the fix
        raise ConfigError(f"{file}: not a safetensors file with a 'prompt_embeds' tensor ({err}); write it again "
                          f"with `python -m tok_rgb.diffusion.empty_prompt {folder}`", key="pipeline") from None
    if embeds.dim() != 3 or embeds.shape[0] != 1:
        raise ConfigError(f"{file}: prompt_embeds has shape {tuple(embeds.shape)}, expected (1, tokens, width)",
                          key="pipeline")
    return embeds.float()


def write_empty_prompt(folder: str | Path, prompt_embeds: Tensor) -> Path:
    """Save the empty prompt's embedding `(1, tokens, width)` into the folder (atomically)."""
    from safetensors.torch import save

    file = Path(folder) / EMPTY_PROMPT
    atomic_write_bytes(file, save({"prompt_embeds": prompt_embeds.detach().float().cpu().contiguous()}))
    return file


def weights_digest(*modules: nn.Module) -> bytes:
    """sha256 over the names and bytes of every tensor of `modules`: equal iff bit-identical."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.digest()

