"""What `tokcore train --resume` continues: the run as it was saved, not the config file as
it reads today.

The run directory's own config.yaml is the base; overrides on the command line apply on top
and are reported. A change to what the checkpoint's weights and state mean (the model, the
modality, the data, the trainer, the loss, the seed) is refused naming the key, whether it
comes from the command line or from a config file edited since: one run directory never
holds checkpoints of two different models. Settings of the `train:` section may change (a
longer schedule, another learning rate), and each change is printed. Differences between
the config file and the run that are not on the command line are reported and not applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from tokcore.config import COMMAND_LINE
from tokcore.config.spec import RunSpec
from tokcore.errors import ConfigError
from tokcore.run.checkpoint import Checkpoint, latest_complete_checkpoint

FIXED = ("model", "modality", "data", "trainer", "loss", "seed", "tokcore")  # what a checkpoint's state depends on


def resume_spec(run_dir: Path, config: str, overrides: Iterable[str]) -> tuple[RunSpec, list[str]]:
    """The spec to continue `run_dir` with, and lines that say what changed or was not applied.
    A run directory without a whole checkpoint starts from the config file as usual."""
    overrides = list(overrides)
    latest, _ = latest_complete_checkpoint(run_dir)
    if latest is None:
        return RunSpec.load(config, overrides), []
    # the newest whole checkpoint's config, its components pinned to the providers it recorded
    saved = Checkpoint(latest).spec()
    spec = Checkpoint(latest).spec(overrides)
    for key, (old, new) in _changes(saved.config, spec.config).items():
        if key.split(".")[0] in FIXED:
            raise ConfigError(f"the run was trained with {old!r}; a resumed run keeps its model, data and "
                              f"trainer: drop the override, or train into another --output", key=key, file=COMMAND_LINE)
    requested = RunSpec.load(config, overrides)  # the file as the command line gives it
    notes = []
    for key, (old, new) in _changes(saved.config, requested.config).items():
        if key.split(".")[0] in FIXED:
            raise ConfigError(f"is {new!r} here but the run in {run_dir} was trained with {old!r}; resume with the "
                              "run's config, or train into another --output", key=key, file=requested.file)
        if key not in _changes(saved.config, spec.config):
            notes.append(f"resume: {key} stays {old!r} as the run has it ({requested.file} says {new!r}; "
                         f"give {key}=... on the command line to change it)")
    notes += [f"resume: {key} {old!r} -> {new!r} (command line)" for key, (old, new) in
              _changes(saved.config, spec.config).items()]
    step = Checkpoint(latest).step
    if spec.train.steps <= step:
        wanted = requested.train.steps
        hint = (f" ({requested.file} says {wanted}, but a resume takes the run's own config: give train.steps={wanted})"
                if wanted > step and wanted != spec.train.steps else "")
        raise ConfigError(f"{spec.train.steps} is not beyond the run's step {step}, so there is nothing to train{hint}; "
                          f"give a larger train.steps on the command line to continue it", key="train.steps",
                          file=spec.where("train.steps"))
    return spec, notes


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Flattened `key.path: (old, new)` for every value that differs (None for a missing one)."""
    a, b = _flatten(old), _flatten(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
