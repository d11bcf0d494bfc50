"""`tokcore train --nproc N`: start N processes with torch's elastic launcher (nothing else
to install), or run in this process when there is one, or when torchrun/SLURM started us."""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

from tokcore.errors import TokcoreError


class WorkerFailed(RuntimeError):
    pass


def _worker(config: dict[str, Any], run_dir: str, resume: bool) -> dict[str, Any]:
    """One rank. Errors come back as values so the parent can show the worker's own message."""
    from tokcore.train.loop import run

    try:
        return {"metrics": run(config, run_dir, resume)}
    except TokcoreError as err:
        return {"usage_error": str(err)}
    except Exception as err:  # a runtime failure of this rank
        return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def launch(config: dict[str, Any], run_dir: str | Path, resume: bool = False, nproc: int = 1) -> dict[str, float]:
    from tokcore.train.loop import run

    if nproc <= 1 or "WORLD_SIZE" in os.environ or "SLURM_NTASKS" in os.environ:
        return run(config, run_dir, resume)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from tokcore.train.distributed import free_port

    logging.getLogger("torch.distributed.elastic").setLevel(logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"tokcore-{uuid.uuid4().hex[:8]}",
                       rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{free_port()}", max_restarts=0,
                       monitor_interval=0.2, start_method="spawn")
    results = elastic_launch(cfg, _worker)(config, str(run_dir), resume)
    for rank in sorted(results):
        r = results[rank]
        if "usage_error" in r:
            raise TokcoreError(r["usage_error"])
        if "error" in r:
            if os.environ.get("TOKCORE_DEBUG"):
                print(r["traceback"])
            raise WorkerFailed(f"rank {rank}: {r['error']}")
    return results[0]["metrics"]
