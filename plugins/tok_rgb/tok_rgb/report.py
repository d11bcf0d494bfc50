"""Evaluate a trained image tokenizer on its held-out photos against JPEG and bicubic resampling.

    tokcore rgb-report --run runs/rgb-quick [--split val]

Steps: the split goes through the real pipeline (`tokcore.api.roundtrip`: the `tokcore
tokenize` job into `<run>/roundtrip-<split>/tokens`, `tokcore decode` into `.../decoded`),
then PSNR, SSIM and (when its weights are installed) LPIPS are measured against the inputs for

* the tokenizer, at its bits per pixel (tokens x log2(codebook) / pixels);
* JPEG (Pillow) at the quality whose rate is nearest at or above the tokenizer's, counting the
  entropy-coded scan (headers and tables, the same for every image, are left out; see
  `tok_rgb.codecs.jpeg`);
* bicubic downsampling by the tokenizer's factor and bicubic upsampling back, at 24/f^2 bpp.

Writes `<output>/metrics.json` and `<output>/rgb_<split>.png` (input / tokenizer / JPEG /
bicubic for a few crops) and prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tok_rgb.codecs import Coded, bicubic, jpeg_at_bpp
from tok_rgb.metrics import image_metrics
from tok_rgb.pictures import write_grid
from tokcore.api import (
    codebook_usage,
    load_array,
    report_inputs,
    save_report,
    token_bits,
)


def read_image(path: Path) -> np.ndarray:
    """A decoded sample as `(3, H, W)`: a .npy array as written, or a picture file."""
    if path.suffix == ".npy":
        return load_array(path)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1)


def score(images: np.ndarray, target: torch.Tensor) -> dict[str, float]:
    return image_metrics(torch.from_numpy(np.asarray(images, dtype=np.float32)), target)


def report(run: str | Path, output: str | Path | None = None, split: str = "val") -> dict[str, Any]:
    """Evaluate the run's tokenizer, JPEG and bicubic on `split`; print and save the table."""
    r = report_inputs(run, output, split, reader=read_image)
    info, out = r.info, r.out
    target = r.roundtrip.inputs.float()
    if target.dim() != 4 or target.shape[1] != 3:
        raise ValueError(f"rgb-report needs images (N, 3, H, W), got {tuple(target.shape)}")
    n, _, h, w = target.shape
    factor = h // info["token_grid"][0]
    images = target.round().clamp(0, 255).to(torch.uint8).numpy()
    decoded = np.clip(np.rint(r.roundtrip.decoded), 0, 255).astype(np.uint8)

    tok_bpp = r.bits / (h * w)
    rows: dict[str, Coded] = {"tokenizer": Coded(decoded, tok_bpp, "tokenizer"),
                              "jpeg": jpeg_at_bpp(images, tok_bpp), "bicubic": bicubic(images, factor)}
    metrics = {k: {"name": c.name, "bpp": c.bpp, **score(c.images, target)} for k, c in rows.items()}
    metrics["jpeg"]["file_bpp"] = rows["jpeg"].file_bpp
    keys = r.roundtrip.keys
    result = {"run": str(run), "split": split, "images": n, "size": [h, w],
              "photos": sorted({k.split("/")[1] for k in keys if k.count("/") >= 2}),
              "tokens_per_image": info["tokens_per_sample"], "token_grid": info["token_grid"],
              "codebook_size": info["codebook_size"], "index_shape": info["index_shape"],
              "bits_per_image": r.bits, "factor": factor, "metrics": metrics,
              "codebook": codebook_usage(torch.from_numpy(r.roundtrip.tokens.astype(np.int64)), info["codebook_size"])}
    picture = write_grid({c.name: c.images for c in rows.values()}, images, out / f"rgb_{split}.png", zoom=4)
    save_report(out, result, format_table(result), picture)
    return result


def format_table(r: dict[str, Any]) -> str:
    m = r["metrics"]
    has_lpips = all("lpips" in v for v in m.values())
    h, w = r["size"]
    lines = [f"rgb: {r['images']} {r['split']} crops of {h}x{w} ({', '.join(r['photos'])}); tokenizer: "
             f"{token_bits(r['tokens_per_image'], r['index_shape'], r['codebook_size'])} = {r['bits_per_image']} bits "
             f"per image",
             f"{'':<22}{'bpp':>7}{'PSNR (dB)':>11}{'SSIM':>8}" + (f"{'LPIPS':>8}" if has_lpips else "")]
    for key in ("tokenizer", "jpeg", "bicubic"):
        v = m[key]
        lines.append(f"{v['name']:<22}{v['bpp']:>7.3f}{v['psnr']:>11.2f}{v['ssim']:>8.3f}"
                     + (f"{v['lpips']:>8.3f}" if has_lpips else ""))
    lines.append(f"JPEG bpp counts the entropy-coded scan; whole files: {m['jpeg']['file_bpp']:.2f} bpp. "
                 f"Bicubic: 8-bit samples of the 1/{r['factor']} image.")
    c = r["codebook"]
    lines.append(f"codebook usage on these tokens: {100 * c['usage']:.1f}% ({c['used']}/{r['codebook_size']}), "
                 f"perplexity {c['perplexity']:.1f}")
    return "\n".join(lines)
