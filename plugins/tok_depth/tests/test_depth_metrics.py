"""The depth metrics against a direct numpy computation of their textbook definitions."""

import numpy as np
import pytest
import torch

from tok_depth.metrics import depth_metrics


def numpy_metrics(pred, gt, valid):
    rows = []
    for p, g, v in zip(pred, gt, valid):
        if not v.any():
            continue
        p, g = p[v].astype(np.float64), g[v].astype(np.float64)
        thresh = np.maximum(p / g, g / p)
        rows.append({"abs_rel": np.mean(np.abs(p - g) / g), "rmse": np.sqrt(np.mean((p - g) ** 2)),
                     "log_rmse": np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)), "mae": np.mean(np.abs(p - g)),
                     "delta1": np.mean(thresh < 1.25), "delta2": np.mean(thresh < 1.25**2),
                     "delta3": np.mean(thresh < 1.25**3)})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def test_metrics_match_numpy_on_valid_pixels_only():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 10.0, size=(3, 1, 12, 12)).astype(np.float32)
    pred = (gt * rng.uniform(0.6, 1.6, size=gt.shape)).astype(np.float32)
    gt[0, 0, :4] = 0.0
    gt[1, 0, 2, 3] = np.inf
    gt[1, 0, 5, :] = np.nan
    gt[2] = 0.0  # an image without any valid pixel does not count
    pred[0, 0, :4] = 1e6  # what the reconstruction says inside holes does not matter
    valid = np.isfinite(gt) & (gt > 0)
    got = depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(valid))
    want = numpy_metrics(pred, gt, valid)
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k


def test_perfect_reconstruction_and_no_valid_pixels():
    gt = torch.full((2, 1, 4, 4), 3.0)
    perfect = depth_metrics(gt, gt, torch.ones_like(gt, dtype=torch.bool))
    assert perfect["abs_rel"] == perfect["rmse"] == 0.0 and perfect["delta1"] == 1.0
    empty = depth_metrics(gt, gt, torch.zeros_like(gt, dtype=torch.bool))
    assert all(np.isnan(v) for v in empty.values())


def test_modality_metrics_use_its_mask():
    from tokcore import registry

    depth = registry.build("modality", {"name": "depth"})
    gt = torch.tensor([[[[2.0, 4.0, 0.0, float("inf")]]]])
    pred = torch.tensor([[[[2.0, 4.8, 9.0, 9.0]]]])
    m = depth.metrics(pred, gt)
    assert m["abs_rel"] == pytest.approx((0 + 0.2) / 2) and m["delta1"] == 1.0
