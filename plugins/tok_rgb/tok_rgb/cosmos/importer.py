"""`tokcore import cosmos SOURCE`: NVIDIA's released Cosmos discrete tokenizers (a folder with
`encoder.jit` and `decoder.jit`) as a tokcore run with `cosmos_fsq`: the video ones
(`Cosmos-Tokenizer-DV4x8x8`, `-DV8x8x8`, `-DV8x16x16`) with the `cosmos` encoder and decoder,
the image ones (`Cosmos-Tokenizer-DI8x8`, `-DI16x16`) with `cosmos_image`.

A `.jit` file is a TorchScript archive: a zip holding `<name>/data.pkl` (the module tree,
a pickle) and `<name>/data/<key>` (the raw bytes of each tensor storage) beside the archive's
code. Loading it with `torch.jit.load` would run that code; instead `data.pkl` is interpreted
opcode by opcode (`tok_rgb.pickles`: the TorchScript classes it names are recorded, never
imported) and each tensor is cut out of its storage record. The code is never read.

The compression factors are not in the tensors (a downsampling layer has the same weights
whether it halves time or not), so they come from the variant: `variant=DV8x16x16`, or the
folder's name as NVIDIA publishes it. Whether the archive is of images or video is read off
its first convolution (2-D or 3-D), and must agree with the variant. Widths, depths and where attention sits are read off
the tensors' shapes, so a checkpoint of another size loads into a model of its own size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tok_rgb.pickles import module_tensors, read_torch_zip
from tokcore.api import ConfigError, Imported, Importer, InputError

# variant -> (temporal compression, None for images; spatial compression) and the shipped config
VARIANTS = {"DV4x8x8": (4, 8, "tok-rgb:dv4x8x8"), "DV8x8x8": (8, 8, "tok-rgb:dv8x8x8"),
            "DV8x16x16": (8, 16, "tok-rgb:dv8x16x16"),
            "DI8x8": (None, 8, "tok-rgb:di8x8"), "DI16x16": (None, 16, "tok-rgb:di16x16")}
COSMOS_LEVELS = {6: [8, 8, 8, 5, 5, 5]}  # Cosmos's FSQ levels by latent width (64000 codes)
RESOLUTION = 1024  # the nominal size Cosmos's attn_resolutions refer to
# buffers the archives keep that the model computes itself (wavelet taps, FSQ's radix)
_DERIVED = ("wavelets", "_arange", "patch_size_buffer", "_levels", "_basis", "implicit_codebook")
_IMAGE_STEM, _VIDEO_STEM = "encoder.conv_in.weight", "encoder.conv_in.0.conv3d.weight"
# the archive's top-level module names -> the tokenizer's
_RENAME = {"encoder.jit": {"encoder.": "encoder.", "quant_conv.": "encoder.quant_conv."},
           "decoder.jit": {"decoder.": "decoder.", "post_quant_conv.": "decoder.post_quant_conv."}}


class CosmosImporter(Importer):
    """NVIDIA's Cosmos discrete video and image tokenizers from their released `encoder.jit`
    and `decoder.jit` (SOURCE: the folder holding both, or one of the two files).

    Args:
        variant: DV4x8x8, DV8x8x8 or DV8x16x16 (video: temporal x spatial compression), DI8x8
            or DI16x16 (images); default: taken from the folder's name (`Cosmos-Tokenizer-DV4x8x8`).
        input_frames: frames of the clip recorded as the tokenizer's input shape (video).
        input_size: height and width recorded as the tokenizer's input shape."""

    def __init__(self, variant: str | None = None, input_frames: int = 17, input_size: int = 256):
        if variant is not None and variant not in VARIANTS:
            raise ConfigError(f"unknown Cosmos variant '{variant}'; use one of {', '.join(VARIANTS)}", key="variant")
        self.variant, self.input_frames, self.input_size = variant, input_frames, input_size

    def read(self, source: Path) -> Imported:
        folder = source.parent if source.is_file() else source
        variant = self.variant or _variant_from_name(folder)
        temporal, spatial, config = VARIANTS[variant]
        weights: dict[str, torch.Tensor] = {}
        files: dict[str, str] = {}
        for name, rename in _RENAME.items():
            file = folder / name
            if not file.is_file():
                raise InputError(f"{file}: missing; a Cosmos tokenizer folder holds encoder.jit and decoder.jit")
            for key, value in read_jit_tensors(file).items():
                if key.rsplit(".", 1)[-1] in _DERIVED:
                    continue
                prefix = next((p for p in rename if key.startswith(p)), None)
                if prefix is None:
                    raise InputError(f"{file}: tensor '{key}' is not part of a Cosmos {name[:-4]}; is this a "
                                     "discrete Cosmos tokenizer (DV or DI)?")
                ours = rename[prefix] + key[len(prefix):]
                weights[ours], files[ours] = value, str(file)
        image = _is_image(weights, files, folder)
        if image != (temporal is None):
            kind, other = ("image", "DI") if image else ("video", "DV")
            raise ConfigError(f"{folder}: the archive holds a Cosmos {kind} tokenizer, but the variant is {variant}; "
                              f"pass variant= one of {', '.join(v for v in VARIANTS if v.startswith(other))}",
                              key="variant")
        if image:
            settings = image_architecture(weights, files, folder, spatial)
            input_shape: tuple[int, ...] = (3, self.input_size, self.input_size)
        else:
            settings = architecture(weights, files, folder)
            for part in ("encoder", "decoder"):
                settings.update({f"model.{part}.spatial_compression": spatial,
                                 f"model.{part}.temporal_compression": temporal})
            input_shape = (3, self.input_frames, self.input_size, self.input_size)
        return Imported(config=config, weights=weights, files=files, settings=settings, input_shape=input_shape,
                        notes=[f"Cosmos {variant}: " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in settings.items()
                                                                 if k.startswith("model.encoder."))])


def _variant_from_name(folder: Path) -> str:
    found = [v for v in VARIANTS if re.search(rf"(^|[^A-Za-z0-9]){v}($|[^A-Za-z0-9])", folder.name)]
    if len(found) != 1:
        raise ConfigError(f"{folder}: cannot tell the Cosmos variant from the folder's name; pass variant= one of "
                          f"{', '.join(VARIANTS)}", key="variant")
    return found[0]


def _is_image(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path) -> bool:
    if _IMAGE_STEM in weights or _VIDEO_STEM in weights:
        return _IMAGE_STEM in weights
    raise InputError(f"{files.get(next(iter(weights), ''), source)}: neither '{_IMAGE_STEM}' (image) nor "
                     f"'{_VIDEO_STEM}' (video) is there; not a Cosmos discrete tokenizer (or the file is truncated)")


def read_jit_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive's module tree by dotted name, read without
    running (or reading) its code."""
    what = "Cosmos TorchScript archive"
    root = read_torch_zip(file, what=what, classes=lambda module, name: module.startswith("__torch__."))
    return module_tensors(root, file=file, what=what)


def _shapes(weights: dict[str, torch.Tensor], source: Path) -> Callable[[str], tuple[int, ...]]:
    def shape(key: str) -> tuple[int, ...]:
        if key not in weights:
            raise InputError(f"{source}: tensor '{key}' is missing; not a Cosmos discrete tokenizer "
                             "(or the file is truncated)")
        return tuple(weights[key].shape)

    return shape


def _count(weights: dict[str, torch.Tensor], pattern: str) -> int:
    """1 + the largest index matched by the group of `pattern` among the keys."""
    return 1 + max(int(m.group(1)) for k in weights if (m := re.match(pattern, k)))


def _quantizer(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path, key: str) -> dict[str, Any]:
    embedding = _shapes(weights, source)(key)[0]
    if embedding not in COSMOS_LEVELS:
        raise InputError(f"{files.get(key, source)}: tensor '{key}' projects to {embedding} channels; Cosmos's "
                         f"discrete tokenizers quantize {', '.join(map(str, COSMOS_LEVELS))} (FSQ levels)")
    return {"model.encoder.embedding_dim": embedding, "model.quantizer.levels": COSMOS_LEVELS[embedding]}


def image_architecture(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path,
                       spatial: int) -> dict[str, Any]:
    """The `cosmos_image` encoder's and decoder's size settings, read off the tensors' shapes.
    Attention sizes are counted per part, as Cosmos counts them (the decoder from a smaller
    start), so that each part has attention where its tensors say."""
    shape = _shapes(weights, source)
    stem = shape(_IMAGE_STEM)
    channels, patch = stem[0], round(math.sqrt(stem[1] / 3))
    levels = _count(weights, r"encoder\.down\.(\d+)\.")
    mult = [shape(f"encoder.down.{i}.block.0.conv1.weight")[0] // channels for i in range(levels)]
    blocks = _count(weights, r"encoder\.down\.0\.block\.(\d+)\.")
    steps = sum(f"encoder.down.{i}.downsample.conv.weight" in weights for i in range(levels))
    if patch * 2 ** steps != spatial:  # unlike video's, the image archives' downsamplings have weights
        found = patch * 2 ** steps
        raise ConfigError(f"{source}: the archive compresses {found}x{found} (DI{found}x{found}), but the variant says "
                          f"{spatial}x{spatial}; pass variant=DI{found}x{found}", key="variant")
    top = RESOLUTION // patch
    encoder_res = [top // 2 ** min(i, steps) for i in range(levels)]
    decoder_res = [top // 2 ** (levels - 1) * 2 ** min(levels - 1 - i, steps) for i in range(levels)]
    attn = {part: sorted({res[i] for i in range(levels) if any(k.startswith(f"{part}.{stage}.{i}.attn.")
                                                              for k in weights)}, reverse=True)
            for part, stage, res in (("encoder", "down", encoder_res), ("decoder", "up", decoder_res))}
    z_channels = shape("encoder.quant_conv.weight")[1]
    shared = {"channels": channels, "channels_mult": mult, "num_res_blocks": blocks, "resolution": RESOLUTION,
              "z_channels": z_channels, "patch_size": patch, "spatial_compression": spatial}
    settings = {f"model.{part}.{k}": v for part in ("encoder", "decoder") for k, v in shared.items()}
    settings.update({f"model.{part}.attn_resolutions": attn[part] for part in ("encoder", "decoder")})
    return {**settings, **_quantizer(weights, files, source, "encoder.quant_conv.weight")}


def architecture(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path) -> dict[str, Any]:
    """The `cosmos` encoder's and decoder's size settings, read off the tensors' shapes."""
    shape = _shapes(weights, source)
    stem = shape("encoder.conv_in.0.conv3d.weight")
    channels, patch = stem[0], round((stem[1] / 3) ** (1 / 3))
    levels = _count(weights, r"encoder\.down\.(\d+)\.")
    mult = [shape(f"encoder.down.{i}.block.0.conv1.0.conv3d.weight")[0] // channels for i in range(levels)]
    blocks = _count(weights, r"encoder\.down\.0\.block\.(\d+)\.")
    attn = [RESOLUTION // patch // 2 ** i for i in range(levels) if any(k.startswith(f"encoder.down.{i}.attn.")
                                                                        for k in weights)]
    z_channels = shape("encoder.quant_conv.conv3d.weight")[1]
    shared = {"channels": channels, "channels_mult": mult, "num_res_blocks": blocks, "attn_resolutions": attn,
              "resolution": RESOLUTION, "z_channels": z_channels, "patch_size": patch}
    settings = {f"model.{part}.{k}": v for part in ("encoder", "decoder") for k, v in shared.items()}
    return {**settings, **_quantizer(weights, files, source, "encoder.quant_conv.conv3d.weight")}
