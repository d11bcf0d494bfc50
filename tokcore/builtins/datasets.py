"""Core datasets that fit every modality."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tokcore.errors import ConfigError, InputError
from tokcore.interfaces.data import Dataset
from tokcore.runtime.arrays import load_array


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
        if file.is_dir():
            raise ConfigError(f"'{path}' is a folder; 'arrays' reads one .npy or .npz file holding (N, ...) "
                              "samples (for a folder of .npy files, one per sample, use name: npy_folder)", key="path")
        if not file.is_file():
            raise ConfigError(f"no such file '{path}'", key="path")
        try:
            self.data = load_array(file, array=array, mmap_mode="r")
        except InputError as err:
            raise ConfigError(str(err), key="path") from None
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


class NpyFolderDataset(Dataset):
    """One `.npy` file per sample under a folder; a sample's key is its path relative to the
    folder without `.npy` (`walks/0007`). A file that cannot be read fails when its sample is
    loaded, not when the dataset is built, so a tokenize run records it and goes on.

    With `clip_length`, every file is cut along its first axis into clips of that many frames
    (`clip_stride` apart), each its own sample (key `<file key>/<start>-<end>`, metadata
    `frames: [start, end]`). Clips are read through a memory map, so a long recording is
    never loaded whole. A file shorter than one clip is one sample.

    Args:
        path: the folder.
        pattern: glob of the files, relative to the folder.
        split: "train", "val" or "all"; files (not clips) are assigned to splits.
        val_fraction: share of files held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        dtype: cast samples to this dtype, or None to keep the file's.
        clip_length: frames per clip, or None for whole files.
        clip_stride: frames between the starts of consecutive clips (default: clip_length).
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A few small generated files, for the contract kit."""
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="tokcore-npy-folder-"))
        rng = np.random.default_rng(0)
        for i in range(6):
            (root / "part").mkdir(exist_ok=True)
            np.save(root / "part" / f"{i:03d}.npy", rng.normal(size=(8, 2)).astype(np.float32))
        return {"path": str(root), "val_fraction": 0.2}

    def __init__(self, path: str, pattern: str = "**/*.npy", split: Literal["train", "val", "all"] = "train",
                 val_fraction: float = 0.1, split_seed: int = 0, dtype: str | None = "float32",
                 clip_length: int | None = None, clip_stride: int | None = None):
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"no such folder '{path}'", key="path")
        files = sorted(p for p in root.glob(pattern) if p.is_file())
        if not files:
            raise ConfigError(f"'{path}' has no files matching '{pattern}'", key="pattern")
        if clip_length is not None and clip_length < 1:
            raise ConfigError(f"must be at least 1, got {clip_length}", key="clip_length")
        if clip_stride is not None and clip_stride < 1:
            raise ConfigError(f"must be at least 1, got {clip_stride}", key="clip_stride")
        self.root, self.dtype = root, dtype
        chosen = [files[i] for i in split_indices(len(files), split, val_fraction, split_seed)]
        self.samples: list[tuple[Path, int | None, int | None]] = []  # file, first frame, end frame
        for f in chosen:
            if clip_length is None:
                self.samples.append((f, None, None))
                continue
            try:  # reads the header only
                frames = int(load_array(f, mmap_mode="r").shape[0])
            except Exception:  # unreadable: one sample, which fails when loaded
                self.samples.append((f, None, None))
                continue
            stride = clip_stride or clip_length
            if frames < clip_length:
                self.samples.append((f, 0, frames))
            else:
                self.samples += [(f, s, s + clip_length) for s in range(0, frames - clip_length + 1, stride)]

    def __len__(self) -> int:
        return len(self.samples)

    def key(self, index: int) -> str:
        f, start, end = self.samples[index]
        key = f.relative_to(self.root).as_posix()
        key = key[: -len(".npy")] if key.endswith(".npy") else key
        return key if start is None else f"{key}/{start}-{end}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        f, start, end = self.samples[index]
        meta: dict[str, Any] = {"source": str(f)}
        if start is None:
            x = load_array(f)
        else:
            x = np.array(load_array(f, mmap_mode="r")[start:end])
            meta["frames"] = [start, end]
        if self.dtype is not None:
            x = x.astype(self.dtype, copy=False)
        return {"key": self.key(index), "input": torch.from_numpy(np.ascontiguousarray(x)), "meta": meta}
