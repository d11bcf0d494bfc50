"""Start N processes on this machine with torch's elastic launcher (nothing else to install).

Used by `tokcore train --nproc N` and `tokcore tokenize --nproc N`. A rank that fails exits
non-zero, so the launcher stops the other ranks instead of leaving them waiting in a
collective; its message comes back to the parent through a small file, so the user sees the
worker's own one-line error (a TokcoreError stays a usage error, exit 2).
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

from tokcore.errors import TokcoreError


class WorkerFailed(RuntimeError):
    """A rank failed at run time; the message is that rank's error."""


def launched() -> bool:
    """Whether torchrun or SLURM started this process as one rank of several."""
    return "WORLD_SIZE" in os.environ or "SLURM_NTASKS" in os.environ


def _rank_entry(fn: Callable[..., Any], args: tuple, error_dir: str) -> Any:
    try:
        return fn(*args)
    except BaseException as err:
        kind = "usage" if isinstance(err, TokcoreError) else "runtime"
        message = str(err) if kind == "usage" else f"{type(err).__name__}: {err}"
        rank = os.environ.get("RANK", "0")
        Path(error_dir, f"rank{rank}").write_text(f"{kind}\n{message}\n{traceback.format_exc()}")
        raise  # exit non-zero: the launcher stops the other ranks


def spawn(fn: Callable[..., Any], args: tuple, nproc: int) -> dict[int, Any]:
    """Run `fn(*args)` in `nproc` local ranks (a module-level function: it is imported by name);
    returns each rank's result, or raises the first failing rank's error."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from tokcore.runtime.distributed import free_port

    # the first failing rank's own error is raised below; torch's logs of the same failure
    # (a traceback per rank, "Terminating process ...") are shown only with TOKCORE_DEBUG
    quiet = logging.DEBUG if os.environ.get("TOKCORE_DEBUG") else logging.CRITICAL
    for name in ("torch.distributed.elastic", "torch.multiprocessing"):
        logging.getLogger(name).setLevel(quiet)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"tokcore-{uuid.uuid4().hex[:8]}",
                       rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}", max_restarts=0,
                       monitor_interval=0.2, start_method="spawn")
    with tempfile.TemporaryDirectory(prefix="tokcore-ranks-") as error_dir:
        try:
            return elastic_launch(cfg, _rank_entry)(fn, args, error_dir)
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
