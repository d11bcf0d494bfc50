"""tokenizer.json: what a checkpoint records about its tokenizer, and reading it back.

It holds enough to rebuild and describe the tokenizer with no config file: the registry
names and parameters of its components, the modality with its normalization, the input
spec, token grid and codebook, and the versions of the plugins that provided them. `format`
versions the file; `read` upgrades older formats, so a run saved by an older tokcore loads.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any

from tokcore.errors import TokcoreError

FILE = "tokenizer.json"
FORMAT = 2  # 2: the modality is always recorded (format 1 wrote null for plain arrays)


def describe(model: Any, spec: Any) -> dict[str, Any]:
    """The tokenizer.json record of `model`, built from `spec` (a RunSpec)."""
    from tokcore import registry
    from tokcore._version import __version__

    parts = (spec.model.encoder, spec.model.quantizer, spec.model.decoder, spec.modality)
    used = sorted({registry.provider(c.kind, c.name).dist for c in parts if c is not None})
    # the tokenizer's own record of its components: what the spec left to it (a quantizer's dim,
    # a decoder's in_dim) filled in, so the checkpoint rebuilds exactly this model
    recorded = getattr(model, "config", None) or spec.model.config()
    return {"format": FORMAT, "tokcore_version": __version__, **model.info(), "model": recorded,
            "plugins": {dist: _version(dist) for dist in used}}


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""


def read(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's tokenizer.json, upgraded to the current format."""
    path = Path(checkpoint) / FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokcoreError(f"{path.parent}: not a checkpoint directory (no {FILE})") from None
    except json.JSONDecodeError as err:
        raise TokcoreError(f"{path}: not valid JSON ({err}); the checkpoint is damaged") from None
    version = meta.get("format", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise TokcoreError(f"{path}: format {version} is newer than this tokcore reads ({FORMAT}): "
                           "pip install -U tokcore")
    if version < 2 and meta.get("modality") is None:
        meta["modality"] = {"name": "array"}  # format 1 left plain arrays without a modality
    meta["format"] = FORMAT
    return meta
