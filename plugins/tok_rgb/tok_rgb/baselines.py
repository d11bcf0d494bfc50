"""tok-rgb's baseline codecs for `tokcore eval` (entry-point group `tokcore.baselines`): each
codes a raw batch at the tokenizer's bit budget, spending at most that many bits per sample.

* `jpeg` (images): per image, the highest Pillow quality (1-100) whose entropy-coded scan
  fits the budget; the headers and tables are not counted (`tok_rgb.codecs.jpeg`).
* `bicubic` (images): the smallest integer downsampling factor whose small image's 8-bit
  samples (24 bits per small pixel) fit, bicubic down and up (`tok_rgb.codecs.bicubic_image`).
* `h264` (video): per clip, a real H.264 encode and decode (libx264 through PyAV) at the lowest
  CRF whose coded slices fit (`H264`).

Pictures go to 8 bits through the modality (`value_range` mapped to 0-255) and come back in
raw units.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from tok_rgb.codecs import bicubic_image, jpeg_image
from tokcore.api import Baseline, BudgetTooSmall, Coded, Modality


def is_rgb(modality: Modality, layout: str) -> bool:
    from tok_rgb.modality import RGBModality

    return isinstance(modality, RGBModality) and modality.layout == layout


def highest_fitting(settings: range, cost: Callable[[int], int], budget: float) -> int | None:
    """The highest setting in `settings` whose `cost` is at most `budget`, by bisection (costs
    rise with the setting), or None when even the lowest costs more. Every returned setting was
    measured to fit, so the budget holds even where the rise is not strict."""
    lo, hi = 0, len(settings) - 1
    if cost(settings[lo]) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(settings[mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return settings[lo]


def span(label: str, values: list[int]) -> str:
    """"quality 31" or "quality 12-40" for the table."""
    lo, hi = min(values), max(values)
    return f"{label} {lo}" if lo == hi else f"{label} {lo}-{hi}"


class JPEG(Baseline):
    """JPEG (Pillow, standard tables, 4:2:0 chroma) per image at the highest quality whose
    entropy-coded scan fits the budget. Headers and quantization/Huffman tables are left out of
    the rate: they are the same for every image of a quality, as a tokenizer's codebook is the
    same for every image (at 32 px they would cost more than the picture).

    Args:
        min_quality: the lowest Pillow quality tried (below its cost: BudgetTooSmall).
        max_quality: the highest (Pillow advises against more than 95, but at large budgets
            100 is simply the best JPEG).
    """

    label = "JPEG"

    def __init__(self, min_quality: int = 1, max_quality: int = 100):
        self.qualities = range(min_quality, max_quality + 1)

    def applies_to(self, modality: Modality) -> bool:
        return is_rgb(modality, "CHW")

    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        images = modality.picture(x)
        out, spent, chosen = [], [], []
        for i, image in enumerate(images):
            cache: dict[int, tuple[np.ndarray, int, int]] = {}

            def cost(q: int) -> int:
                cache[q] = cache.get(q) or jpeg_image(image, q)
                return cache[q][1]

            q = highest_fitting(self.qualities, cost, bits)
            if q is None:
                raise BudgetTooSmall(f"JPEG: sample {i} needs {cost(self.qualities[0])} bits at quality "
                                     f"{self.qualities[0]}, more than the budget of {bits:g}")
            out.append(cache[q][0])
            spent.append(cache[q][1])
            chosen.append(q)
        return Coded(modality.from_picture(np.stack(out), x), torch.tensor(spent, dtype=torch.float64),
                     span("quality", chosen))


class Bicubic(Baseline):
    """Bicubic downsampling by the smallest integer factor f whose small image, ceil(H/f) x
    ceil(W/f) pixels of three 8-bit samples, fits the budget, then bicubic upsampling back
    (Pillow's, antialiased). Factor 1 is the image itself (24 bits per pixel)."""

    label = "bicubic"

    def applies_to(self, modality: Modality) -> bool:
        return is_rgb(modality, "CHW")

    @staticmethod
    def small_size(h: int, w: int, factor: int) -> tuple[int, int]:
        return -(-h // factor), -(-w // factor)

    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        h, w = x.shape[-2:]
        cost = lambda f: 24 * np.prod(self.small_size(h, w, f))  # noqa: E731
        factor = next((f for f in range(1, max(h, w) + 1) if cost(f) <= bits), None)
        if factor is None:
            raise BudgetTooSmall(f"bicubic: a 1x1 image needs 24 bits, more than the budget of {bits:g}")
        small = self.small_size(h, w, factor)
        out = np.stack([bicubic_image(image, small) for image in modality.picture(x)])
        return Coded(modality.from_picture(out, x), torch.full((len(x),), float(cost(factor)), dtype=torch.float64),
                     f"1/{factor} ({small[0]}x{small[1]})")


class H264(Baseline):
    """H.264 (libx264 through PyAV, in an mp4 in memory) per clip at the lowest constant rate
    factor (CRF 0-51, lower is better) whose coded slices fit the budget, then decoded.

    Bits counted: the coded-slice NAL units of every packet (`tok_rgb.video.slice_bytes`):
    picture data only. Left out, as JPEG's tables are: the container, the start codes, the
    sequence and picture parameter sets (in the mp4's header) and the SEI message in which
    x264 writes its version and options (about 600 bytes, the same for every clip). Encoded
    single-threaded (x264's threads change its decisions), `preset` speed/quality trade-off,
    4:2:0 chroma (4:4:4 for odd sides), frames at a nominal 30 fps (a batch carries no rate).

    Args:
        preset: x264's preset ("medium" is its default; "veryslow" compresses a little better).
    """

    label = "H.264"

    def __init__(self, preset: str = "medium"):
        self.preset = preset

    def applies_to(self, modality: Modality) -> bool:
        return is_rgb(modality, "CTHW")

    def encode(self, frames: np.ndarray, crf: int) -> tuple[bytes, int]:
        """`(T, H, W, 3)` uint8 -> the mp4 bytes and the bits of its coded slices."""
        from tok_rgb.video import encode_mp4_packets, slice_bytes

        data, packets = encode_mp4_packets(frames, 30.0, {"crf": str(crf), "preset": self.preset, "threads": "1"})
        return data, 8 * sum(slice_bytes(p) for p in packets)

    def code(self, x: Tensor, bits: float, modality: Modality) -> Coded:
        import av

        from tok_rgb.video import decode_mp4

        if "libx264" not in av.codecs_available:
            raise RuntimeError("the h264 baseline needs a PyAV built with libx264 (the PyPI wheels are)")
        clips = modality.picture(x).transpose(0, 2, 3, 4, 1)  # (B, T, H, W, 3)
        out, spent, chosen = [], [], []
        for i, frames in enumerate(clips):
            cache: dict[int, tuple[bytes, int]] = {}

            def cost(quality: int) -> int:  # quality = 51 - CRF, so that it rises with the bits
                cache[quality] = cache.get(quality) or self.encode(frames, 51 - quality)
                return cache[quality][1]

            quality = highest_fitting(range(0, 52), cost, bits)
            if quality is None:
                raise BudgetTooSmall(f"H.264: clip {i} needs {cost(0)} bits at CRF 51, more than the "
                                     f"budget of {bits:g}")
            out.append(decode_mp4(cache[quality][0]).transpose(3, 0, 1, 2))
            spent.append(cache[quality][1])
            chosen.append(51 - quality)
        return Coded(modality.from_picture(np.stack(out), x), torch.tensor(spent, dtype=torch.float64),
                     span("CRF", chosen))
