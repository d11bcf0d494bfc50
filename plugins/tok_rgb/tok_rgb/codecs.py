"""Classical image codecs a tokenizer is compared with: JPEG (Pillow) and bicubic down- and
up-sampling, per image and for batches (`tok_rgb.baselines` runs them at a bit budget)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


def scan_start(data: bytes) -> int:
    """Offset of a baseline JPEG's start-of-scan marker: the header segments (tables, frame)
    are walked by their lengths, since table bytes may contain any value."""
    pos = 2  # after SOI
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    if data[pos:pos + 2] != b"\xff\xda":
        raise ValueError("not a baseline JPEG stream")
    return pos


@dataclass
class Coded:
    """Decoded images `(N, 3, H, W)` uint8 and what they cost, in bits per pixel (mean over images)."""

    images: np.ndarray
    bpp: float
    name: str
    file_bpp: float | None = None  # for JPEG: whole files, headers and tables included


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))


def jpeg_image(image: np.ndarray, quality: int) -> tuple[np.ndarray, int, int]:
    """One `(3, H, W)` uint8 image through JPEG at `quality` (Pillow's standard tables, 4:2:0
    chroma): the decoded image, the bits of its entropy-coded scan (from the start-of-scan
    marker on) and the bits of the whole file."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    decoded = np.array(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)
    return decoded, 8 * (len(data) - scan_start(data)), 8 * len(data)


def jpeg(images: np.ndarray, quality: int) -> Coded:
    """JPEG at `quality` (`jpeg_image`). The rate counts the entropy-coded scan only: the
    headers and tables are the same for every image of a quality, as a tokenizer's codebook is
    the same for every image, and at 32 px they would otherwise cost more than the picture
    (`file_bpp` has them)."""
    out, scan_bits, file_bits = zip(*(jpeg_image(image, quality) for image in images))
    pixels = images.shape[-2] * images.shape[-1]
    return Coded(np.stack(out), float(np.mean(scan_bits)) / pixels, f"JPEG q={quality}",
                 float(np.mean(file_bits)) / pixels)


def jpeg_at_bpp(images: np.ndarray, bpp: float, qualities: range = range(1, 96)) -> Coded:
    """JPEG at the quality whose mean rate is nearest at or above `bpp` (the lowest quality that
    spends at least as many bits as the tokenizer); the highest quality if none reaches it."""
    coded = None
    for q in qualities:
        coded = jpeg(images, q)
        if coded.bpp >= bpp:
            return coded
    return coded


def bicubic_image(image: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    """One `(3, H, W)` uint8 image bicubically downsampled to `small` = (h, w) (Pillow's,
    antialiased) and bicubically upsampled back."""
    h, w = image.shape[-2:]
    low = to_pil(image).resize((small[1], small[0]), Image.Resampling.BICUBIC)
    return np.array(low.resize((w, h), Image.Resampling.BICUBIC)).transpose(2, 0, 1)


def bicubic(images: np.ndarray, factor: int) -> Coded:
    """Bicubic down- and up-sampling by `factor` (`bicubic_image`); the rate is the small
    image's 8-bit samples, 24 / factor^2 bits per pixel."""
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"images of {h}x{w} do not divide by the factor {factor}")
    out = np.stack([bicubic_image(image, (h // factor, w // factor)) for image in images])
    return Coded(out, 24.0 / factor ** 2, f"bicubic 1/{factor}")
