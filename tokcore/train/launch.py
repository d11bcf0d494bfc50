"""`tokcore train`: run a spec as this process, or as N local ranks (`--nproc N`).

One process runs when there is one rank, when torchrun/SLURM started this process as one
rank of several, or when the trainer fits in one pass (a FitTrainer is not data-parallel).
Each process computes with the intra-op threads chosen once for the run (see
`tokcore.runtime.threads`), printed as the first line of the run's log.
"""

from __future__ import annotations

from pathlib import Path

from tokcore.config.spec import RunSpec
from tokcore.errors import ConfigError
from tokcore.run.checkpoint import latest_complete_checkpoint
from tokcore.runtime.device import resolve_device
from tokcore.runtime.distributed import process_group
from tokcore.runtime.launch import launched, spawn
from tokcore.runtime.paths import output_folder
from tokcore.runtime.state import load_state
from tokcore.runtime.threads import ThreadChoice, choose_threads, local_ranks, using
from tokcore.train.build import is_fit
from tokcore.train.fit import fit_run
from tokcore.train.loop import TrainingRun


def threads_for(spec: RunSpec, ranks: int, run_dir: str | Path | None = None, resume: bool = False) -> ThreadChoice:
    """The intra-op threads of each of `ranks` training processes on this machine. A resumed
    run computes with the threads its checkpoint was made with, unless the user says
    otherwise: another count changes the order of float sums, and resumption is bit-exact."""
    try:
        choice = choose_threads(ranks, spec.train.num_workers, spec.train.threads)
    except ConfigError as err:
        raise err.located(file=spec.where("train.threads")) from None
    if resume and run_dir is not None and choice.why.startswith("chosen"):
        latest, _ = latest_complete_checkpoint(Path(run_dir))
        if latest is not None and (n := load_state(str(latest / "state.json"), str(latest / "state.safetensors")).get("threads")):
            return ThreadChoice(int(n), f"as {latest.name} was trained, for a bit-exact resume; set train.threads "
                                        "or OMP_NUM_THREADS to override")
    return choice


def run(spec: RunSpec, run_dir: str | Path, resume: bool = False, threads: ThreadChoice | None = None) -> dict[str, float]:
    """Train as one process of a (possibly distributed) run; returns the final metrics.
    `threads`: chosen by the launcher for all its ranks; None chooses here."""
    threads = threads or threads_for(spec, local_ranks(), run_dir, resume)
    with process_group(spec.train.device) as ctx, using(threads):
        if ctx.is_main:
            print(threads.line(), flush=True)
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
    return spawn(run, (spec, str(run_dir), resume, threads_for(spec, nproc, run_dir, resume)), nproc,
                 device=spec.train.device)[0]
