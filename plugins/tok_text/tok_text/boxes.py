"""Bounding boxes as text, 4M style: each box is its four corner coordinates quantized to
`bins` levels and written as `v0=<xmin> v1=<ymin> v2=<xmax> v3=<ymax>`, followed by its
class label, so detections go through the same WordPiece tokenizer as captions. With the
`wordpiece` trainer's `coordinate_bins`, each coordinate is a single token.

    text = serialize_boxes([[10, 20, 200, 120]], ["dog"], image_size=(640, 480))
    # 'v0=15 v1=41 v2=312 v3=250 dog'
    boxes, labels = parse_boxes(text, image_size=(640, 480))   # within one bin of the input
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from tokcore.api import InputError

_COORD = re.compile(r"v([0-3])\s*=\s*(\d+)")


def coordinate_tokens(bins: int) -> list[str]:
    """Every coordinate token: v0=0 ... v3=<bins-1>."""
    return [f"v{axis}={b}" for axis in range(4) for b in range(bins)]


def quantize(values: np.ndarray, size: float, bins: int) -> np.ndarray:
    """Coordinates in [0, size] to bin indices in [0, bins)."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) / size * bins), 0, bins - 1).astype(np.int64)


def dequantize(indices: np.ndarray, size: float, bins: int) -> np.ndarray:
    """Bin indices to the centres of their bins (so the error is at most half a bin)."""
    return (np.asarray(indices, dtype=np.float64) + 0.5) * size / bins


def serialize_boxes(boxes: Sequence[Sequence[float]], labels: Sequence[str], *, image_size: tuple[float, float],
                    bins: int = 1000) -> str:
    """Boxes `(N, 4)` as `[xmin, ymin, xmax, ymax]` in pixels of an image `(width, height)`,
    with one label each, as one line of text."""
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(arr) != len(labels):
        raise InputError(f"{len(arr)} boxes but {len(labels)} labels; give one label per box")
    if not np.isfinite(arr).all():
        raise InputError("boxes hold NaN or inf; drop those boxes first")
    w, h = image_size
    q = np.stack([quantize(arr[:, 0], w, bins), quantize(arr[:, 1], h, bins),
                  quantize(arr[:, 2], w, bins), quantize(arr[:, 3], h, bins)], axis=1)
    parts = []
    for (x0, y0, x1, y1), label in zip(q.tolist(), labels):
        if not label.strip() or _COORD.search(label):
            raise InputError(f"label {label!r} is empty or looks like a coordinate; give a class name")
        parts.append(f"v0={x0} v1={y0} v2={x1} v3={y1} {' '.join(label.split())}")
    return " ".join(parts)


def parse_boxes(text: str, *, image_size: tuple[float, float], bins: int = 1000) -> tuple[np.ndarray, list[str]]:
    """The boxes (pixels, bin centres) and labels of a serialized (or decoded) text. Spaces
    around `=` are accepted, as a tokenizer that splits punctuation decodes them so."""
    w, h = image_size
    coords = list(_COORD.finditer(text))
    boxes, labels = [], []
    for n in range(0, len(coords), 4):
        group = coords[n:n + 4]
        axes = [int(m.group(1)) for m in group]
        if axes != [0, 1, 2, 3]:
            raise InputError(f"box {n // 4} of {text[:60]!r}...: expected v0= v1= v2= v3= in order, got "
                             f"{' '.join(f'v{a}=' for a in axes)}")
        values = [int(m.group(2)) for m in group]
        if max(values) >= bins:
            raise InputError(f"box {n // 4}: coordinate {max(values)} is not below bins={bins}; parse with the "
                             "bins it was written with")
        end = coords[n + 4].start() if n + 4 < len(coords) else len(text)
        labels.append(" ".join(text[group[-1].end():end].split()))
        boxes.append([dequantize(values[0], w, bins), dequantize(values[1], h, bins),
                      dequantize(values[2], w, bins), dequantize(values[3], h, bins)])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels
