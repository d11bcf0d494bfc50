"""From dataset samples to model batches: validate, stack, normalize, mask.

Runs inside DataLoader workers, so validation and normalization overlap with the model's
work. A sample that fails validation is left out of its batch and reported in
`batch["failed"]` with its key and the reason; the loop records it in the run directory.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tokcore.errors import InputError
from tokcore.interfaces.modality import Modality, normalize_with


class Collate:
    def __init__(self, modality: Modality | None):
        self.modality = modality

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        keys, xs, failed = [], [], []
        for s in samples:
            key = str(s.get("key", "?"))
            if "error" in s:  # the dataset could not load it (see GuardedDataset)
                failed.append({"key": key, "error": s["error"]})
                continue
            try:
                x = torch.as_tensor(s["input"])
                if self.modality is not None:
                    x = self.modality.validate(x, sample=key, batched=False)
                if xs and x.shape != xs[0].shape:
                    raise InputError(f"{key}: shape {tuple(x.shape)} differs from the batch's {tuple(xs[0].shape)}; "
                                     "resize or crop samples to one shape")
            except InputError as err:
                failed.append({"key": key, "error": str(err)})
                continue
            keys.append(key)
            xs.append(x.float())
        if not xs:
            return {"input": None, "mask": None, "raw": None, "side": None, "keys": [], "failed": failed}
        raw = torch.stack(xs)
        if self.modality is None:
            return {"input": raw, "mask": None, "raw": raw, "side": None, "keys": keys, "failed": failed}
        side = self.modality.side_info(raw)  # per-sample statistics, which evaluation needs to denormalize
        return {"input": normalize_with(self.modality, raw, side), "mask": self.modality.valid_mask(raw), "raw": raw,
                "side": side, "keys": keys, "failed": failed}


def resize_batch(batch: dict[str, Any], size: int) -> dict[str, Any]:
    """The batch with its last two (spatial) axes resized to size x size (multi-resolution)."""
    x = batch["input"]
    if x.shape[-2:] == (size, size):
        return batch
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, *x.shape[-2:])
    out = dict(batch)
    out["input"] = F.interpolate(flat, size=(size, size), mode="area" if size < x.shape[-1] else "bilinear").reshape(*lead, size, size)
    if batch.get("mask") is not None:
        m = batch["mask"].reshape(-1, 1, *x.shape[-2:]).float()
        out["mask"] = F.interpolate(m, size=(size, size), mode="nearest").reshape(*lead, size, size) > 0.5
    out["raw"] = None  # raw values are no longer aligned with the input
    return out


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on `device`, those of nested dicts (side information) too."""
    nb = device.type == "cuda"

    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=nb)
        return {k: move(x) for k, x in v.items()} if isinstance(v, dict) else v

    return {k: move(v) for k, v in batch.items()}
