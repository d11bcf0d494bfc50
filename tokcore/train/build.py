"""What every way of training starts from: the run directory prepared, then the parts a
RunSpec names built in one order (data, seeded model, trainer and loss). The gradient loop,
the one-pass fit and `--dry-run` all build through here, so they cannot drift apart."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokcore.batch import GuardedDataset
from tokcore.config import dump
from tokcore.config.spec import RunSpec
from tokcore.errors import ConfigError, InputError, TokcoreError
from tokcore.interfaces import FitTrainer, Trainer
from tokcore.run.checkpoint import latest_checkpoint, latest_complete_checkpoint
from tokcore.runtime.distributed import Context, barrier
from tokcore.runtime.io import atomic_write_text
from tokcore.tokenizer import Tokenizer, build_tokenizer
from tokcore.train.log import read_metrics


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def is_fit(spec: RunSpec) -> bool:
    """Whether the spec's trainer fits in one pass (a FitTrainer) instead of gradient steps."""
    return issubclass(spec.trainer.cls(), FitTrainer)


def sample_shape(x: Any) -> tuple[int, ...]:
    """The shape of one raw sample: an array's shape, () for a string."""
    return () if isinstance(x, (str, bytes)) else tuple(torch.as_tensor(x).shape)


def first_loadable(dataset: Any, tries: int = 64) -> dict[str, Any]:
    """The first sample of `dataset` that loads (what the model's input spec is read from): a
    broken file that sorts first is skipped here and recorded when training meets it."""
    errors = []
    for record in map(GuardedDataset(dataset).__getitem__, range(min(tries, len(dataset)))):
        if "error" not in record:
            return record
        errors.append(record["error"])
    raise InputError(f"none of the first {len(errors)} samples loads: {errors[0]}")


@dataclass
class Parts:
    """Everything a run trains with."""

    train_set: Any
    val_set: Any
    model: Tokenizer
    trainer: Trainer


def build_parts(spec: RunSpec) -> Parts:
    """Datasets, then the model from the seed (identical initial weights on every rank),
    then the trainer with the config's loss (a one-pass fit has no loss)."""
    spec.require("model", "data")
    train_set, val_set = spec.dataset("train"), spec.dataset("val")
    if len(train_set) == 0:
        raise ConfigError(f"the train split of data '{spec.data.name}' is empty; check data.path and the split "
                          "settings", key="data", file=spec.where("data"))
    best = spec.train.keep_best
    if best is not None and not (best.startswith("val/") or (best.startswith("val_ema/") and spec.train.ema_decay)):
        raise ConfigError(f"'{best}' is not an evaluation metric: they are val/... (val/loss, the modality's "
                          "metrics, val/codebook/...) and, with train.ema_decay, val_ema/...", key="train.keep_best",
                          file=spec.where("train.keep_best"))
    if len(val_set) == 0 and best is not None:  # found out now, not after training
        raise ConfigError(f"'{spec.train.keep_best}' is measured on held-out data, but the val split of data "
                          f"'{spec.data.name}' is empty; set data.val_fraction above 0 (or give val data), or "
                          "train.keep_best=null", key="train.keep_best", file=spec.where("train.keep_best"))
    seed_everything(spec.seed)
    model = build_model(spec, sample_shape(first_loadable(train_set)["input"]))
    trainer = spec.trainer.build()
    if not isinstance(trainer, FitTrainer):
        trainer.loss = spec.loss.build()
    return Parts(train_set, val_set, model, trainer)


def build_model(spec: RunSpec, input_shape: tuple[int, ...]) -> Tokenizer:
    """The spec's tokenizer for samples of `input_shape`."""
    spec.require("model")
    modality = spec.modality.config() if spec.modality is not None else None
    try:
        return build_tokenizer(spec.model.config(), modality, input_shape)
    except ConfigError as err:  # located like the config's own errors: file, key, fix
        raise err.located(file=spec.where(err.key)) from None


def prepare_run_dir(run_dir: Path, spec: RunSpec, resume: bool, ctx: Context) -> Path | None:
    """Create the run directory and record the config (rank 0); returns the checkpoint to
    resume from, or None. Refuses a run directory that has checkpoints unless resuming."""
    if latest_checkpoint(run_dir) is not None and not resume:
        raise TokcoreError(f"{run_dir} already has checkpoints; pass --resume to continue it, or choose another --output")
    latest, skipped = latest_complete_checkpoint(run_dir)
    if skipped and latest is None:
        raise TokcoreError(f"{run_dir}: no checkpoint of the run is complete ({skipped[0]}); train into another --output")
    if ctx.is_main:
        for line in skipped:  # resume from the newest whole checkpoint, saying why not from a newer one
            print(f"resume: {line}", file=sys.stderr)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", dump(spec.config))
        if latest is not None:  # forget log lines of steps that will be run again
            start = int(latest.name.split("-")[1])
            rows = [r for r in read_metrics(run_dir) if r.get("step", 0) <= start]
            atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    barrier(ctx)
    return latest
