"""The DCT baseline codec: orthonormal transform, exact bit budget, sensible reconstructions."""

import numpy as np
import pytest

from tokcore.metrics.codecs import DCTCodec
from tokcore.nn.lowpass import dct_matrix


def test_dct_matrix_is_orthonormal_and_matches_the_dct_ii_formula():
    d = dct_matrix(12)
    assert np.allclose(d @ d.T, np.eye(12), atol=1e-12)
    x = np.random.default_rng(0).normal(size=12)
    n = np.arange(12)
    direct = [np.sqrt((1 if k == 0 else 2) / 12) * np.sum(x * np.cos(np.pi * (n + 0.5) * k / 12)) for k in range(12)]
    assert np.allclose(d @ x, direct)


def test_all_coefficients_at_high_precision_reconstruct_the_signal():
    x = np.random.default_rng(1).normal(size=(50, 16, 3))
    codec = DCTCodec(keep=16, bits=16, clip_percentile=0).fit(x)
    y = codec(x[:5])
    assert codec.encode(x).shape == (50, 16, 3) and codec.encode(x).max() < 2**16
    assert np.abs(y - x[:5]).max() < 1e-3  # rounding only


def test_smooth_signals_compress_well_and_the_budget_is_kept():
    t = np.linspace(0, 1, 60)
    rng = np.random.default_rng(2)
    x = np.stack([np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6))[:, None] for _ in range(200)])
    codec = DCTCodec.best(x, 240)
    assert codec.bits_per_clip(1) <= 240
    assert np.sqrt(np.mean((codec(x) - x) ** 2)) < 0.01


def test_budget_too_small_is_an_error():
    with pytest.raises(ValueError, match="cannot hold"):
        DCTCodec.best(np.zeros((4, 8, 9)), 8)
