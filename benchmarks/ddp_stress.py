"""Consecutive 2-process CPU runs of `tokcore train --nproc 2`: count clean finishes, hangs
and crashes at exit.

    python benchmarks/ddp_stress.py [--runs 20] [--timeout 120]

Each run trains a tiny conv1d + FSQ tokenizer for a few steps (gloo), checkpoints included,
and must exit 0 within the timeout with its final checkpoint written.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokcore-ddp-stress-"))
    np.save(tmp / "walks.npy", (0.5 + np.cumsum(np.random.default_rng(0).normal(scale=0.05, size=(64, 16, 2)), 1)).astype(np.float32))
    cfg = {"tokcore": 1,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                     "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                     "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": str(tmp / "walks.npy")},
           "train": {"steps": 4, "batch_size": 4, "save_every": 2, "log_every": 1}}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    counts = {"ok": 0, "hang": 0, "crash": 0}
    times = []
    for i in range(args.runs):
        out = tmp / f"run{i}"
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "tokcore", "train", "--config", str(tmp / "cfg.yaml"),
                                   "--nproc", "2", "--output", str(out)], capture_output=True, text=True,
                                  timeout=args.timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
        except subprocess.TimeoutExpired:
            counts["hang"] += 1
            print(f"run {i + 1}: HANG (> {args.timeout:.0f} s)", flush=True)
            continue
        times.append(time.perf_counter() - t0)
        if proc.returncode == 0 and (out / "checkpoints/step-4/model.safetensors").is_file():
            counts["ok"] += 1
        else:
            counts["crash"] += 1
            print(f"run {i + 1}: exit {proc.returncode}\n{proc.stderr[-2000:]}", flush=True)
    print(f"{args.runs} consecutive 2-process runs: {counts['ok']} finished cleanly, {counts['hang']} hung, "
          f"{counts['crash']} crashed; median {sorted(times)[len(times) // 2]:.1f} s per run" if times else "")


if __name__ == "__main__":
    main()
