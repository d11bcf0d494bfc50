"""The camera pose loss: translation plus rotation, on the 9-value representation."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from tok_camera.modality import rotation_from_6d
from tokcore.api import Loss, LossOutput, masked_mean


def _geodesic(pred6: Tensor, target6: Tensor) -> Tensor:
    """Angle (radians) between the rotations two 6D vectors stand for, `(...)`; the norm is
    smoothed at 0 so the gradient stays finite for a perfect prediction."""
    r = rotation_from_6d(target6).transpose(-1, -2) @ rotation_from_6d(pred6)
    skew = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = torch.sqrt(skew.square().sum(-1) / 4 + 1e-12)
    cos = (r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1) / 2
    return torch.atan2(sin, cos)


class CameraPoseLoss(Loss):
    """Pose reconstruction loss on `(B, T, 9)` (6D rotation, then translation): the mean
    translation error (L1 or L2, in the modality's scaled units) plus a rotation loss, either
    the geodesic angle in radians between the rotations the 6D values stand for, or L1/L2 on
    the 6D values themselves. An optional velocity term compares frame-to-frame differences
of all 9 values (same kind as translation), which penalizes jitter that per-frame errors
barely see and that relative errors (RTE, RRE) measure. Masks `(B, T)` or `(B, T, 9)`
select valid frames (a difference counts when both of its frames are valid).

    Args:
        translation: "l1" or "l2" on the translation.
        rotation: "geodesic" (angle between rotations) or "6d" (same kind as translation, on the 6D values).
        translation_weight: factor on the translation term.
        rotation_weight: factor on the rotation term.
        velocity_weight: factor on the frame-to-frame difference term (0: off).
    """

    def __init__(self, translation: Literal["l1", "l2"] = "l1", rotation: Literal["geodesic", "6d"] = "geodesic",
                 translation_weight: float = 1.0, rotation_weight: float = 1.0, velocity_weight: float = 0.0):
        super().__init__()
        self.velocity_weight = velocity_weight
        self.translation, self.rotation = translation, rotation
        self.translation_weight, self.rotation_weight = translation_weight, rotation_weight

    def _elementwise(self, p: Tensor, t: Tensor) -> Tensor:
        return (p - t).abs() if self.translation == "l1" else (p - t).square()

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        pred, target = pred.float(), target.float()
        if mask is not None and mask.dim() == pred.dim():
            mask = mask.all(-1)
        trans = masked_mean(self._elementwise(pred[..., 6:9], target[..., 6:9]).mean(-1), mask)
        if self.rotation == "geodesic":
            rot = masked_mean(_geodesic(pred[..., :6], target[..., :6]), mask)
        else:
            rot = masked_mean(self._elementwise(pred[..., :6], target[..., :6]).mean(-1), mask)
        loss = self.translation_weight * trans + self.rotation_weight * rot
        terms = {"translation": trans.detach(), "rotation": rot.detach()}
        if self.velocity_weight:
            pair = None if mask is None else mask[:, 1:] & mask[:, :-1]
            vel = masked_mean(self._elementwise(pred.diff(dim=1), target.diff(dim=1)).mean(-1), pair)
            loss = loss + self.velocity_weight * vel
            terms["velocity"] = vel.detach()
        return LossOutput(loss, terms)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        from tok_camera.modality import CameraModality

        cam = CameraModality()
        target = cam.normalize(cam.example(batch_size))
        g = torch.Generator().manual_seed(1)
        return target + 0.05 * torch.randn(target.shape, generator=g), target
