"""`tokcore import 4m SOURCE`: a 4M ViT VQ-VAE tokenizer as EPFL-VILAB publishes them on the
Hugging Face Hub (a folder with `config.json`, the `VQVAE` constructor's arguments, and
`model.safetensors`) as a tokcore run of `fourm_vit` encoder and decoder and core's `vq`
(cosine codebook, as 4M's `norm_codes`).

Both files are read as data (JSON, safetensors); nothing runs. The normalization 4M's data
pipeline applies before the tokenizer is recorded in the run's modality, so encode/decode take
0-255 pixels: with `undo_std` false the network sees ImageNet-standardized pixels (mean 0.485,
0.456, 0.406 and std 0.229, 0.224, 0.225 of [0, 1] values), with `undo_std` true it undoes that
itself and sees [-1, 1]. The decoder's output is taken to be in the space of the network's input.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from tokcore.api import ConfigError, Imported, Importer, InputError

CONFIG = "tok-rgb:4m-vqvae"
HEADS = {"vit_s": 8, "vit_b": 12, "vit_l": 16}  # 4M's ViT sizes: attention heads (not in the weights)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# the VQ-VAE's top-level modules -> the tokenizer's
_RENAME = {"encoder.": "encoder.", "quant_proj.": "encoder.quant_proj.", "post_quant_proj.": "decoder.post_quant_proj.",
           "decoder.": "decoder."}
_CODEBOOK = "quantize._codebook.embed"
_LUCID_STATE = ("quantize._codebook.cluster_size", "quantize._codebook.initted", "quantize._codebook.embed_avg")


class FourMImporter(Importer):
    """A 4M ViT VQ-VAE tokenizer from its Hub folder (`config.json` + `model.safetensors`).

    Args:
        num_heads: attention heads, for an `enc_type` other than 4M's vit_s/vit_b/vit_l
            (the weights do not say)."""

    def __init__(self, num_heads: int | None = None):
        self.num_heads = num_heads

    def read(self, source: Path) -> Imported:
        folder = source.parent if source.is_file() else source
        config_file, weights_file = folder / "config.json", folder / "model.safetensors"
        for file in (config_file, weights_file):
            if not file.is_file():
                raise InputError(f"{file}: missing; a 4M tokenizer folder holds config.json and model.safetensors")
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise InputError(f"{config_file}: not valid JSON ({err})") from None
        _check_supported(config, config_file)
        raw = _read_safetensors(weights_file)
        weights: dict[str, torch.Tensor] = {}
        for key, value in raw.items():
            if key in _LUCID_STATE:
                continue  # the quantizer's training statistics; vq keeps its own (below)
            if key == _CODEBOOK:
                weights.update(_vq_state(value))
                continue
            prefix = next((p for p in _RENAME if key.startswith(p)), None)
            if prefix is None:
                raise InputError(f"{weights_file}: tensor '{key}' is not part of a 4M ViT VQ-VAE; is this a VQVAE "
                                 "(not a DiVAE or ControlNet) tokenizer?")
            weights[_RENAME[prefix] + key[len(prefix):]] = value
        if "quantizer.embed" not in weights:
            raise InputError(f"{weights_file}: tensor '{_CODEBOOK}' is missing; the file is truncated or not a 4M VQ-VAE")
        settings = self._settings(config, weights, weights_file)
        size = int(config.get("image_size", 224))
        return Imported(config=CONFIG, weights=weights, files={k: str(weights_file) for k in weights},
                        settings=settings, input_shape=(3, size, size),
                        notes=[(f"4M VQ-VAE: {config.get('enc_type')}/{config.get('dec_type')}, "
                                f"{config.get('codebook_size')} codes, undo_std={bool(config.get('undo_std'))}")])

    def _settings(self, config: dict[str, Any], weights: dict[str, torch.Tensor], file: Path) -> dict[str, Any]:
        def heads(kind: str) -> int:
            name = str(config.get(kind, ""))
            if self.num_heads is not None:
                return self.num_heads
            for prefix, n in HEADS.items():
                if name.startswith(prefix):
                    return n
            raise ConfigError(f"{file.parent / 'config.json'}: {kind} '{name}' is not one of 4M's "
                              f"({', '.join(HEADS)}); pass num_heads=", key="num_heads")

        def depth(part: str) -> int:
            return 1 + max(int(m.group(1)) for k in weights if (m := re.match(rf"{part}\.blocks\.(\d+)\.", k)))

        latent, dim_enc = weights["encoder.quant_proj.weight"].shape[:2]
        dim_dec = weights["decoder.post_quant_proj.weight"].shape[0]
        size = int(config.get("image_size", 224))
        patch = int(config.get("patch_size", 16))
        settings: dict[str, Any] = {
            "model.encoder.in_channels": int(config.get("n_channels", 3)), "model.encoder.latent_dim": int(latent),
            "model.encoder.image_size": int(config.get("image_size_enc") or size), "model.encoder.patch_size": patch,
            "model.encoder.dim_tokens": int(dim_enc), "model.encoder.depth": depth("encoder"),
            "model.encoder.num_heads": heads("enc_type"), "model.encoder.post_mlp": bool(config.get("post_mlp", False)),
            "model.decoder.out_channels": int(config.get("n_channels", 3)),
            "model.decoder.image_size": int(config.get("image_size_dec") or size),
            "model.decoder.patch_size": int(config.get("patch_size_dec") or patch),
            "model.decoder.dim_tokens": int(dim_dec), "model.decoder.depth": depth("decoder"),
            "model.decoder.num_heads": heads("dec_type"), "model.decoder.post_mlp": bool(config.get("post_mlp", False)),
            "model.decoder.out_conv": bool(config.get("out_conv", False)),
            "model.quantizer.codebook_size": int(weights["quantizer.embed"].shape[0]),
            "model.quantizer.cosine": bool(config.get("norm_codes", True)),
        }
        if config.get("undo_std"):  # the network undoes ImageNet's standardization: it sees [-1, 1]
            settings.update({"modality.mean": 127.5, "modality.std": 127.5})
        else:
            settings.update({"modality.mean": [255 * m for m in IMAGENET_MEAN], "modality.std": [255 * s for s in IMAGENET_STD]})
        return settings


def _check_supported(config: dict[str, Any], file: Path) -> None:
    """The 4M tokenizers this importer reads: ViT VQ-VAEs of images (RGB), one codebook."""
    unsupported = {"n_labels": lambda v: v is not None, "patch_proj": lambda v: v is False,
                   "quant_type": lambda v: v not in (None, "lucid"), "num_codebooks": lambda v: v not in (None, 1),
                   "enc_type": lambda v: "vit" not in str(v or "vit"), "dec_type": lambda v: "vit" not in str(v or "vit"),
                   "n_channels": lambda v: v not in (None, 3)}
    for key, bad in unsupported.items():
        if bad(config.get(key)):
            raise InputError(f"{file}: {key} {config[key]!r} is not supported: `tokcore import 4m` reads 4M's ViT "
                             "VQ-VAEs of RGB images (semantic segmentation, feature-map, MLP, multi-codebook and "
                             "DiVAE tokenizers are not supported yet)")


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except Exception as err:  # safetensors' errors name neither the file nor the cause
        raise InputError(f"{file}: not a readable safetensors file ({err}); the file is truncated or damaged") from None


def _vq_state(embed: torch.Tensor) -> dict[str, torch.Tensor]:
    """core `vq`'s state for the codebook `embed` (K, D): EMA sums that reproduce it (each code
    counted once, as a freshly initialized `vq`), every code in use, initialized."""
    embed = embed.reshape(-1, embed.shape[-1]).float()
    return {"quantizer.embed": embed, "quantizer.embed_sum": embed.clone(),
            "quantizer.cluster_size": torch.ones(embed.shape[0]),
            "quantizer.steps_unused": torch.zeros(embed.shape[0], dtype=torch.long),
            "quantizer.initialized": torch.tensor(True)}
