"""What `tokcore eval` costs beyond the pipeline it measures, and what its Fréchet statistics
hold in memory, each against a reference measured in the same run.

    python benchmarks/eval.py [--checkpoint RUN] [--repeat 3] [--features 2048]

1. Time. On the held-out split of a run (without `--checkpoint`: tok-gaze's quick config
   trained for 20 steps into a temporary folder; speed does not depend on the weights), in
   `--repeat` adjacent rounds, alternating which goes first:
   * reference: `tokcore tokenize` into a fresh store, then `tokcore decode` of it;
   * eval: `tokcore eval --baselines none` into a fresh folder (tokenize, decode in memory,
     metrics, codebook, report);
   * eval with the modality's baselines (DCT at five rates, for the rate-distortion curve).
   Printed: the median over rounds of eval time / reference time. Target: <= 1.15 for the
   harness itself (baselines are extra codecs the user asked for, reported separately).
2. Memory. `FeatureStats` of `--features`-wide features streamed in batches of 256 for 1k and
   16k samples, peak traced allocations (tracemalloc sees numpy's buffers) against keeping the
   features (what the usual FID code does before `np.cov`). Target: the 16k/1k ratio near 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def tokcore(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tokcore", *args], capture_output=True, text=True, env=ENV)
    if done.returncode != 0:
        sys.exit(f"tokcore {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def train_quick(folder: Path) -> Path:
    run = folder / "run"
    tokcore("train", "--config", "tok-gaze:quick", "--output", str(run), "train.steps=20", "train.log_every=10")
    return run


def timings(run: Path, work: Path, repeat: int) -> dict[str, list[float]]:
    jobs = {
        "reference": lambda d: tokcore("tokenize", "--checkpoint", str(run), "--output", str(d / "tokens"),
                                       "data.split=val", "--quiet", "--workers", "0")
        + tokcore("decode", "--checkpoint", str(run), "--tokens", str(d / "tokens"), "--output", str(d / "decoded")),
        "eval": lambda d: tokcore("eval", "--checkpoint", str(run), "--output", str(d), "--baselines", "none",
                                  "--quiet"),
        "eval+baselines": lambda d: tokcore("eval", "--checkpoint", str(run), "--output", str(d), "--quiet"),
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for r in range(repeat):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for name in order:
            folder = work / f"{name}-{r}"
            shutil.rmtree(folder, ignore_errors=True)
            times[name].append(jobs[name](folder))
    return times


def peak_memory(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def streamed(n: int, dim: int) -> None:
    from tokcore.metrics.frechet import FeatureStats

    rng = np.random.default_rng(0)
    stats = FeatureStats(dim)
    for start in range(0, n, 256):
        stats.update(rng.standard_normal((min(256, n - start), dim)))
    stats.mean_cov()


def kept(n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.standard_normal((min(256, n - s), dim)) for s in range(0, n, 256)])
    np.cov(feats, rowvar=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a run to evaluate (default: a quick gaze run, trained here)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--features", type=int, default=2048, help="feature width for the memory measurement")
    ap.add_argument("--memory-only", action="store_true", help="skip the timing (part 1)")
    args = ap.parse_args()

    if not args.memory_only:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            run = args.checkpoint or train_quick(work)
            times = timings(run, work, args.repeat)
        ref = statistics.median(times["reference"])
        print(f"tokenize + decode (reference): median {ref:.1f} s over {args.repeat} rounds")
        for name in ("eval", "eval+baselines"):
            ratios = [t / r for t, r in zip(times[name], times["reference"])]
            print(f"{name}: median {statistics.median(times[name]):.1f} s, {statistics.median(ratios):.2f} x the "
                  f"reference" + (" (target <= 1.15)" if name == "eval" else ""))

    peak_memory(lambda: streamed(256, args.features))  # one-time allocations (BLAS/LAPACK workspaces) first
    for n in (1000, 16000):
        s = peak_memory(lambda: streamed(n, args.features))
        k = peak_memory(lambda: kept(n, args.features))
        print(f"Frechet statistics of {n} x {args.features} features: streamed peak {s / 2**20:.0f} MiB, "
              f"keeping the features {k / 2**20:.0f} MiB")
    one, many = (peak_memory(lambda n=n: streamed(n, args.features)) for n in (1000, 16000))
    print(f"streamed peak 16k / 1k: {many / one:.2f} (target ~1: memory independent of the sample count)")


if __name__ == "__main__":
    main()
