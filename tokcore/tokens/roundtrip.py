"""A split of a run's dataset through the whole pipeline: `tokcore tokenize`'s job, then
`tokcore decode`'s, read back as arrays: what a user of the token store actually gets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tokcore.run import Checkpoint
from tokcore.tokens.decode import decode_store
from tokcore.tokens.store import TokenStore
from tokcore.tokens.tokenize import tokenize


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def read_decoded(folder: str | Path, keys: list[str], reader: Callable[[Path], np.ndarray] = read_npy) -> np.ndarray:
    """The decoded samples of `keys` from a `tokcore decode` output, each file read by `reader`
    (.npy files by default; a plugin whose modality writes pictures passes its own)."""
    folder = Path(folder)
    files = {}
    for line in (folder / "decoded.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        files[row["key"]] = row["files"][0]
    return np.stack([reader(folder / files[k]) for k in keys])


def split_inputs(run: str | Path, split: str) -> tuple[list[str], torch.Tensor]:
    """Keys and stacked raw inputs of `split` of the dataset the run was trained on."""
    ds = Checkpoint(run).spec().dataset(split)
    samples = [ds[i] for i in range(len(ds))]
    return [s["key"] for s in samples], torch.stack([torch.as_tensor(s["input"]).float() for s in samples])


@dataclass
class Roundtrip:
    keys: list[str]  # in the store's order
    inputs: torch.Tensor  # the raw samples, aligned with keys
    tokens: np.ndarray
    decoded: np.ndarray


def roundtrip(run: str | Path, split: str = "val", folder: str | Path | None = None,
              reader: Callable[[Path], np.ndarray] = read_npy) -> Roundtrip:
    """`split` of the run's dataset through `<folder>/tokens` (the store) and
    `<folder>/decoded` (default folder: `<run>/roundtrip-<split>`), decoded files read by
    `reader`. Finished outputs are reused, so running `tokcore tokenize`/`decode` there first
    is the same."""
    folder = Path(folder) if folder else Path(run) / f"roundtrip-{split}"
    tokenize(run, folder / "tokens", [f"data.split={split}"])  # a finished store is not redone
    if not (folder / "decoded" / "decoded.jsonl").is_file():
        decode_store(run, folder / "tokens", folder / "decoded")
    store = TokenStore(folder / "tokens")
    keys = list(store)
    by_key = dict(zip(*split_inputs(run, split)))
    return Roundtrip(keys, torch.stack([by_key[k] for k in keys]), np.stack([store[k] for k in keys]),
                     read_decoded(folder / "decoded", keys, reader))
