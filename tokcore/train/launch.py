"""`tokcore train --nproc N`: N local ranks, or this process when there is one rank, when
torchrun/SLURM started it, or when the trainer fits in one pass (a FitTrainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokcore.runtime.launch import launched, spawn


def launch(config: dict[str, Any], run_dir: str | Path, resume: bool = False, nproc: int = 1) -> dict[str, float]:
    from tokcore.train.loop import fits, run

    if nproc <= 1 or launched() or fits(config):  # a fit is not data-parallel
        return run(config, run_dir, resume)
    return spawn(run, (config, str(run_dir), resume), nproc)[0]
