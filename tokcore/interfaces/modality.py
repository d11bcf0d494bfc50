"""Modality specs: what one sample looks like, how to check it, how to normalize it.

A modality is a registered component (group `tokcore.modalities`) built from config and
recorded in every checkpoint, so `Tokenizer.encode`/`decode` apply exactly the statistics
the model was trained with. Nobody has to remember to normalize, or pass the right mean.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from tokcore.errors import InputError
from tokcore.interfaces.evaluation import FeatureExtractor
from tokcore.registry.params import params_of, plain
from tokcore.runtime.io import atomic_write_bytes


class Modality(ABC):
    """Base class for modality specs.

    Subclasses set `name`, `layout` (one character per axis of one sample: `C` for channels,
    a digit for an axis of that fixed size; "CHW" for an image, "CTHW" for a video, "TC" for
    a gaze track, "T44" for camera poses) and `channels`; they may
    override `valid_mask` (depth: 0/inf/NaN are holes) and `check` (camera: rotations must
    be orthonormal). Constructor parameters are stored as attributes of the same name, so
    `config()` can record them.

    Args:
        mean: per-channel value subtracted before encoding (one number, or one per channel).
        std: per-channel divisor applied after the mean.
        value_range: `[low, high]` that valid raw values must lie in, or None for no bound.
    """

    name: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    channels: int = 0
    fill_value: ClassVar[float] = 0.0  # what invalid elements become after normalization

    def __init__(self, mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0,
                 value_range: Sequence[float] | None = None):
        self.mean = mean
        self.std = std
        self.value_range = list(value_range) if value_range is not None else None
        for what, v in (("mean", mean), ("std", std)):
            n = len(v) if isinstance(v, (list, tuple)) else 1
            if n not in (1, self.channels):
                raise InputError(f"modality '{self.name}': {what} has {n} values; give 1 or {self.channels}")
        if np.any(np.asarray(std, dtype=np.float64) <= 0):
            raise InputError(f"modality '{self.name}': std must be positive, got {std}")

    # -- record -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """`{"name": ..., **parameters}`: rebuilds this exact spec through the registry."""
        params, _ = params_of(type(self))
        return {"name": self.name, **{p.name: plain(getattr(self, p.name)) for p in params}}

    # -- check ------------------------------------------------------------------------------
    def channel_axis(self, batched: bool) -> int:
        return self.layout.index("C") + int(batched)

    def valid_mask(self, x: Tensor) -> Tensor | None:
        """Boolean mask of valid elements (same shape as `x`), or None when all are valid."""
        return None

    def validate(self, x: Any, *, sample: str = "input", batched: bool = True) -> Tensor:
        """`x` as a float tensor, or InputError naming `sample` and the fix."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, Tensor):
            raise InputError(f"{sample}: {self.name} input must be a tensor or array, got {type(x).__name__}")
        if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)):
            raise InputError(f"{sample}: {self.name} input has dtype {x.dtype}; give floats or integers")
        self.check_shape(x, sample=sample, batched=batched)
        x = x.float()
        valid = self.valid_mask(x)
        values = x if valid is None else x[valid]
        if not torch.isfinite(values).all():
            bad = (~torch.isfinite(x) if valid is None else ~torch.isfinite(x) & valid).nonzero()[0].tolist()
            where = f"at index {bad}, sample {bad[0]} of the batch" if batched else f"at index {bad}"
            raise InputError(f"{sample}: {self.name} input has NaN or inf ({where}); clean or mask the data")
        if self.value_range is not None and values.numel():
            lo, hi = self.value_range
            vmin, vmax = float(values.min()), float(values.max())
            if vmin < lo or vmax > hi:
                raise InputError(f"{sample}: {self.name} values span [{vmin:g}, {vmax:g}], outside the "
                                 f"expected range [{lo:g}, {hi:g}]; rescale the data or set value_range")
        self.check(x, sample=sample, batched=batched)
        return x

    def check_shape(self, x: Tensor, *, sample: str, batched: bool) -> None:
        """InputError unless `x`'s shape fits `layout` and `channels` (a modality whose samples
        have no fixed number of axes overrides it)."""
        want = len(self.layout) + int(batched)
        shape = "(B, " + ", ".join(self.layout) + ")" if batched else "(" + ", ".join(self.layout) + ")"
        if x.dim() != want:
            raise InputError(f"{sample}: {self.name} input must have shape {shape}, got {tuple(x.shape)}")
        fixed = [(i + int(batched), int(c)) for i, c in enumerate(self.layout) if c.isdigit()]
        if any(x.shape[i] != n for i, n in fixed):
            raise InputError(f"{sample}: {self.name} input must have shape {shape}, got {tuple(x.shape)}")
        if self.channels and x.shape[self.channel_axis(batched)] != self.channels:
            axis = self.channel_axis(batched)
            raise InputError(f"{sample}: {self.name} input needs {self.channels} channels on axis {axis} "
                             f"of {shape}, got shape {tuple(x.shape)}")

    def check(self, x: Tensor, *, sample: str, batched: bool) -> None:
        """Modality-specific checks beyond shape, finiteness and range (none by default)."""

    # -- normalize --------------------------------------------------------------------------
    def side_info(self, x: Tensor, batched: bool = True) -> dict[str, Tensor] | None:
        """Per-sample values that `normalize` takes from the sample itself and `denormalize`
        needs to undo it (a depth map's median and scale), as `{name: (B,) tensor}`; None when
        normalization uses recorded constants only (the default).

        A modality that returns side information accepts it as `side=` in `normalize` and
        `denormalize`; the tokenizer carries it with the tokens (`Tokens.side`) and the token
        store in each sample's metadata (see `SIDE_KEY`), so decoding restores raw values."""
        return None

    def _stats(self, x: Tensor, batched: bool) -> tuple[Tensor, Tensor]:
        shape = [1] * x.dim()
        shape[self.channel_axis(batched)] = -1
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return mean, std

    def normalize(self, x: Tensor, batched: bool = True) -> Tensor:
        """Raw values to model space; invalid elements become `fill_value`."""
        mean, std = self._stats(x, batched)
        valid = self.valid_mask(x)
        if valid is not None:
            x = torch.where(valid, x, mean)
        out = (x - mean) / std
        return out if valid is None else torch.where(valid, out, torch.full_like(out, self.fill_value))

    def denormalize(self, x: Tensor, batched: bool = True) -> Tensor:
        """Model space back to raw values (clamped to `value_range` when one is set)."""
        mean, std = self._stats(x, batched)
        out = x * std + mean
        if self.value_range is not None:
            out = out.clamp(*self.value_range)
        return out

    # -- judge and show -------------------------------------------------------------------
    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Reconstruction quality in raw units over valid elements (plugins add their own)."""
        valid = self.valid_mask(target)
        err = (recon.float() - target.float())
        err = err if valid is None else err[valid]
        return {"mae": float(err.abs().mean()), "rmse": float(err.square().mean().sqrt())}

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """Save inputs next to reconstructions for a person to look at; returns the files.

        The base class writes the raw arrays (`<path>.npz`); plugins write pictures.
        """
        return write_array_samples(target, recon, path)

    def write_decoded(self, x: Tensor, path: Path, meta: Mapping[str, Any] | None = None) -> list[Path]:
        """Write one decoded sample (raw values, no batch axis) for `tokcore decode` at `path`
        plus the modality's file suffix; returns the files written. `meta` is the sample's
        metadata recorded at tokenize time (a video's frame rate, say), or None.

        The base class writes `<path>.npy`; plugins write images, videos, trajectories.
        """
        return write_array(x, path)

    # -- evaluate (`tokcore eval`) ----------------------------------------------------------
    def metric_totals(self, recon: Any, target: Any) -> dict[str, float]:
        """Sums over a batch that add up across batches and processes; `metrics_from_totals`
        turns the grand totals into the metrics. By default every metric of `metrics` times
        the batch size, with the count under `_samples`: exact for metrics that are means
        over samples (PSNR, ATE); a modality whose metrics pool elements across samples
        (depth's AbsRel over valid pixels) returns its own sums."""
        n = len(target)
        return {"_samples": float(n), **{k: float(v) * n for k, v in self.metrics(recon, target).items()}}

    def metrics_from_totals(self, totals: Mapping[str, float]) -> dict[str, float]:
        """The metrics from the totals of `metric_totals` summed over a whole split."""
        n = totals["_samples"]
        return {k: v / n for k, v in totals.items() if not k.startswith("_")}

    def rate_units(self, x: Any) -> dict[str, float]:
        """How many of each unit one raw sample `x` (no batch axis) holds, so a rate can be
        given per unit: `{"pixel": H * W}` for an image, `{"frame": T}` for a track. None
        by default (rates are then per sample only)."""
        return {}

    def to_signal(self, x: Tensor) -> Tensor:
        """A raw batch of a time-first layout ("TC", "T44") as `(B, T, C)` float64 channels
        for signal codecs (the DCT baseline), invalid frames filled by linear interpolation
        along time. A modality whose values live on a manifold (camera rotations) overrides
        this and `from_signal`."""
        if not self.layout.startswith("T"):
            raise InputError(f"modality '{self.name}' (layout {self.layout}) has no time axis first; "
                             "it cannot be coded as a signal")
        signal = x.double().reshape(x.shape[0], x.shape[1], -1)
        middle = sum(self.value_range) / 2 if self.value_range is not None else 0.0
        return fill_gaps(signal, outside=middle)

    def from_signal(self, signal: Tensor, like: Tensor) -> Tensor:
        """`to_signal`'s inverse: `(B, T, C)` back to raw values shaped like `like`
        (clamped to `value_range` when one is set)."""
        out = signal.reshape(like.shape).to(like.dtype)
        return out.clamp(*self.value_range) if self.value_range is not None else out

    def feature_extractors(self, weights: Mapping[str, Path | None]) -> dict[str, "FeatureExtractor"]:
        """Networks for Fréchet distances (`{"fid": ..., "fd_vgg16": ...}`) for the names the
        user asked for (`tokcore eval --features NAME=FILE`, or a bare NAME: None here, the
        network's own file where the plugin knows one on disk); none by default. A name the
        modality has no network for, a missing file or one of the wrong architecture is an
        InputError naming it."""
        return {}

    def eval_pictures(self, inputs: Any, columns: Mapping[str, Any], path: Path) -> list[Path]:
        """Pictures for the evaluation report: a few raw samples `inputs` beside each codec's
        decodings (`columns`: name -> batch aligned with `inputs`, the tokenizer first),
        written at `path` plus a suffix (.png, .gif). Returns the files; none by default."""
        return []

    @abstractmethod
    def example(self, batch_size: int = 2) -> Tensor:
        """A small valid raw batch (the contract kit checks validate/normalize on it)."""

    def invalid_examples(self, x: Tensor) -> list[tuple[Any, str]]:
        """Broken variants of a valid batch `x` that `validate` must reject, with what is wrong."""
        return [(x[0], "a sample without its batch axis"), (x.unsqueeze(-1), "an extra axis")]


SIDE_KEY = "normalization"  # the token store keeps a sample's side information under this metadata key


def normalize_with(modality: Modality, x: Tensor, side: dict[str, Tensor] | None) -> Tensor:
    """`modality.normalize(x)`, with the per-sample side information when there is some (a
    modality without side information need not accept the argument)."""
    return modality.normalize(x) if side is None else modality.normalize(x, side=side)


def denormalize_with(modality: Modality, x: Tensor, side: dict[str, Tensor] | None) -> Tensor:
    """`modality.denormalize(x)`, with the per-sample side information when there is some."""
    return modality.denormalize(x) if side is None else modality.denormalize(x, side=side)


def fill_gaps(x: Tensor, outside: Tensor | float = 0.0) -> Tensor:
    """`(..., T, C)` with non-finite frames (any channel) -> each such frame linearly
    interpolated between the nearest valid frames before and after it, held at the ends; a
    sequence without any valid frame becomes `outside`."""
    valid = torch.isfinite(x).all(-1)  # (..., T)
    t = torch.arange(x.shape[-2], device=x.device).expand_as(valid)
    last = x.shape[-2] - 1
    # index of the nearest valid frame at or before / at or after each frame (-1 / T: none)
    before = torch.where(valid, t, -1).cummax(-1).values
    after = torch.where(valid, t, last + 1).flip(-1).cummin(-1).values.flip(-1)
    lo = torch.where(before >= 0, before, after).clamp(0, last)
    hi = torch.where(after <= last, after, before).clamp(0, last)
    w = ((t - lo).to(x.dtype) / (hi - lo).clamp_min(1).to(x.dtype)).clamp(0, 1).unsqueeze(-1)
    take = lambda i: x.gather(-2, i.unsqueeze(-1).expand(*i.shape, x.shape[-1]))  # noqa: E731
    filled = torch.where(valid.unsqueeze(-1), x, (1 - w) * take(lo) + w * take(hi))
    empty = ~valid.any(-1, keepdim=True).unsqueeze(-1)
    return torch.where(empty, torch.as_tensor(outside, dtype=x.dtype, device=x.device), filled)


def write_array_samples(target: Tensor, recon: Tensor, path: Path) -> list[Path]:
    """Inputs and reconstructions as `<path>.npz` (arrays `target` and `recon`)."""
    buf = io.BytesIO()
    np.savez(buf, target=target.detach().cpu().numpy(), recon=recon.detach().cpu().numpy())
    out = path.with_suffix(".npz")
    atomic_write_bytes(out, buf.getvalue())
    return [out]


def write_array(x: Tensor, path: Path) -> list[Path]:
    """One array as `<path>.npy`, written atomically (the suffix is appended, never replaced)."""
    buf = io.BytesIO()
    np.save(buf, x.detach().cpu().numpy(), allow_pickle=False)
    out = path.with_name(path.name + ".npy")
    atomic_write_bytes(out, buf.getvalue())
    return [out]
