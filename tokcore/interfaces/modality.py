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
