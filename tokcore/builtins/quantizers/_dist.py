"""torch.distributed helpers for quantizer state; every one is a no-op on a single process.

Codebook state must stay bit-identical on every rank. Sums are all-reduced (every rank gets
the same reduced bits), and random choices are made from data gathered from all ranks with
a selection that every rank computes identically, so no rank ever drifts.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum_(tensor: Tensor) -> Tensor:
    """Sum `tensor` over ranks, in place."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_cat(tensor: Tensor) -> Tensor:
    """Concatenate equally shaped tensors from all ranks along dim 0, in rank order."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def differentiable_mean(tensor: Tensor) -> Tensor:
    """The mean of `tensor` over ranks, with gradients flowing back to every rank's input."""
    if not is_distributed():
        return tensor
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(tensor, op=dist.ReduceOp.SUM) / world_size()
