"""The standard depth-estimation errors (Eigen et al. 2014), over valid pixels only.

Each error is computed per image over that image's valid pixels, then averaged over the
images that have any (as KITTI and NYUv2 evaluations do), so a mostly empty crop weighs as
much as a full one and holes never count.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6  # predictions are clamped to this before ratios and logs


NAMES = ("abs_rel", "rmse", "log_rmse", "mae", "delta1", "delta2", "delta3")


def per_image_errors(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, Tensor]:
    """Each error `(N,)` of the N images that have a valid pixel, over those pixels."""
    v = valid.reshape(len(valid), -1).double()
    count = v.sum(1)
    has = count > 0
    # holes are replaced by 1 in both, so whatever they hold (inf, NaN) cannot leak into a sum
    p = torch.where(valid, pred, torch.ones_like(pred)).reshape(len(pred), -1).double().clamp_min(EPS)
    t = torch.where(valid, target, torch.ones_like(target)).reshape(len(target), -1).double()

    def image_mean(e: Tensor) -> Tensor:
        return ((e * v).sum(1) / count.clamp_min(1))[has]

    ratio = torch.maximum(p / t, t / p)
    return {
        "abs_rel": image_mean((p - t).abs() / t),
        "rmse": image_mean((p - t).square()).sqrt(),
        "log_rmse": image_mean((p.log() - t.log()).square()).sqrt(),
        "mae": image_mean((p - t).abs()),
        **{f"delta{k}": image_mean((ratio < 1.25**k).double()) for k in (1, 2, 3)},
    }


def depth_metric_totals(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, float]:
    """The sums of `per_image_errors`, with the number of images under `_samples`: they add
    up over batches and processes (`tokcore eval`)."""
    errors = per_image_errors(pred, target, valid)
    return {"_samples": float(len(errors["rmse"])), **{k: float(e.sum()) for k, e in errors.items()}}


def depth_metrics(pred: Tensor, target: Tensor, valid: Tensor) -> dict[str, float]:
    """AbsRel, RMSE, log RMSE, MAE and the threshold accuracies delta < 1.25, 1.25^2, 1.25^3,
    each the mean over images of its value over the image's valid pixels.

    Args:
        pred: predicted depths `(B, ...)`.
        target: ground-truth depths, same shape (holes may hold anything).
        valid: boolean mask of the target's valid pixels, same shape.

    Returns NaN for every metric when no image has a valid pixel.
    """
    totals = depth_metric_totals(pred, target, valid)
    n = totals["_samples"]
    return {k: totals[k] / n if n else float("nan") for k in NAMES}
