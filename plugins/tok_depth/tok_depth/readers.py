"""Reading depth from files: 16-bit PNGs with a scale, numpy arrays, and stereo disparity.

Every reader returns float32 `(H, W)` depth with invalid pixels set to 0 (the convention of
KITTI, NYUv2 and most 16-bit depth formats); the modality's mask treats 0, inf and NaN alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcore.api import ConfigError, InputError, load_array


def clean_depth(depth: np.ndarray) -> np.ndarray:
    """float32 depth with every non-finite or non-positive value set to 0 (invalid)."""
    d = np.asarray(depth, dtype=np.float32)
    return np.where(np.isfinite(d) & (d > 0), d, np.float32(0.0)).astype(np.float32)


def read_png16(path: str | Path) -> np.ndarray:
    """The raw counts `(H, W)` uint16 of a 16-bit single-channel PNG (0 = no measurement)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise InputError(f"{path}: a depth PNG must be 16-bit single-channel, this one has mode {im.mode}; "
                             "save depth as uint16 counts (e.g. millimetres) and give the scale")
        counts = np.array(im)
    if counts.min() < 0 or counts.max() > 65535:
        raise InputError(f"{path}: values span [{counts.min()}, {counts.max()}], not 16-bit counts")
    return counts.astype(np.uint16)


def read_array(path: str | Path, array: str | None = None) -> np.ndarray:
    """A 2D map from `.npy` or from array `array` (default: the first) of an `.npz`; a
    `(1, H, W)` or `(H, W, 1)` map is squeezed to `(H, W)`."""
    path = Path(path)
    try:
        a = load_array(path, array=array)  # InputError naming the file when it is not a numpy array file
    except ConfigError as err:  # an .npz without that array: a fault of this sample's file
        raise InputError(f"{path}: {err.message}") from None
    if a.ndim == 3 and 1 in (a.shape[0], a.shape[-1]):
        a = a.reshape(a.shape[1:] if a.shape[0] == 1 else a.shape[:-1])
    if a.ndim != 2:
        raise InputError(f"{path}: a depth map must have shape (H, W), got {a.shape}")
    return a


def read_depth(path: str | Path, scale: float = 1.0, array: str | None = None) -> np.ndarray:
    """A depth (or disparity) file as float32 `(H, W)` in the data's unit: 16-bit PNG counts
    or array values times `scale` (1/1000 for millimetre PNGs, 1/256 for KITTI's)."""
    path = Path(path)
    raw = read_png16(path) if path.suffix.lower() == ".png" else read_array(path, array)
    return raw.astype(np.float32) * np.float32(scale)


def disparity_to_depth(disparity: np.ndarray, focal_length: float, baseline: float, doffs: float = 0.0) -> np.ndarray:
    """Depth `focal_length * baseline / (disparity + doffs)` of a rectified stereo pair.

    `focal_length` in pixels of the disparity map, `baseline` in the depth unit wanted,
    `doffs` the x-difference of the two principal points (Middlebury's `doffs`, 0 for most
    datasets). Zero, negative, inf or NaN disparities have no depth: they become 0 (invalid).
    """
    d = np.asarray(disparity, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0) & (d + doffs > 0)
    depth = np.zeros(d.shape, dtype=np.float64)
    depth[ok] = focal_length * baseline / (d[ok] + doffs)
    return depth.astype(np.float32)
