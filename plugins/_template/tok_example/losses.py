"""The Charbonnier loss: a smooth L1, robust to outliers and differentiable at zero."""

from __future__ import annotations

import torch
from torch import Tensor

from tokcore.api import Loss, LossOutput, masked_mean


class CharbonnierLoss(Loss):
    """mean(sqrt((pred - target)^2 + eps^2)) over the valid elements.

    Args:
        eps: smoothing: below about eps the loss is quadratic, above it linear.
        weight: factor on the loss.
    """

    def __init__(self, eps: float = 1e-3, weight: float = 1.0):
        super().__init__()
        self.eps, self.weight = eps, weight

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        err = torch.sqrt((pred.float() - target.float()).square() + self.eps**2)
        value = masked_mean(err, mask)  # tokcore's helper: a (B, T) mask covers (B, T, C) values
        return LossOutput(self.weight * value, {"charbonnier": value.detach()})
