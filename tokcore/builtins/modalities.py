"""Core's own modality: `array`, the pass-through for data no plugin describes.

Every Tokenizer has a modality; a config without `modality:` (and a run saved with
`"modality": null` before there was this one) gets `array`, which takes the values as they
are, so there is one code path for validation, normalization and writing files.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from tokcore.errors import InputError
from tokcore.interfaces.modality import Modality


class ArrayModality(Modality):
    """Arrays of any shape, float or integer: checked for NaN and inf (and `value_range`),
    normalized with one scalar mean and std (identity by default); written as `.npy` files
    (decoded samples) and `.npz` (training samples).

    Args:
        mean: subtracted before encoding.
        std: divides after the mean; positive.
        value_range: `[low, high]` that valid raw values must lie in, or None for no bound.
    """

    name = "array"
    layout = ""  # any number of axes

    def __init__(self, mean: float = 0.0, std: float = 1.0, value_range: Sequence[float] | None = None):
        super().__init__(mean, std, value_range)
        if self.value_range is not None and len(self.value_range) != 2:
            raise InputError(f"modality 'array': value_range needs [low, high], got {self.value_range}")

    @property
    def identity(self) -> bool:
        return self.mean == 0 and self.std == 1

    def check_shape(self, x: Tensor, *, sample: str, batched: bool) -> None:
        if batched and x.dim() == 0:
            raise InputError(f"{sample}: a batch of arrays needs a batch axis, got a scalar")

    def normalize(self, x: Tensor, batched: bool = True) -> Tensor:
        return x if self.identity else (x - self.mean) / self.std

    def denormalize(self, x: Tensor, batched: bool = True) -> Tensor:
        out = x if self.identity else x * self.std + self.mean
        return out if self.value_range is None else out.clamp(*self.value_range)

    def example(self, batch_size: int = 2) -> Tensor:
        return torch.linspace(-1, 1, batch_size * 12).reshape(batch_size, 4, 3)

    def invalid_examples(self, x: Tensor) -> list[tuple[Any, str]]:
        nan = x.clone()
        nan.view(-1)[0] = float("nan")
        return [(nan, "a NaN"), (x > 0, "booleans"), (x.tolist(), "a list instead of an array"),
                (x.new_tensor(1.0), "a scalar without a batch axis")]
