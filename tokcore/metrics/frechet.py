"""Fréchet distance between two sets of features: the distance behind FID, rFID and rFVD.

The feature network (Inception for FID, I3D for FVD) belongs to the modality; what is
generic is the statistics and the distance, here. `FeatureStats` accumulates a mean and a
covariance in float64 from batches, so a whole dataset streams through without keeping its
features, and stats from several processes add up (`merge`).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor


class FeatureStats:
    """Running sums of features `(N, D)` for their mean and covariance."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = np.zeros(dim, dtype=np.float64)
        self.outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: Tensor | np.ndarray) -> None:
        f = features.detach().double().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features, np.float64)
        if f.ndim != 2 or f.shape[1] != self.sum.shape[0]:
            raise ValueError(f"features must be (N, {self.sum.shape[0]}), got {tuple(f.shape)}")
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.outer += f.T @ f

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer
        return self

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean and the unbiased covariance (numpy's `np.cov` convention, as FID uses)."""
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.n}")
        mean = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mean, mean)) / (self.n - 1)
        return mean, cov


def frechet_distance(a: FeatureStats | tuple[np.ndarray, np.ndarray],
                     b: FeatureStats | tuple[np.ndarray, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two Gaussians.

    The trace of the matrix square root is the sum of the square roots of the eigenvalues
    of `sqrt(S_a) S_b sqrt(S_a)`, a symmetric positive semi-definite matrix with the same
    spectrum as `S_a S_b`: symmetric eigendecompositions only, so no complex round-off from a
    general `sqrtm` (the usual FID code's `np.iscomplexobj` check) and no singular-matrix
    retry with an added epsilon.
    """
    mu_a, cov_a = a.mean_cov() if isinstance(a, FeatureStats) else a
    mu_b, cov_b = b.mean_cov() if isinstance(b, FeatureStats) else b
    root_a = _psd_sqrt(cov_a)
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance (negative round-off eigenvalues clipped)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def features_distance(a: Tensor, b: Tensor) -> float:
    """The Fréchet distance of two feature sets `(N, D)` given whole."""
    stats = []
    for f in (a, b):
        s = FeatureStats(f.shape[1])
        s.update(f)
        stats.append(s)
    return frechet_distance(*stats)


__all__ = ["FeatureStats", "frechet_distance", "features_distance"]
