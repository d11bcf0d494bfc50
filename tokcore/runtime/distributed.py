"""Process-group set-up for the loop: launched by `tokcore train --nproc N`, by torchrun, or
by SLURM; one process per device, gloo on CPU and NCCL on GPU.

Every rank reads its place from the environment (torchrun's RANK/WORLD_SIZE/LOCAL_RANK or
SLURM's SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID) and meets the others at
MASTER_ADDR:MASTER_PORT, so several nodes work the same way as one.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from tokcore.runtime.device import resolve_device


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(*names: str, default: int) -> int:
    for n in names:
        if os.environ.get(n, "").strip():
            return int(os.environ[n])
    return default


def from_environment(device: str = "auto") -> tuple[int, int, int, torch.device]:
    """This process's rank, world size, local rank and device (see `resolve_device`)."""
    rank = _env_int("RANK", "SLURM_PROCID", default=0)
    world = _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID", default=0)
    return rank, world, local, resolve_device(device, local)


@contextlib.contextmanager
def process_group(device: str = "auto", timeout_s: float = 600.0) -> Iterator[Context]:
    """Join the process group for the duration of a run (nothing to join for one process)."""
    rank, world, local, dev = from_environment(device)
    ctx = Context(rank, world, local, dev)
    if world == 1:
        yield ctx
        return
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")  # SLURM users export the first node's address
    if "MASTER_PORT" not in os.environ:
        raise RuntimeError("MASTER_PORT is not set; launch with `tokcore train --nproc N` or torchrun")
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        yield ctx
        # Without this barrier a gloo run crashed at exit about one time in four here:
        # a rank tore down its sockets while another was still in a collective.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def all_reduce_mean(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """The mean over ranks of each value (same keys on every rank)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}


def all_reduce_grads(params: list[torch.Tensor], ctx: Context) -> None:
    """Average the gradients of `params` over ranks (for parameters outside DDP's model)."""
    if not ctx.distributed or not params:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()


def any_rank(flag: bool, ctx: Context) -> bool:
    if not ctx.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()
