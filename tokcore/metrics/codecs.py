"""Classical codecs to compare tokenizers with at the same number of bits.

`DCTCodec` is the baseline for trajectories (gaze tracks, camera poses): per channel, an
orthonormal DCT-II along time, the lowest `keep` coefficients kept, each quantized uniformly
with `bits` bits over the range it takes on the fitting data (by default the 0.1 and 99.9
percentiles; values outside are clipped). A clip then costs `channels * keep * bits` bits, and
`DCTCodec.best` picks the split of a bit budget between `keep` and `bits` that does best on
the fitting data, so the baseline is as good as this family allows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tokcore.nn.lowpass import dct_matrix


class DCTCodec:
    """Low-pass DCT along time with uniform scalar quantization; signals are `(N, T, C)`.

    Args:
        keep: DCT coefficients kept per channel (the lowest frequencies).
        bits: bits per kept coefficient.
        clip_percentile: quantization ranges span the [p, 100 - p] percentiles of the fitting
            data (0: its full range).
    """

    def __init__(self, keep: int, bits: int, clip_percentile: float = 0.1):
        if keep < 1 or not 1 <= bits <= 32:
            raise ValueError(f"need keep >= 1 and 1 <= bits <= 32, got keep={keep}, bits={bits}")
        self.keep, self.bits, self.clip_percentile = keep, bits, clip_percentile
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def bits_per_clip(self, channels: int) -> int:
        return channels * self.keep * self.bits

    def _coefficients(self, x: np.ndarray) -> np.ndarray:
        d = dct_matrix(x.shape[1])[: self.keep]
        return np.matmul(d, x.astype(np.float64))  # (keep, T) @ (N, T, C): BLAS, unlike np.einsum

    def fit(self, x: np.ndarray) -> "DCTCodec":
        """Set each coefficient's quantization range from clips `x` `(N, T, C)`."""
        if x.shape[1] < self.keep:
            raise ValueError(f"cannot keep {self.keep} coefficients of {x.shape[1]} frames")
        c = self._coefficients(x)
        self.lo, self.hi = np.percentile(c, self.clip_percentile, axis=0), np.percentile(c, 100 - self.clip_percentile, axis=0)
        self.hi = np.maximum(self.hi, self.lo + 1e-12)
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Clips `(N, T, C)` -> integer codes `(N, keep, C)` in [0, 2**bits)."""
        assert self.lo is not None and self.hi is not None, "fit the codec first"
        levels = 2**self.bits - 1
        u = (self._coefficients(x) - self.lo) / (self.hi - self.lo)
        return np.rint(np.clip(u, 0.0, 1.0) * levels).astype(np.int64)

    def decode(self, codes: np.ndarray, frames: int) -> np.ndarray:
        """Codes `(N, keep, C)` -> clips `(N, frames, C)`."""
        assert self.lo is not None and self.hi is not None, "fit the codec first"
        c = self.lo + codes / (2**self.bits - 1) * (self.hi - self.lo)
        return np.matmul(dct_matrix(frames)[: self.keep].T, c)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Encode and decode."""
        return self.decode(self.encode(x), x.shape[1])

    @classmethod
    def best(cls, x: np.ndarray, budget_bits: int, error: Callable[[np.ndarray, np.ndarray], float] | None = None,
             max_bits: int = 16) -> "DCTCodec":
        """The (keep, bits) with `channels * keep * bits <= budget_bits` that gives the lowest
        `error(decoded, x)` (default: mean squared error) on `x`, fitted on `x`."""
        error = error or (lambda a, b: float(np.mean((a - b) ** 2)))
        channels, frames = x.shape[2], x.shape[1]
        best, best_err = None, np.inf
        for bits in range(1, max_bits + 1):
            keep = min(frames, budget_bits // (channels * bits))
            if keep < 1:
                break
            codec = cls(keep, bits).fit(x)
            err = error(codec(x), x)
            if err < best_err:
                best, best_err = codec, err
        if best is None:
            raise ValueError(f"{budget_bits} bits cannot hold one coefficient of {channels} channels")
        return best
