"""The walks example's training with torch's default threads against tokcore's choice, in one run.

    python benchmarks/threads.py [--steps 300] [--pairs 1]

Issue 13: on a busy 2-core machine the walks example (`tokcore:walks-fsq`) took
5 min 10 s for 300 steps with torch's default intra-op threads and 14.8 s with one. Each run
here is `tokcore train` on that config, as a user types it, in a fresh process:

- "torch default": OMP_NUM_THREADS set to the threads torch starts with by itself (one per
  physical core), which is what every run used before tokcore chose;
- "tokcore's choice": no OMP_NUM_THREADS, so `tokcore.runtime.threads` chooses (its log line
  is printed).

tokcore's choice runs first in each pair, so the load average it reads is the machine's, not
one raised by the default run just before. Times are the whole command (wall) and the
training itself (metrics.jsonl's last `time`, from the first step to the end, with the
evaluations and checkpoints the config asks for). Nothing is asserted: a shared machine's
figures vary from run to run, and the ratio is the figure to read.
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

ROOT = Path(__file__).resolve().parent.parent


def walks_config() -> Path:
    """The walks example, wherever this checkout keeps it."""
    return ROOT / "tokcore" / "configs" / "walks-fsq.yaml"


def make_walks(folder: Path) -> Path:
    """The walks the docs make for the example (docs/training.md)."""
    path = folder / "walks.npy"
    np.save(path, (0.5 + np.cumsum(np.random.default_rng(0).normal(scale=0.05, size=(512, 16, 2)), 1)).astype("float32"))
    return path


def torch_default_threads(env: dict[str, str]) -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def train(config: Path, data: Path, out: Path, steps: int, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, training seconds, the run's threads line)."""
    cmd = [sys.executable, "-m", "tokcore", "train", "--config", str(config), "--output", str(out),
           f"data.path={data}", f"train.steps={steps}"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    from tokcore.train.log import read_metrics

    trained = max(row["time"] for row in read_metrics(out))
    line = next((x for x in r.stdout.splitlines() if x.startswith("threads:")), "(no threads line)")
    return wall, trained, line


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--pairs", type=int, default=1, help="(choice, default) pairs to run")
    args = p.parse_args()

    from tokcore.runtime.threads import CPUs

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    default = torch_default_threads(env)
    config = walks_config()
    cpus = CPUs.here()
    load = f", load average {cpus.load:.1f}" if cpus.load is not None and cpus.idle == cpus.usable else ""
    print(f"walks example ({config.relative_to(ROOT)}), {args.steps} steps, 1 process; this machine: "
          f"{cpus.describe()}{load}; torch's default: {default} thread(s)", flush=True)
    rows: dict[str, list[tuple[float, float]]] = {"choice": [], "default": []}
    with tempfile.TemporaryDirectory(prefix="tokcore-bench-threads-") as tmp:
        data = make_walks(Path(tmp))
        for pair in range(args.pairs):
            for name, run_env in (("choice", env), ("default", {**env, "OMP_NUM_THREADS": str(default)})):
                wall, trained, line = train(config, data, Path(tmp) / f"{name}-{pair}", args.steps, run_env)
                rows[name].append((wall, trained))
                label = "tokcore's choice" if name == "choice" else "torch default   "
                print(f"  {label}  wall {wall:7.1f} s  training {trained:7.1f} s   {line}", flush=True)
    med = {k: (float(np.median([w for w, _ in v])), float(np.median([t for _, t in v]))) for k, v in rows.items()}
    print(f"torch default / tokcore's choice: {med['default'][0] / med['choice'][0]:.2f}x wall, "
          f"{med['default'][1] / med['choice'][1]:.2f}x training"
          + (f" (medians of {args.pairs} pairs)" if args.pairs > 1 else ""))


if __name__ == "__main__":
    main()
