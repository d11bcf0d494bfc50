"""Reconstruction losses shared by every modality (masks make them work for depth holes,
blinks in gaze, padding in sequences)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from tokcore.interfaces import Loss, LossOutput

_ELEMENTWISE = {
    "l1": lambda p, t: (p - t).abs(),
    "l2": lambda p, t: (p - t).square(),
    "smooth_l1": lambda p, t: F.smooth_l1_loss(p, t, reduction="none"),
}


class ReconstructionLoss(Loss):
    """Masked L1, L2 or smooth-L1 between reconstruction and target, averaged over valid elements.

    Args:
        kind: "l1", "l2" or "smooth_l1".
        weight: factor on the loss.
    """

    def __init__(self, kind: Literal["l1", "l2", "smooth_l1"] = "l2", weight: float = 1.0):
        super().__init__()
        self.kind, self.weight = kind, weight

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        err = _ELEMENTWISE[self.kind](pred.float(), target.float())
        if mask is None:
            value = err.mean()
        else:
            while mask.dim() < err.dim():  # a (B, T) mask applies to every channel of (B, T, C)
                mask = mask.unsqueeze(-1)
            mask = mask.expand_as(err).to(err.dtype)
            value = (err * mask).sum() / mask.sum().clamp_min(1.0)
        return LossOutput(self.weight * value, {self.kind: value.detach()})
