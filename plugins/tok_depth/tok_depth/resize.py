"""Resizing and cropping depth without blending holes into valid depth.

Bilinear or area resizing of a depth map with holes averages the 0 of a hole into its
neighbours and invents depths that no surface has. Here resizing is a normalized convolution:
depth and validity are resized alike and divided, so a new pixel is the weighted mean of the
*valid* depths under it, and valid only where at least half its weight falls on valid pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F


def valid_depth(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def masked_resize(depth: np.ndarray, size: tuple[int, int],
                  mode: Literal["auto", "nearest"] = "auto") -> np.ndarray:
    """`(H, W)` depth (holes: 0, inf or NaN) resized to `size` `(h, w)`; holes are 0 after.

    "auto": area averaging to shrink, bilinear to enlarge, over valid pixels only (see the
    module docstring); "nearest": each new pixel copies one old pixel, hole or not.
    """
    valid = valid_depth(depth)
    d = torch.from_numpy(np.where(valid, depth, 0.0).astype(np.float32))[None, None]
    v = torch.from_numpy(valid.astype(np.float32))[None, None]
    h, w = size
    if mode == "nearest":
        return F.interpolate(d, size=size, mode="nearest")[0, 0].numpy()
    shrink = h <= depth.shape[0] and w <= depth.shape[1]
    kw = {"mode": "area"} if shrink else {"mode": "bilinear", "align_corners": False}
    weight = F.interpolate(v, size=size, **kw)
    total = F.interpolate(d * v, size=size, **kw)
    out = torch.where(weight >= 0.5, total / weight.clamp_min(1e-12), torch.zeros_like(total))
    return out[0, 0].numpy()


def resize_shorter(depth: np.ndarray, shorter: int, mode: Literal["auto", "nearest"] = "auto") -> np.ndarray:
    """Resized so that its shorter side is `shorter` pixels (aspect ratio kept)."""
    h, w = depth.shape
    s = shorter / min(h, w)
    return masked_resize(depth, (max(1, round(h * s)), max(1, round(w * s))), mode)


def center_crop(depth: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` window (the map must be at least that large)."""
    h, w = depth.shape
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} depth map; resize it first")
    top, left = (h - size) // 2, (w - size) // 2
    return depth[top:top + size, left:left + size]
