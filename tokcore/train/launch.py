"""`tokcore train`: run a spec as this process, or as N local ranks (`--nproc N`).

One process runs when there is one rank, when torchrun/SLURM started this process as one
rank of several, or when the trainer fits in one pass (a FitTrainer is not data-parallel).
"""

from __future__ import annotations

from pathlib import Path

from tokcore.config.spec import RunSpec
from tokcore.runtime.distributed import process_group
from tokcore.runtime.launch import launched, spawn
from tokcore.train.build import is_fit
from tokcore.train.fit import fit_run
from tokcore.train.loop import TrainingRun


def run(spec: RunSpec, run_dir: str | Path, resume: bool = False) -> dict[str, float]:
    """Train as one process of a (possibly distributed) run; returns the final metrics."""
    with process_group(spec.train.device) as ctx:
        if is_fit(spec):
            return fit_run(spec, Path(run_dir), resume, ctx)
        return TrainingRun(spec, Path(run_dir), resume, ctx).train()


def launch(spec: RunSpec, run_dir: str | Path, resume: bool = False, nproc: int = 1) -> dict[str, float]:
    if nproc <= 1 or launched() or is_fit(spec):
        return run(spec, run_dir, resume)
    return spawn(run, (spec, str(run_dir), resume), nproc)[0]
