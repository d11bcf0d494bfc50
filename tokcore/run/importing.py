"""`tokcore import NAME SOURCE --output RUN`: a pretrained tokenizer released elsewhere, as an
ordinary run directory.

An importer (kind `importer`, entry-point group `tokcore.importers`) reads the released files
and says which config builds the same model (a shipped `PLUGIN:NAME`, plus the settings it
read off the files, such as widths) and what its weights are under that model's names. This
module does the rest for every importer alike: it resolves the config (with the user's
overrides), builds the tokenizer, checks that every tensor fits it (a missing, extra or
reshaped tensor is one line naming the source file and the first key that does not fit), and
writes `RUN/config.yaml` and `RUN/checkpoints/step-0/` with the writers training uses, so
`load_tokenizer`, `tokcore tokenize`/`decode`/`eval` and `train.init_from=RUN` read it like
any trained run. The modality, with the normalization the original expects, comes from the
config and is recorded in `tokenizer.json`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from tokcore.errors import InputError, TokcoreError

IMPORT_STEP = 0  # an imported run has taken no training step


@dataclass
class Imported:
    """What an importer read.

    Attributes:
        config: the config that builds the model (`PLUGIN:NAME` or a path).
        settings: config values read off the files, by dotted key
            (`{"model.encoder.channels": 64}`); the user's overrides come after them.
        weights: the tokenizer's state dict under its own names
            (`encoder.*`, `quantizer.*`, `decoder.*`).
        files: the file each weight was read from, by key (for error messages); keys not
            listed are reported against the source.
        input_shape: the shape of one sample the original takes (for `tokenizer.json`).
        notes: lines to show the user (what was read, what was left out and why).
    """

    config: str
    weights: dict[str, torch.Tensor]
    input_shape: tuple[int, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Importer(ABC):
    """Reads a tokenizer released in a foreign format. Subclasses take their options as
    keyword parameters (`tokcore import cosmos SOURCE variant=DV8x16x16`) and document them
    in an `Args:` section, as components do."""

    @abstractmethod
    def read(self, source: Path) -> Imported:
        """The config and weights of the tokenizer at `source` (a file or folder). Raise
        InputError naming the file and what does not fit for anything else."""


def import_run(name: str, source: str | Path, output: str | Path, params: Mapping[str, Any] | None = None,
               overrides: Sequence[str] = (), config: str | None = None) -> tuple[Path, Imported]:
    """Import the tokenizer at `source` with importer `name` into the run directory `output`
    (which must not hold checkpoints yet); returns the checkpoint directory and what was read.
    `config` replaces the importer's config with another of the same model (a pipeline's own
    settings, such as `tok-rgb:vimpac-128` for DALL-E's dVAE on video)."""
    from tokcore import registry
    from tokcore.config import dump
    from tokcore.config.spec import RunSpec
    from tokcore.run import checkpoint as ckpt
    from tokcore.run import meta
    from tokcore.runtime.distributed import Context
    from tokcore.tokenizer import build_tokenizer

    source, output = Path(source), Path(output)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if ckpt.latest_checkpoint(output) is not None:
        raise TokcoreError(f"{output} already has checkpoints; choose another --output")
    importer = registry.build("importer", {"name": name, **(params or {})})
    imported = importer.read(source)
    settings = [f"{key}={json.dumps(value)}" for key, value in imported.settings.items()]
    if config is not None:
        imported.config = config
    spec = RunSpec.load(imported.config, [*settings, *overrides])
    spec.require("model", purpose="importing")
    modality = spec.modality.config() if spec.modality is not None else None
    tokenizer = build_tokenizer(spec.model.config(), modality, imported.input_shape)
    _load_exactly(tokenizer, imported, source)
    output.mkdir(parents=True, exist_ok=True)
    from tokcore.runtime.io import atomic_write_text

    atomic_write_text(output / "config.yaml", dump(spec.config))
    state = {"step": IMPORT_STEP, "best": {"value": None, "step": None}, "metrics": {},
             "imported": {"importer": name, "source": str(source)}}
    path = ckpt.save_checkpoint(output, IMPORT_STEP, Context(), model=tokenizer.eval(), ema=None, trainer=nn.Module(),
                                state=state, tokenizer_meta=meta.describe(tokenizer, spec),
                                config_text=dump(spec.config))
    assert path is not None  # a single process is the main one
    return path, imported


def _load_exactly(model: nn.Module, imported: Imported, source: Path) -> None:
    """Every tensor of the model from `imported.weights`, each of the same shape, and nothing
    else; otherwise one line naming the file and the first key that does not fit."""
    own = model.state_dict()
    given = imported.weights

    def where(key: str) -> str:
        return imported.files.get(key, str(source))

    for key, value in given.items():
        if key not in own:
            raise InputError(f"{where(key)}: tensor '{key}' has no place in the model of {imported.config}; "
                             "is this the tokenizer the importer reads (another architecture or variant)?")
        if tuple(value.shape) != tuple(own[key].shape):
            raise InputError(f"{where(key)}: tensor '{key}' has shape {tuple(value.shape)}, but the model of "
                             f"{imported.config} expects {tuple(own[key].shape)}; check the variant and settings")
    missing = [key for key in own if key not in given]
    if missing:
        raise InputError(f"{source}: tensor '{missing[0]}' of the model of {imported.config} is not in the files"
                         f"{f' ({len(missing)} missing)' if len(missing) > 1 else ''}; the file is truncated or "
                         "of another architecture")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in given.items()}, strict=True)
