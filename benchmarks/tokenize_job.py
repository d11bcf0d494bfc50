"""Samples/s of `tokcore tokenize` against the bare encoder forward, in one run, and peak RSS.

    python benchmarks/tokenize_job.py [--samples 4096] [--size 32] [--batch 64] [--workers 2] [--repeat 5] [--threads 1]

Both sides use the same checkpoint (a conv2d + FSQ tokenizer, trained for one step) and the
same images. The bare side is the encoder and quantizer alone, under inference mode, over
batches pre-loaded into memory and already normalized: no data loading, no writing. The
tokcore side is the whole job on a fresh output directory: loading the tokenizer, reading
the dataset through DataLoader workers, validating, encoding, writing and checksumming
shards, and the manifest. The two run in `--repeat` adjacent pairs (alternating which goes first), and
the ratio is the median over pairs: the machine is shared, and a pair sees the same load.
CPU time (this process and its DataLoader workers) is compared too, which load does not
change much. Target: at least 0.9 of the bare encoder with 2 workers.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from tokcore.config.spec import RunSpec
from tokcore.run.load import load_tokenizer
from tokcore.tokens.store import TokenStore
from tokcore.tokens.tokenize import Options, tokenize
from tokcore.train.launch import run

TINY = {"base_channels": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "mid_attention": False}


def config(data: Path, size: int) -> dict:
    return {"tokcore": 1, "seed": 0,
            "model": {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, **TINY},
                      "quantizer": {"name": "fsq", "levels": [8, 5, 5, 5]},
                      "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 3, **TINY}},
            "data": {"name": "arrays", "path": str(data), "val_fraction": 0.01},
            "train": {"steps": 1, "batch_size": 8, "log_every": 1, "eval_batches": 1, "device": "cpu"}}


def bare(run_dir: Path, images: np.ndarray, batch: int) -> float:
    """Seconds for the encoder + quantizer over pre-loaded, normalized batches."""
    tok = load_tokenizer(run_dir)
    batches = [torch.from_numpy(images[i:i + batch]).float() for i in range(0, len(images), batch)]
    with torch.inference_mode():
        tok.quantizer(tok.encoder(batches[0]))  # warm-up
        t0 = time.perf_counter()
        for x in batches:
            tok.quantizer(tok.encoder(x)).indices.numpy()
    return time.perf_counter() - t0


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads of both sides (on a busy 2-core machine more threads only wait)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    root = Path(tempfile.mkdtemp(prefix="tokcore-bench-tokenize-"))
    try:
        rng = np.random.default_rng(0)
        images = rng.random((args.samples, 3, args.size, args.size), dtype=np.float32)
        np.save(root / "images.npy", images)
        (root / "cfg.yaml").write_text(yaml.safe_dump(config(root / "images.npy", args.size)))
        run(RunSpec.load(root / "cfg.yaml"), root / "run")
        threads = torch.get_num_threads()
        opts = Options(batch_size=args.batch, workers=args.workers, progress=False, device="cpu")
        n = args.samples
        bare_runs, job_runs = [], []  # (wall seconds, CPU seconds)

        def run_bare() -> None:
            c0 = cpu_seconds()
            wall = bare(root / "run", images, args.batch)
            bare_runs.append((wall, cpu_seconds() - c0))

        def run_job(r: int) -> None:
            out = root / f"store{r}"
            c0, t0 = cpu_seconds(), time.perf_counter()
            s = tokenize(root / "run", out, options=opts)
            job_runs.append((time.perf_counter() - t0, cpu_seconds() - c0))
            assert s.samples == n and s.failed == 0, s
            assert len(TokenStore(out)) == n
            if r:
                shutil.rmtree(out)

        for r in range(args.repeat):  # adjacent pairs, alternating which side goes first
            if r % 2 == 0:
                run_bare()
                run_job(r)
            else:
                run_job(r)
                run_bare()
        pair = sorted(b[0] / j[0] for b, j in zip(bare_runs, job_runs))
        best_bare, best_job = n / min(w for w, _ in bare_runs), n / min(w for w, _ in job_runs)
        cpu_ratio = np.median([b[1] for b in bare_runs]) / np.median([j[1] for j in job_runs])
        print(f"tokenize benchmark: {n} images 3x{args.size}x{args.size}, conv2d+fsq, batch {args.batch}, "
              f"{args.workers} workers, {threads} torch thread(s), {args.repeat} alternating pairs")
        print(f"  bare encoder forward (pre-loaded batches)  best {best_bare:7.1f} samples/s   "
              f"(runs: {', '.join(f'{n / w:.0f}' for w, _ in bare_runs)})")
        print(f"  tokcore tokenize (whole job, end to end)   best {best_job:7.1f} samples/s   "
              f"(runs: {', '.join(f'{n / w:.0f}' for w, _ in job_runs)})")
        print(f"  ratio tokenize / bare: median of pairs {pair[len(pair) // 2]:.3f}, of bests {best_job / best_bare:.3f}, "
              f"CPU time (job incl. workers) {cpu_ratio:.3f}   (target >= 0.9)")
        print(f"  peak RSS: this process {peak_rss_mib(resource.RUSAGE_SELF):.0f} MiB, largest DataLoader "
              f"worker {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB; "
              f"token store {sum(p.stat().st_size for p in (root / 'store0').rglob('*') if p.is_file()) / 1024:.0f} KiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
