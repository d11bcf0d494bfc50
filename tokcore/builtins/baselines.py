"""Core's baseline codec: the DCT along time, for any time-first modality (gaze, camera).

Each sample becomes a `(T, C)` signal (`Modality.to_signal`: gaps interpolated; camera poses
as rotation vector + translation relative to the first frame), and `DCTCodec.best` picks the
(coefficients kept, bits each) split of the budget that gives the lowest headline error on
the training split: the modality's first metric (gaze: error over valid frames; camera: ATE),
measured on the decoded samples (`Modality.from_signal`) as the evaluation measures them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from tokcore.interfaces.evaluation import Baseline, BudgetTooSmall, Coded
from tokcore.interfaces.modality import Modality
from tokcore.metrics.codecs import DCTCodec


class DCTBaseline(Baseline):
    """Low-pass DCT along time with uniform quantization, at the tokenizer's bits per sample.

    Args:
        max_bits: most bits per kept coefficient tried.
        select_samples: training samples (spread over those given to `fit`) on which the
            settings are compared; the chosen one is then fitted on all of them. Comparing
            measures the modality's metric (an aligned ATE per camera clip) for every setting.
    """

    label = "DCT"
    fits = True

    def __init__(self, max_bits: int = 16, select_samples: int = 1024):
        self.max_bits, self.select_samples = max_bits, select_samples
        self._train: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._codecs: dict[int, DCTCodec] = {}

    def applies_to(self, modality: Modality) -> bool:
        return modality.layout.startswith("T")

    def fit(self, train: Tensor, modality: Modality) -> None:
        signal = modality.to_signal(train).numpy()
        # channels on one scale, so that quantization ranges and the search do not depend on units
        self._scale = signal.reshape(-1, signal.shape[-1]).std(0) + 1e-9
        self._train = signal / self._scale
        pick = np.unique(np.linspace(0, len(train) - 1, min(self.select_samples, len(train))).round().astype(int))
        self._pick, self._raw, self._modality = pick, train[torch.from_numpy(pick)], modality
        self._codecs = {}

    def _error(self, decoded: np.ndarray, _: np.ndarray) -> float:
        """The modality's headline error of the selection samples, decoded."""
        assert self._scale is not None
        recon = self._modality.from_signal(torch.from_numpy(decoded * self._scale), self._raw)
        metrics = self._modality.metrics_from_totals(self._modality.metric_totals(recon, self._raw))
        return float(next(iter(metrics.values())))

    def codec(self, bits: float) -> DCTCodec:
        """The best codec of at most `bits` bits per sample on the training split."""
        if self._train is None:
            raise RuntimeError("fit the DCT baseline on training samples first")
        budget = int(math.floor(bits))
        if budget not in self._codecs:
            try:
                chosen = DCTCodec.best(self._train[self._pick], budget, self._error, max_bits=self.max_bits)
                self._codecs[budget] = DCTCodec(chosen.keep, chosen.bits).fit(self._train)
            except ValueError as err:
                raise BudgetTooSmall(str(err)) from None
        return self._codecs[budget]

    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        codec = self.codec(bits)
        assert self._scale is not None
        signal = modality.to_signal(x).numpy() / self._scale
        decoded = torch.from_numpy(codec(signal) * self._scale)
        channels = signal.shape[-1]
        spent = torch.full((len(x),), float(codec.bits_per_clip(channels)), dtype=torch.float64)
        return Coded(modality.from_signal(decoded, x), spent, f"{codec.keep} coef x {codec.bits} bit x {channels} ch")
