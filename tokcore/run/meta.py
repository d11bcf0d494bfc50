"""tokenizer.json: what a checkpoint records about its tokenizer, and reading it back.

It holds enough to rebuild and describe the tokenizer with no config file: the registry
names and parameters of its components, the modality with its normalization, the input
spec, token grid and codebook, the distribution that provided each component of the run
(`providers`, by config key: `{"model.quantizer": "tokcore", "data": "tok-rgb", ...}`) and
the versions of the distributions that provided the tokenizer's own (`plugins`: model and
modality). `format` versions the file; `read` upgrades older formats, so a run saved by an
older tokcore loads.

Names are resolved through the recorded providers: when a distribution installed later
registers a name the run uses (a third-party `vq` beside core's), the saved run keeps the
component it was trained with (`tokcore:vq`) instead of failing as ambiguous. Files written
before `providers` fall back to the distributions listed under `plugins`, then to the plain
names.
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any, Callable, MutableMapping

from tokcore.errors import TokcoreError

FILE = "tokenizer.json"
FORMAT = 2  # 2: the modality is always recorded (format 1 wrote null for plain arrays)

# Where a run's components sit in its config (and tokenizer.json), and their kinds.
COMPONENTS = {"model.encoder": "encoder", "model.quantizer": "quantizer", "model.decoder": "decoder",
              "modality": "modality", "loss": "loss", "trainer": "trainer", "data": "dataset"}


def describe(model: Any, spec: Any) -> dict[str, Any]:
    """The tokenizer.json record of `model`, built from `spec` (a RunSpec)."""
    from tokcore import registry
    from tokcore._version import __version__

    info = model.info()
    # the tokenizer's own record of its components: what the spec left to it (a quantizer's dim,
    # a decoder's in_dim) filled in, so the checkpoint rebuilds exactly this model
    recorded = getattr(model, "config", None) or spec.model.config()
    names = {key: c.name for key, c in (("model.encoder", spec.model.encoder), ("model.quantizer", spec.model.quantizer),
                                        ("model.decoder", spec.model.decoder), ("loss", spec.loss),
                                        ("trainer", spec.trainer), ("data", spec.data)) if c is not None}
    names["modality"] = spec.modality.name if spec.modality is not None else info["modality"]["name"]
    providers = {key: registry.provider(COMPONENTS[key], name).dist for key, name in names.items()}
    used = sorted({dist for key, dist in providers.items() if key.startswith("model.") or key == "modality"})
    return {"format": FORMAT, "tokcore_version": __version__, **info, "model": recorded,
            "providers": providers, "plugins": {dist: _version(dist) for dist in used}}


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
    for part, component in (meta.get("model") or {}).items():
        if isinstance(component, dict) and isinstance(component.get("name"), str):
            component["name"] = resolved_name(meta, f"model.{part}", component["name"])
    if isinstance(meta.get("modality"), dict):
        meta["modality"]["name"] = resolved_name(meta, "modality", meta["modality"]["name"])
    return meta


def resolved_name(meta: dict[str, Any], key: str, name: str) -> str:
    """The registry name under which the component at `key` ("model.quantizer") of the run
    recorded in `meta` is found now: `dist:name` when more than one installed distribution
    registers `name` and the run records which one it used (`providers`; in older files the
    one of its `plugins` that registers it), else `name` as it is (then an ambiguity is
    reported by the registry with the names to write)."""
    from tokcore import registry

    if ":" in name or key not in COMPONENTS:
        return name
    dists = {_canonical(e.provider.dist): e.provider.dist
             for e in registry.current().entries(COMPONENTS[key]) if e.name == name}
    if len(dists) < 2:
        return name
    recorded = (meta.get("providers") or {}).get(key)
    if recorded is None:  # written before `providers`: a listed distribution that registers it
        listed = [d for d in dists if d in {_canonical(p) for p in meta.get("plugins") or {}}]
        recorded = listed[0] if len(listed) == 1 else None
    if recorded is None or _canonical(recorded) not in dists:
        return name
    return f"{dists[_canonical(recorded)]}:{name}"


def resolve_config(data: MutableMapping[str, Any], meta: dict[str, Any],
                   overridden: Callable[[str], bool] = lambda key: False) -> None:
    """Qualify, in place, the component names of the run's resolved config `data` (its
    config.yaml, read but not yet validated) as `resolved_name` does, except those of the
    keys for which `overridden(key)` is true (a name given on the command line)."""
    for key in COMPONENTS:
        *parents, last = key.split(".")
        node: Any = data
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        component = node.get(last) if isinstance(node, dict) else None
        if isinstance(component, dict) and isinstance(component.get("name"), str) and not overridden(key):
            component["name"] = resolved_name(meta, key, component["name"])


def _canonical(dist: str) -> str:
    """A distribution name compared the way packaging does (`tok_rgb` is `tok-rgb`)."""
    return dist.lower().replace("_", "-").replace(".", "-")
