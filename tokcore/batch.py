"""From samples to model batches: the one preparation that training, `tokcore tokenize` and
`Tokenizer.encode` share.

`prepare_batch` turns one raw batch into model input: the modality validates it, takes its
per-sample side information (`Modality.side_info`) and normalizes it. `prepare_samples` does
the same for a list of dataset samples (dicts with "key", "input" and optionally "index"
and "meta", or the failure records of `GuardedDataset`), which may hold anything:

* Samples are grouped by shape, in the order each shape first occurs; inputs that are not
  arrays (text) form one group, kept as a list. Each group is validated in one call, and
  only when that fails are its samples validated one by one, to find those at fault (every
  check is per sample, so a group passes exactly when each of its samples does).
* A sample that cannot be loaded, is not an array, or fails validation becomes a failure
  record `{"index", "key", "error"}` with the reason, and the others go on.

Mixed shapes: `tokcore tokenize` (`Prepare`) encodes every group, each shape in its own
encoder call. Training (`Collate`) stacks one batch, so it takes the largest group (the
first of equal ones) and records each sample of the other shapes as failed, naming its
shape, the batch's, and the fix. Both run in DataLoader workers, so preparation overlaps
with the model's work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torch.utils.data
from torch import Tensor

from tokcore.errors import InputError, TokcoreError
from tokcore.interfaces.data import sample_key
from tokcore.interfaces.modality import SIDE_KEY, Modality, normalize_with
from tokcore.registry.params import plain

OBJECTS = "objects"  # the group of inputs that are not arrays


class GuardedDataset(torch.utils.data.Dataset):
    """`dataset[i]` with any loading error (a corrupt or truncated file) turned into a failure
    record `{"index", "key", "error"}`, so a long job records and skips the sample instead of dying."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = sample_key(self.dataset, index)
        try:
            s = self.dataset[index]
            out = {"index": index, "key": key, "input": s["input"], "meta": s.get("meta") or {}}
            if "num_tokens" in s:  # a packed batch's drawn token count (tokcore.train.packing.SizedViews)
                out["num_tokens"] = s["num_tokens"]
            return out
        except Exception as err:  # a TokcoreError's message is complete; anything else gets its type
            reason = str(err) if isinstance(err, TokcoreError) else f"{type(err).__name__}: {err}"
            return {"index": index, "key": key, "error": f"{key}: cannot load: {reason}"}


@dataclass
class Prepared:
    """One prepared batch: `raw` validated values (a tensor, or a list of non-array inputs),
    `input` the normalized model input, `side` the per-sample side information or None."""

    raw: Any
    input: Any
    side: dict[str, Tensor] | None


@dataclass
class Group(Prepared):
    """Samples of one shape, prepared together, with where each came from."""

    shape: tuple[int, ...] | str = ()
    indices: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    metas: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


def prepare_batch(modality: Modality, x: Any, sample: str = "batch") -> Prepared:
    """A raw batch (a `(B, ...)` tensor or array, or a list for non-array inputs) validated,
    its side information taken and normalized; InputError names `sample` and the fix."""
    return _normalized(modality, modality.validate(x, sample=sample, batched=True))


def _normalized(modality: Modality, raw: Any) -> Prepared:
    side = modality.side_info(raw)
    return Prepared(raw, normalize_with(modality, raw, side), side)


def prepare_samples(modality: Modality, samples: Sequence[dict[str, Any]]) -> tuple[list[Group], list[dict[str, Any]]]:
    """Samples grouped by shape and prepared, and the failure records (by index); see the
    module's docstring."""
    failed: list[dict[str, Any]] = []
    members: dict[Any, list[tuple[int, str, dict[str, Any], Any]]] = {}
    for pos, s in enumerate(samples):
        index = int(s.get("index", pos))
        key = str(s.get("key", f"#{index}"))
        if "error" in s:  # the dataset could not load it (see GuardedDataset)
            failed.append({"index": index, "key": key, "error": s["error"]})
            continue
        x = s["input"]
        if isinstance(x, (str, bytes)):
            members.setdefault(OBJECTS, []).append((index, key, s.get("meta") or {}, x))
            continue
        try:
            x = torch.as_tensor(x)
        except Exception as err:
            failed.append({"index": index, "key": key, "error": f"{key}: invalid input: {type(err).__name__}: {err}"})
            continue
        members.setdefault(tuple(x.shape), []).append((index, key, s.get("meta") or {}, x))
    groups = []
    for shape, group in members.items():
        prepared = _prepare_group(modality, shape, group, failed)
        if prepared is not None:
            groups.append(prepared)
    failed.sort(key=lambda f: f["index"])
    return groups, failed


def _prepare_group(modality: Modality, shape: Any, members: list[tuple[int, str, dict[str, Any], Any]],
                   failed: list[dict[str, Any]]) -> Group | None:
    xs = [x for *_, x in members]
    try:
        if shape != OBJECTS and len({x.dtype for x in xs}) > 1:
            raise InputError("mixed dtypes")  # validated one by one, each converted on its own
        raw = modality.validate(_stack(xs, shape), sample="batch", batched=True)
    except Exception:  # find the samples at fault
        kept = []
        for index, key, meta, x in members:
            try:
                kept.append((index, key, meta, modality.validate(x, sample=key, batched=False)))
            except Exception as err:
                failed.append({"index": index, "key": key, "error": str(err) if isinstance(err, InputError)
                               else f"{key}: invalid input: {type(err).__name__}: {err}"})
        if not kept:
            return None
        members = kept
        raw = _stack([x for *_, x in kept], shape)
    p = _normalized(modality, raw)
    return Group(p.raw, p.input, p.side, shape, [m[0] for m in members], [m[1] for m in members],
                 [m[2] for m in members])


def _stack(xs: list[Any], shape: Any) -> Any:
    return list(xs) if shape == OBJECTS else torch.stack(xs)


class Collate:
    """Training's collate: one batch `{"input", "mask", "raw", "side", "keys", "failed"}` of the
    largest group of one shape; `input` is None when no sample could be used."""

    def __init__(self, modality: Modality):
        self.modality = modality

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        groups, failed = prepare_samples(self.modality, samples)
        if not groups:
            return {"input": None, "mask": None, "raw": None, "side": None, "keys": [], "failed": failed}
        main = max(groups, key=len)  # the first of equally large groups
        for g in groups:
            if g is not main:
                failed += [{"index": i, "key": k, "error": f"{k}: shape {_shape(g.shape)} differs from the batch's "
                            f"{_shape(main.shape)}; training stacks one shape per batch: resize or crop samples to "
                            "one shape"} for i, k in zip(g.indices, g.keys)]
        failed.sort(key=lambda f: f["index"])
        mask = self.modality.valid_mask(main.raw) if isinstance(main.raw, Tensor) else None
        return {"input": main.input, "mask": mask, "raw": main.raw, "side": main.side, "keys": main.keys,
                "failed": failed}


class PackedCollate:
    """Training's collate for a packed batch (`train.max_tokens`): samples of different sizes
    kept apart, `{"input": [each sample normalized], "num_tokens": (B,) or None, "raw": [...],
    "mask": None, "side", "keys", "failed"}` in the samples' order; `input` is None when no
    sample could be used."""

    def __init__(self, modality: Modality):
        self.modality = modality

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        groups, failed = prepare_samples(self.modality, samples)
        if not groups:
            return {"input": None, "mask": None, "raw": None, "side": None, "keys": [], "failed": failed}
        counts = {int(s["index"]): s["num_tokens"] for s in samples if "num_tokens" in s and "index" in s}
        members = sorted((index, key, g.input[b], g.raw[b]) for g in groups
                         for b, (index, key) in enumerate(zip(g.indices, g.keys)))
        num_tokens = None
        if counts:
            num_tokens = torch.tensor([counts[index] for index, *_ in members])
        return {"input": [m[2] for m in members], "num_tokens": num_tokens, "raw": [m[3] for m in members],
                "mask": None, "side": None, "keys": [m[1] for m in members], "failed": failed}


def _shape(shape: Any) -> str:
    return "(not an array)" if shape == OBJECTS else str(tuple(shape))


class Prepare:
    """Tokenize's collate: `{"groups": [{"input", "indices", "meta"}], "failed": [...]}`, one
    group per shape (each one encoder call). Each sample's metadata is made plain JSON and
    carries the modality's side information under `SIDE_KEY`, so the token store holds what
    decoding needs."""

    def __init__(self, modality: Modality):
        self.modality = modality

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        groups, failed = prepare_samples(self.modality, samples)
        out = []
        for g in groups:
            metas = [plain(m) for m in g.metas]
            for b, meta in enumerate(metas if g.side is not None else []):
                meta[SIDE_KEY] = {k: v[b].tolist() for k, v in g.side.items()}
            out.append({"input": g.input, "indices": g.indices, "meta": metas})
        return {"groups": out, "failed": failed}


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
        if isinstance(v, list):  # a packed batch's samples
            return [move(x) for x in v]
        return {k: move(x) for k, x in v.items()} if isinstance(v, dict) else v

    return {k: move(v) for k, v in batch.items()}
