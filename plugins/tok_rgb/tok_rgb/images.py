"""Reading one picture file (jpg/png/webp through Pillow, or a .npy array) as `(H, W, 3)`.

What is not plain 8-bit RGB is converted when that loses nothing a tokenizer could use,
and rejected otherwise, with the file named:

* grayscale (`L`, `I;16`, 2D arrays, one channel): repeated to three channels;
* 16-bit (PNG `I;16`, uint16 arrays): scaled to 8 bits (x / 257, rounded), so 65535 is 255;
* RGBA / LA / palette with transparency: the alpha channel is dropped when every pixel is
  opaque; otherwise the picture is composited onto `background` when one is given, else rejected;
* float arrays are kept as float32 (the modality checks their range);
* anything else (CMYK, 2 or 5+ channels, complex, bool) is rejected.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from tokcore.api import InputError, load_array

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".npy")


class ImageFormatError(InputError, ValueError):
    """A picture tokcore cannot read, or cannot turn into RGB without guessing; the message
    names the file."""


def decode_image(data: bytes, suffix: str, name: str, background: Sequence[int] | None = None) -> np.ndarray:
    """The picture in `data` (file contents; `suffix` says which format) as `(H, W, 3)` uint8,
    or float32 for a float .npy."""
    if suffix == ".npy":
        arr = load_array(data, name=name)
    else:
        arr = _pillow_array(data, name)
    return to_rgb(arr, name, background)


def read_image(path: Path, name: str, background: Sequence[int] | None = None) -> np.ndarray:
    return decode_image(path.read_bytes(), path.suffix.lower(), name, background)


def _pillow_array(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # Pillow names the BytesIO, not the file
        raise ImageFormatError(f"{name}: not a picture Pillow can read (no known image format in its "
                               f"{len(data)} bytes); remove it or convert it to PNG or JPEG") from None
    with img:
        try:
            img.load()
        except (OSError, SyntaxError, ValueError) as err:  # truncated or damaged data
            raise ImageFormatError(f"{name}: damaged or truncated {img.format or 'image'} file ({err}); "
                                   "remove it or write it again") from None
        if img.mode == "P":  # palette: expand, keeping transparency as alpha
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode in ("I;16", "I;16B", "I;16L"):
            return np.array(img, dtype=np.uint16)
        if img.mode not in ("L", "LA", "RGB", "RGBA"):
            raise ImageFormatError(f"{name}: image mode {img.mode} is not supported; convert it to RGB "
                                   "(e.g. with Pillow: img.convert('RGB'))")
        return np.array(img)  # a writable copy (torch refuses read-only arrays)


def to_rgb(arr: np.ndarray, name: str, background: Sequence[int] | None = None) -> np.ndarray:
    """`arr` `(H, W)`, `(H, W, C)` or `(C, H, W)` with C in 1-4 as `(H, W, 3)` (see module doc)."""
    if arr.dtype == np.uint16:
        arr = np.round(arr.astype(np.float32) / 257.0).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype != np.uint8:
        raise ImageFormatError(f"{name}: pixels of dtype {arr.dtype} are not supported; give uint8, uint16 "
                               "or float values in [0, 255]")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 2, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels first
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ImageFormatError(f"{name}: picture of shape {arr.shape} is not an image; give (H, W), "
                               "(H, W, C) or (C, H, W) with 1, 3 or 4 channels")
    if arr.shape[-1] in (2, 4):  # gray+alpha or RGBA
        arr = _drop_alpha(arr, name, background)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _drop_alpha(arr: np.ndarray, name: str, background: Sequence[int] | None) -> np.ndarray:
    color, alpha = arr[..., :-1], arr[..., -1:]
    opaque = 255.0 if arr.dtype == np.uint8 or alpha.max(initial=0) > 1 else 1.0  # float alpha: [0, 1] or [0, 255]
    if np.all(alpha == opaque):
        return color
    if background is None:
        raise ImageFormatError(f"{name}: image has transparent pixels; set the dataset's background "
                               "(e.g. [255, 255, 255]) to composite it, or remove the alpha channel")
    bg = np.asarray(background, dtype=np.float32) * (opaque / 255.0)  # background is given in 0-255
    a = alpha.astype(np.float32) / opaque
    if color.shape[-1] == 1:
        color = np.repeat(color, 3, axis=-1)
    out = color.astype(np.float32) * a + bg * (1.0 - a)
    return np.round(out).astype(np.uint8) if arr.dtype == np.uint8 else out
