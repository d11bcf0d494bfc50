"""The data side: datasets yield samples as dicts with a stable key.

A sample is `{"key": str, "input": Tensor, "mask": Tensor (optional), "meta": dict (optional)}`.
The key identifies the sample across runs (token stores are keyed by it, and several
modalities of one sample are aligned by it); `meta` records where it came from (source file,
frame range, crop and flip), so a view can be reproduced.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch.utils.data import Dataset as _TorchDataset


class Dataset(_TorchDataset, ABC):
    """A map-style dataset of samples; register subclasses under `tokcore.datasets`.

    Constructors take a `split` parameter ("train", "val", ...), so one config entry describes
    every split and the training loop asks for the one it needs.
    """

    @abstractmethod
    def __len__(self) -> int:
        ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        ...

    def key(self, index: int) -> str:
        """The key of sample `index` without loading it (override when loading is costly)."""
        return str(self[index]["key"])


def sample_key(dataset: Any, index: int) -> str:
    """The key of sample `index`, or `#index` when even that fails."""
    try:
        return str(dataset.key(index))
    except Exception:  # a sample that cannot even name itself is recorded under its index
        return f"#{index}"
