"""Core datasets that fit every modality."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tokcore.data import Dataset
from tokcore.errors import ConfigError


def split_indices(n: int, split: str, val_fraction: float, seed: int) -> np.ndarray:
    """A deterministic train/val split of range(n): the same seed gives the same split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    if split == "val":
        return np.sort(order[:n_val])
    if split == "train":
        return np.sort(order[n_val:])
    if split == "all":
        return np.arange(n)
    raise ConfigError(f"unknown split '{split}'; use train, val or all", key="split")


class ArrayDataset(Dataset):
    """Samples stacked in one array file: `.npy` of shape (N, ...) (memory-mapped, so a large
    file is never read whole), or one array of an `.npz`. A sample's key is `<file stem>/<index>`.

    Args:
        path: the .npy or .npz file.
        array: which array of an .npz (default: the only one, or the first).
        split: "train", "val" or "all".
        val_fraction: share of samples held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        dtype: cast samples to this dtype, or None to keep the file's.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A small generated file, for the contract kit."""
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="tokcore-arrays-")) / "example.npy"
        np.save(path, np.random.default_rng(0).normal(size=(20, 8, 2)).astype(np.float32))
        return {"path": str(path), "val_fraction": 0.2}

    def __init__(self, path: str, array: str | None = None, split: Literal["train", "val", "all"] = "train",
                 val_fraction: float = 0.1, split_seed: int = 0, dtype: str | None = "float32"):
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"no such file '{path}'", key="path")
        try:
            if file.suffix == ".npz":
                with np.load(file, allow_pickle=False) as npz:
                    name = array or npz.files[0]
                    if name not in npz.files:
                        raise ConfigError(f"'{path}' has no array '{name}'; it has {', '.join(npz.files)}", key="array")
                    self.data = npz[name]
            else:
                self.data = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"cannot read '{path}' as a numpy array file: {exc}", key="path") from None
        if self.data.ndim < 2:
            raise ConfigError(f"'{path}' holds shape {self.data.shape}; expected (N, ...) samples", key="path")
        self.path, self.stem, self.dtype = str(file), file.stem, dtype
        self.indices = split_indices(len(self.data), split, val_fraction, split_seed)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return f"{self.stem}/{int(self.indices[index])}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(self.indices[index])
        x = np.asarray(self.data[i])
        if self.dtype is not None:
            x = x.astype(self.dtype, copy=False)
        return {"key": self.key(index), "input": torch.from_numpy(np.array(x)), "meta": {"source": self.path, "index": i}}
