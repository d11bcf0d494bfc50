"""Reconstruction samples a person can look at: held-out inputs beside their round trip
through the tokenizer, written by the modality (pictures, videos, plots; `.npz` arrays for
the pass-through `array` modality) under `<run>/samples/step-N`. The gradient loop and a
fit (`FitTrainer`) both write them here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from tokcore.batch import Collate, GuardedDataset
from tokcore.tokenizer import Tokenizer


def samples_path(run_dir: Path, step: int) -> Path:
    """Where the samples of `step` go (the modality adds the file suffix)."""
    return Path(run_dir) / "samples" / f"step-{step}"


def first_samples(model: Tokenizer, dataset: Any, n: int = 8) -> Any:
    """The validated raw values of the first `n` samples of `dataset` (the largest group of
    one shape, see `tokcore.batch`), or None when none could be used."""
    guarded = GuardedDataset(dataset)
    return Collate(model.modality)([guarded[i] for i in range(min(n, len(dataset)))])["raw"]


def write_samples(model: Tokenizer, raw: Any, path: Path) -> list[Path]:
    """Encode and decode the raw batch `raw` (validated values, a tensor or a list) with
    `model` and write inputs beside reconstructions at `path`; returns the files written."""
    if raw is None or len(raw) == 0:
        return []
    recon = model.decode(model.encode(raw))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return model.modality.write_samples(_cpu(raw), _cpu(recon), Path(path))


def _cpu(x: Any) -> Any:
    return x.cpu() if isinstance(x, Tensor) else x
