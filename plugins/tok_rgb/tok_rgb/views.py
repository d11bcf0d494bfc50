"""The view of a picture a dataset yields: shorter side resized, cropped, optionally flipped
(VIMPAC's video2token options), the same for one image or every frame of a clip.

A `View` is decided once per sample (from the sample's seed and index, so it is the same in
every run and every worker) and then applied to all of its frames, so a clip is never
cropped or flipped differently from one frame to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tokcore.api import ConfigError

CROPS = ("top", "center", "bottom", "random")
FLIPS = ("none", "horizontal", "random")
Crop = Literal["top", "center", "bottom", "random"]
Flip = Literal["none", "horizontal", "random"]


@dataclass(frozen=True)
class View:
    """Resize to `size` (h, w), then keep rows top:top+crop_h and columns left:left+crop_w,
    then mirror left-right when `flip`."""

    size: tuple[int, int]
    box: tuple[int, int, int, int]  # top, left, height, width
    flip: bool

    def meta(self) -> dict[str, Any]:
        top, left, h, w = self.box
        return {"resize": list(self.size), "crop": [top, left, h, w], "flip": self.flip}


class ViewSpec:
    """How to choose a view, from a dataset's parameters (validated here, once).

    Args:
        size: the shorter side after resizing (aspect ratio kept), or None to keep the size.
        crop_size: the crop, `side` or `[height, width]`, or None for no crop.
        crop: where the crop sits along each axis that is cut: "top" (top rows, or left
            columns), "center", "bottom" (bottom rows, or right columns), or "random".
        flip: "none", "horizontal" (every sample mirrored), or "random" (half of them).
    """

    def __init__(self, size: int | None, crop_size: int | Sequence[int] | None, crop: str, flip: str):
        if size is not None and size < 1:
            raise ConfigError(f"must be a positive side length or null, got {size}", key="size")
        if crop not in CROPS:
            raise ConfigError(f"unknown crop '{crop}'; use one of {', '.join(CROPS)}", key="crop")
        if flip not in FLIPS:
            raise ConfigError(f"unknown flip '{flip}'; use one of {', '.join(FLIPS)}", key="flip")
        if crop_size is not None:
            crop_size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
            if len(crop_size) != 2 or min(crop_size) < 1:
                raise ConfigError(f"must be a side or [height, width] of positive sizes, got {list(crop_size)}",
                                  key="crop_size")
        self.size, self.crop_size, self.crop, self.flip = size, crop_size, crop, flip

    def choose(self, height: int, width: int, seed: int, index: int, sample: str) -> View:
        """The view of sample `index` whose pictures are `height` x `width`."""
        h, w = height, width
        if self.size is not None:
            scale = self.size / min(h, w)
            h, w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        rng = np.random.default_rng([seed, index])  # same view for the same seed and sample
        ch, cw = self.crop_size or (h, w)
        if ch > h or cw > w:
            raise ValueError(f"{sample}: crop {ch}x{cw} is larger than the {h}x{w} picture (after resizing "
                             f"to size {self.size}); lower crop_size or raise size")
        top, left = self._offset(h - ch, rng), self._offset(w - cw, rng)
        flip = self.flip == "horizontal" or (self.flip == "random" and bool(rng.random() < 0.5))
        return View((h, w), (top, left, ch, cw), flip)

    def _offset(self, slack: int, rng: np.random.Generator) -> int:
        if self.crop == "top":
            return 0
        if self.crop == "bottom":
            return slack
        if self.crop == "center":
            return slack // 2
        return int(rng.integers(0, slack + 1))


def apply_view(frames: np.ndarray, view: View) -> torch.Tensor:
    """`frames` `(N, H, W, C)` (uint8 or float) as `(N, C, h, w)` in the view, same dtype.

    Resizing is antialiased bilinear (area-like when shrinking, so no aliasing); uint8 input is
    rounded back to uint8.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    dtype = x.dtype
    if tuple(x.shape[-2:]) != view.size:
        y = F.interpolate(x.float(), size=view.size, mode="bilinear", align_corners=False, antialias=True)
        x = y.round_().clamp_(0, 255).to(dtype) if dtype == torch.uint8 else y.to(dtype)
    top, left, h, w = view.box
    x = x[:, :, top:top + h, left:left + w]
    if view.flip:
        x = x.flip(-1)
    return x.contiguous()
