"""`tokcore import cosmos SOURCE`: NVIDIA's released Cosmos discrete video tokenizers
(`Cosmos-Tokenizer-DV4x8x8`, `-DV8x8x8`, `-DV8x16x16`: a folder with `encoder.jit` and
`decoder.jit`) as a tokcore run of the `cosmos` encoder and decoder and `cosmos_fsq`.

A `.jit` file is a TorchScript archive: a zip holding `<name>/data.pkl` (the module tree,
a pickle) and `<name>/data/<key>` (the raw bytes of each tensor storage) beside the archive's
code. Loading it with `torch.jit.load` would run that code; instead `data.pkl` is interpreted
opcode by opcode (`tok_rgb.pickles`: the TorchScript classes it names are recorded, never
imported) and each tensor is cut out of its storage record. The code is never read.

The compression factors are not in the tensors (a downsampling layer has the same weights
whether it halves time or not), so they come from the variant: `variant=DV8x16x16`, or the
folder's name as NVIDIA publishes it. Widths, depths and where attention sits are read off
the tensors' shapes, so a checkpoint of another size loads into a model of its own size.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from tok_rgb.pickles import module_tensors, read_torch_zip
from tokcore.api import ConfigError, Imported, Importer, InputError

# variant -> (temporal, spatial compression) and the shipped config of its model
VARIANTS = {"DV4x8x8": (4, 8, "tok-rgb:dv4x8x8"), "DV8x8x8": (8, 8, "tok-rgb:dv8x8x8"),
            "DV8x16x16": (8, 16, "tok-rgb:dv8x16x16")}
COSMOS_LEVELS = {6: [8, 8, 8, 5, 5, 5]}  # Cosmos's FSQ levels by latent width (64000 codes)
RESOLUTION = 1024  # the nominal size Cosmos's attn_resolutions refer to
# buffers the archives keep that the model computes itself (wavelet taps, FSQ's radix)
_DERIVED = ("wavelets", "_arange", "patch_size_buffer", "_levels", "_basis", "implicit_codebook")
# the archive's top-level module names -> the tokenizer's
_RENAME = {"encoder.jit": {"encoder.": "encoder.", "quant_conv.": "encoder.quant_conv."},
           "decoder.jit": {"decoder.": "decoder.", "post_quant_conv.": "decoder.post_quant_conv."}}


class CosmosImporter(Importer):
    """NVIDIA's Cosmos discrete video tokenizers from their released `encoder.jit` and
    `decoder.jit` (SOURCE: the folder holding both, or one of the two files).

    Args:
        variant: DV4x8x8, DV8x8x8 or DV8x16x16 (temporal x spatial compression); default:
            taken from the folder's name (`Cosmos-Tokenizer-DV4x8x8`).
        input_frames: frames of the clip recorded as the tokenizer's input shape.
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
                                     "discrete video tokenizer (DV)?")
                ours = rename[prefix] + key[len(prefix):]
                weights[ours], files[ours] = value, str(file)
        settings = architecture(weights, files, folder)
        for part in ("encoder", "decoder"):
            settings.update({f"model.{part}.spatial_compression": spatial, f"model.{part}.temporal_compression": temporal})
        return Imported(config=config, weights=weights, files=files, settings=settings,
                        input_shape=(3, self.input_frames, self.input_size, self.input_size),
                        notes=[f"Cosmos {variant}: " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in settings.items()
                                                                 if k.startswith("model.encoder."))])


def _variant_from_name(folder: Path) -> str:
    found = [v for v in VARIANTS if re.search(rf"(^|[^A-Za-z0-9]){v}($|[^A-Za-z0-9])", folder.name)]
    if len(found) != 1:
        raise ConfigError(f"{folder}: cannot tell the Cosmos variant from the folder's name; pass variant= one of "
                          f"{', '.join(VARIANTS)}", key="variant")
    return found[0]


def read_jit_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive's module tree by dotted name, read without
    running (or reading) its code."""
    what = "Cosmos TorchScript archive"
    root = read_torch_zip(file, what=what, classes=lambda module, name: module.startswith("__torch__."))
    return module_tensors(root, file=file, what=what)


def architecture(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path) -> dict[str, Any]:
    """The `cosmos` encoder's and decoder's size settings, read off the tensors' shapes."""

    def shape(key: str) -> tuple[int, ...]:
        if key not in weights:
            raise InputError(f"{source}: tensor '{key}' is missing; not a Cosmos discrete video tokenizer "
                             "(or the file is truncated)")
        return tuple(weights[key].shape)

    stem = shape("encoder.conv_in.0.conv3d.weight")
    channels, patch = stem[0], round((stem[1] / 3) ** (1 / 3))
    levels = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    mult = [shape(f"encoder.down.{i}.block.0.conv1.0.conv3d.weight")[0] // channels for i in range(levels)]
    blocks = 1 + max(int(m.group(1)) for k in weights if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    attn = [RESOLUTION // patch // 2 ** i for i in range(levels) if any(k.startswith(f"encoder.down.{i}.attn.")
                                                                        for k in weights)]
    embedding, z_channels = shape("encoder.quant_conv.conv3d.weight")[:2]
    if embedding not in COSMOS_LEVELS:
        key = "encoder.quant_conv.conv3d.weight"
        raise InputError(f"{files.get(key, source)}: tensor '{key}' projects to {embedding} channels; Cosmos's "
                         f"discrete tokenizers quantize {', '.join(map(str, COSMOS_LEVELS))} (FSQ levels)")
    shared = {"channels": channels, "channels_mult": mult, "num_res_blocks": blocks, "attn_resolutions": attn,
              "resolution": RESOLUTION, "z_channels": z_channels, "patch_size": patch}
    settings = {f"model.{part}.{k}": v for part in ("encoder", "decoder") for k, v in shared.items()}
    settings["model.encoder.embedding_dim"] = embedding
    settings["model.quantizer.levels"] = COSMOS_LEVELS[embedding]
    return settings
