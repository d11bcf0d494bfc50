"""Reconstruction losses shared by every modality (masks make them work for depth holes,
blinks in gaze, padding in sequences)."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from tokcore.interfaces import Loss, LossOutput

_ELEMENTWISE = {
    "l1": lambda p, t: (p - t).abs(),
    "l2": lambda p, t: (p - t).square(),
    "smooth_l1": lambda p, t: F.smooth_l1_loss(p, t, reduction="none"),
}


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of `values` over the elements `mask` marks valid; a mask with fewer axes
    (a `(B, T)` frame mask for `(B, T, C)` values) applies to every trailing element."""
    if mask is None:
        return values.mean()
    while mask.dim() < values.dim():
        mask = mask.unsqueeze(-1)
    mask = mask.expand_as(values).to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


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
        value = masked_mean(_ELEMENTWISE[self.kind](pred.float(), target.float()), mask)
        return LossOutput(self.weight * value, {self.kind: value.detach()})
