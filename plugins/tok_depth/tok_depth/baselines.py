"""tok-depth's baseline codec for `tokcore eval`: log depth on a coarse grid.

Each map becomes the mean log depth over the valid pixels of each cell of a coarse grid, each
cell quantized uniformly over the range log depth takes on the training split, upsampled
bilinearly. For a budget of bits per map, every (cells, bits per cell) split that fits is
tried on the training split (grids keep the maps' aspect ratio) and the one with the lowest
headline error (the modality's first metric, AbsRel) is used, so the baseline is as good as
this family allows at the tokenizer's rate.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tokcore.api import Baseline, BudgetTooSmall, Coded, Modality


class GridLogDepthCodec:
    """Log depth on a coarse grid, `bits` bits per cell.

    Args:
        grid: `(h, w)` cells per map.
        bits: bits per cell.
        lo: log depth of the lowest quantization level.
        hi: log depth of the highest.
    """

    def __init__(self, grid: tuple[int, int], bits: int, lo: float, hi: float):
        if bits < 1:
            raise ValueError(f"need at least 1 bit per cell, got {bits}")
        self.grid, self.bits, self.lo, self.hi = grid, bits, lo, max(hi, lo + 1e-6)

    @property
    def bits_per_map(self) -> int:
        return self.bits * math.prod(self.grid)

    def __call__(self, depth: Tensor, valid: Tensor) -> Tensor:
        """Encode and decode depths `(B, 1, H, W)`; a cell without valid pixels takes its
        map's mean (it costs its bits all the same)."""
        v = valid.double()
        logd = torch.where(valid, depth.double().clamp_min(1e-6).log(), torch.zeros_like(v))
        weight = F.adaptive_avg_pool2d(v, self.grid)
        cells = F.adaptive_avg_pool2d(logd * v, self.grid) / weight.clamp_min(1e-12)
        mean = (logd * v).sum((1, 2, 3), keepdim=True) / v.sum((1, 2, 3), keepdim=True).clamp_min(1)
        cells = torch.where(weight > 0, cells, mean)
        levels = 2**self.bits - 1
        q = torch.round((cells.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo) * levels)
        cells = self.lo + q / levels * (self.hi - self.lo)
        return F.interpolate(cells, size=depth.shape[-2:], mode="bilinear", align_corners=False).exp().float()


class GridBaseline(Baseline):
    """Log depth on the best coarse grid at or under the tokenizer's bits per map.

    Args:
        max_bits: most bits per cell tried.
        fit_maps: training maps the (grid, bits) choice is made on.
    """

    label = "grid"
    fits = True

    def __init__(self, max_bits: int = 12, fit_maps: int = 64):
        self.max_bits, self.fit_maps = max_bits, fit_maps
        self._train: Tensor | None = None
        self._valid: Tensor | None = None
        self._range = (0.0, 1.0)
        self._codecs: dict[tuple, GridLogDepthCodec] = {}

    def applies_to(self, modality: Modality) -> bool:
        return modality.name == "depth"

    def fit(self, train: Tensor, modality: Modality) -> None:
        """Levels spanning the 0.1-99.9 percentiles of the training split's valid log depths."""
        valid = modality.valid_mask(train)
        logs = train[valid].double().log().numpy()
        lo, hi = np.percentile(logs, [0.1, 99.9])
        pick = np.linspace(0, len(train) - 1, min(self.fit_maps, len(train))).round().astype(int)
        self._train, self._valid, self._range = train[pick], valid[pick], (float(lo), float(hi))
        self._modality = modality
        self._codecs = {}

    def codec(self, bits: float, size: tuple[int, int]) -> GridLogDepthCodec:
        """The (grid, bits per cell) of at most `bits` bits per map that does best on the
        training maps."""
        if self._train is None or self._valid is None:
            raise RuntimeError("fit the grid baseline on training maps first")
        key = (int(bits), size)
        if key not in self._codecs:
            train = F.interpolate(self._train, size=size, mode="nearest") if self._train.shape[-2:] != size else self._train
            valid = F.interpolate(self._valid.float(), size=size, mode="nearest") > 0.5 if \
                self._valid.shape[-2:] != size else self._valid
            best, best_err = None, math.inf
            for b in range(1, self.max_bits + 1):
                cells = int(bits) // b
                gh = min(size[0], max(1, int(math.floor(math.sqrt(cells * size[0] / size[1])))))
                gw = min(size[1], cells // gh) if cells >= gh else 0
                if gw < 1:
                    continue
                codec = GridLogDepthCodec((gh, gw), b, *self._range)
                err = self._error(codec(train, valid), train)
                if err < best_err:
                    best, best_err = codec, err
            if best is None:
                raise BudgetTooSmall(f"{bits:.0f} bits cannot hold one grid cell")
            self._codecs[key] = best
        return self._codecs[key]

    def _error(self, recon: Tensor, train: Tensor) -> float:
        """The modality's headline error (its first metric) of decoded training maps."""
        m = self._modality
        return float(next(iter(m.metrics_from_totals(m.metric_totals(recon, train)).values())))

    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        codec = self.codec(bits, tuple(x.shape[-2:]))
        recon = codec(x, modality.valid_mask(x))
        spent = torch.full((len(x),), float(codec.bits_per_map), dtype=torch.float64)
        return Coded(recon, spent, f"{codec.grid[0]}x{codec.grid[1]} x {codec.bits} bit")
