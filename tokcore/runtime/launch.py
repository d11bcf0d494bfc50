"""Start N processes on this machine with torch's elastic launcher (nothing else to install).

Used by `tokcore train --nproc N` and `tokcore tokenize --nproc N`. A rank that fails exits
non-zero, so the launcher stops the other ranks instead of leaving them waiting in a
collective; its message comes back to the parent through a small file, so the user sees the
worker's own one-line error (a TokcoreError stays a usage error, exit 2).

No more ranks than this process may use CPUs (or, on CUDA, than there are GPUs): each rank
holds its own model, optimizer, data and DataLoader workers, and ranks beyond the CPUs only
take turns on them (a gloo all-reduce waits for the slowest), so such a run is never faster
and mostly runs out of memory (`--nproc 64` on 2 cores took the machine's memory and the
kernel killed an unrelated process). It is refused before anything starts, with the number
that fits; TOKCORE_OVERSUBSCRIBE=1 starts them anyway (to exercise distributed code on a
small machine).

Every rank dies with the process that started it, so a launcher that is killed (by the
out-of-memory killer, by `kill -9`) leaves no orphans computing or holding memory: the kernel
sends the rank SIGKILL when its parent dies (Linux's PR_SET_PDEATHSIG), and its DataLoader
workers follow their rank. torch's own spawn asks for SIGINT instead, which Python acts on
only between bytecodes: a rank blocked in a collective or a store wait sat there until its
timeout (600 s; 7 days in tokenize's last barrier).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from tokcore.errors import TokcoreError
from tokcore.runtime.threads import CPUs

OVERSUBSCRIBE = "TOKCORE_OVERSUBSCRIBE"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class WorkerFailed(RuntimeError):
    """A rank failed at run time; the message is that rank's error."""


def launched() -> bool:
    """Whether torchrun or SLURM started this process as one rank of several."""
    return "WORLD_SIZE" in os.environ or "SLURM_NTASKS" in os.environ


def check_nproc(nproc: int, device: str = "auto", *, cpus: CPUs | None = None, gpus: int | None = None,
                env: Mapping[str, str] | None = None) -> None:
    """TokcoreError (exit 2) unless `nproc` local ranks fit this machine: at most one per GPU
    when they compute on CUDA, at most one per usable CPU otherwise (see the module doc).
    `cpus` and `gpus` default to this machine's."""
    if nproc < 1:
        raise TokcoreError(f"--nproc must be at least 1, not {nproc}")
    env = os.environ if env is None else env
    if nproc == 1 or env.get(OVERSUBSCRIBE, "").strip() not in ("", "0"):
        return
    force = f"set {OVERSUBSCRIBE}=1 to start them anyway"
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if device != "cpu" and torch.cuda.is_available() else 0
    if device != "cpu" and gpus > 0:
        if nproc > gpus:
            raise TokcoreError(f"--nproc {nproc} would start {nproc} processes, but there are {gpus} GPU(s) and each "
                               f"process needs its own; use --nproc {gpus} or fewer, or compute on the CPU ({force})")
        return
    cpus = cpus or CPUs.here()
    if nproc > cpus.usable:
        raise TokcoreError(f"--nproc {nproc} would start {nproc} processes, but this process may use "
                           f"{cpus.usable} CPU(s) ({cpus.limits()}); use --nproc {cpus.usable} or fewer ({force})")


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux's PR_SET_PDEATHSIG; it
    is not inherited by this process's own children, which watch their parent themselves),
    and exit now if the parent is already gone. (The kernel means the parent's thread that
    started this process: `spawn` is called on a thread that lives as long as the run.)"""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: nothing more to do here
            pass
    if os.getppid() != parent:  # died before the request was in place
        os._exit(1)


def _rank_entry(fn: Callable[..., Any], args: tuple, error_dir: str, parent: int) -> Any:
    die_with_parent(parent)
    try:
        return fn(*args)
    except BaseException as err:
        kind = "usage" if isinstance(err, TokcoreError) else "runtime"
        message = str(err) if kind == "usage" else f"{type(err).__name__}: {err}"
        rank = os.environ.get("RANK", "0")
        Path(error_dir, f"rank{rank}").write_text(f"{kind}\n{message}\n{traceback.format_exc()}")
        raise  # exit non-zero: the launcher stops the other ranks


def spawn(fn: Callable[..., Any], args: tuple, nproc: int, device: str = "auto") -> dict[int, Any]:
    """Run `fn(*args)` in `nproc` local ranks (a module-level function: it is imported by name)
    that compute on `device` ("auto", "cpu", "cuda"); returns each rank's result, or raises
    the first failing rank's error. `fn` sets its own threads (`tokcore.runtime.threads`)."""
    check_nproc(nproc, device)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from tokcore.runtime.distributed import free_port

    # the first failing rank's own error is raised below; torch's logs of the same failure
    # (a traceback per rank, "Terminating process ...") are shown only with TOKCORE_DEBUG
    quiet = logging.DEBUG if os.environ.get("TOKCORE_DEBUG") else logging.CRITICAL
    for name in ("torch.distributed.elastic", "torch.multiprocessing"):
        logging.getLogger(name).setLevel(quiet)
    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"tokcore-{uuid.uuid4().hex[:8]}",
                       rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}", max_restarts=0,
                       monitor_interval=0.2, start_method="spawn")
    with tempfile.TemporaryDirectory(prefix="tokcore-ranks-") as error_dir:
        try:
            return elastic_launch(cfg, _rank_entry)(fn, args, error_dir, os.getpid())
        except ChildFailedError as err:
            # the first to fail is the cause; the others often fail because it did
            reports = sorted(Path(error_dir).glob("rank*"), key=lambda p: (p.stat().st_mtime_ns, int(p.name[4:])))
            if not reports:  # killed before it could say why (a signal, out of memory)
                raise WorkerFailed(f"rank(s) {', '.join(map(str, sorted(err.failures)))} died: "
                                   f"{next(iter(err.failures.values())).message or 'no message'}") from None
            kind, message, trace = reports[0].read_text().split("\n", 2)
            if os.environ.get("TOKCORE_DEBUG"):
                print(trace)
            if kind == "usage":
                raise TokcoreError(message) from None
            raise WorkerFailed(f"{reports[0].name.replace('rank', 'rank ')}: {message}") from None
