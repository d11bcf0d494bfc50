"""The Fréchet distance against the textbook formula with scipy's general sqrtm."""

import numpy as np
import pytest
import torch
from scipy import linalg

from tokcore.metrics.frechet import FeatureStats, features_distance, frechet_distance


def reference(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = (np.atleast_2d(np.cov(x, rowvar=False)) for x in (a, b))
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.parametrize("dim", [1, 8, 32])
def test_matches_textbook_formula(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(size=(400, dim)) @ rng.normal(size=(dim, dim)) + 0.5
    assert features_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(reference(a, b), rel=1e-6)


def test_zero_for_same_features_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(300, 16)))
    assert abs(features_distance(a, a)) < 1e-8
    near, far = features_distance(a, a + 0.1), features_distance(a, a + 1.0)
    assert near == pytest.approx(16 * 0.01, rel=1e-6) and far == pytest.approx(16.0, rel=1e-6)


def test_streamed_and_merged_stats_equal_whole():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(256, 12)), rng.normal(size=(256, 12)) * 2
    whole = features_distance(torch.from_numpy(a), torch.from_numpy(b))
    parts = [FeatureStats(12) for _ in range(3)]
    for i, chunk in enumerate(np.array_split(a, 7)):  # as three ranks would see it
        parts[i % 3].update(chunk)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    other = FeatureStats(12)
    other.update(torch.from_numpy(b))
    assert frechet_distance(merged, other) == pytest.approx(whole, rel=1e-9)


def test_rank_deficient_covariance_is_finite():
    rng = np.random.default_rng(2)
    a = np.repeat(rng.normal(size=(50, 1)), 6, axis=1)  # rank 1 in 6 dimensions
    b = rng.normal(size=(50, 6))
    d = frechet_distance(*(_stats(x) for x in (a, b)))
    assert np.isfinite(d) and d > 0


def test_bad_shapes_are_errors():
    s = FeatureStats(4)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        s.update(np.zeros((3, 5)))
    s.update(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        s.mean_cov()


def _stats(x):
    s = FeatureStats(x.shape[1])
    s.update(x)
    return s
