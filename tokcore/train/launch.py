"""`tokcore train`: run a spec as this process, or as N local ranks (`--nproc N`).

One process runs when there is one rank, when torchrun/SLURM started this process as one
rank of several, or when the trainer fits in one pass (a FitTrainer is not data-parallel).
"""

from __future__ import annotations

from pathlib import Path

from tokcore.config.spec import RunSpec
from tokcore.errors import ConfigError
from tokcore.runtime.device import resolve_device
from tokcore.runtime.distributed import process_group
from tokcore.runtime.launch import launched, spawn
from tokcore.runtime.paths import output_folder
from tokcore.train.build import is_fit
from tokcore.train.fit import fit_run
from tokcore.train.loop import TrainingRun


def run(spec: RunSpec, run_dir: str | Path, resume: bool = False) -> dict[str, float]:
    """Train as one process of a (possibly distributed) run; returns the final metrics."""
    with process_group(spec.train.device) as ctx:
        if is_fit(spec):
            return fit_run(spec, Path(run_dir), resume, ctx)
        return TrainingRun(spec, Path(run_dir), resume, ctx).train()


def check_device(spec: RunSpec) -> None:
    """ConfigError naming `train.device` (and its file) when it asks for a GPU there is not."""
    try:
        resolve_device(spec.train.device)
    except ConfigError as err:
        raise err.located(file=spec.where("train.device"), prefix="train") from None


def launch(spec: RunSpec, run_dir: str | Path, resume: bool = False, nproc: int = 1) -> dict[str, float]:
    """Train `spec` into `run_dir` as this process or `nproc` local ranks; what would fail
    in every rank (a GPU that is not there, an output that is a file) is refused first."""
    check_device(spec)
    output_folder(run_dir)
    if nproc <= 1 or launched() or is_fit(spec):
        return run(spec, run_dir, resume)
    return spawn(run, (spec, str(run_dir), resume), nproc)[0]
