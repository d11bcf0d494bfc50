"""A seeded, resumable batch sampler that splits each global batch across ranks.

Step s draws the global batch `perm[s*G:(s+1)*G]` (G = batch_size * grad_accum * world)
from a per-epoch permutation seeded by (seed, epoch). Micro-batch m of rank r is a fixed
slice of it, so the set of samples in a step does not depend on how it is split: two
processes without accumulation see exactly what one process with 2x accumulation sees.
Resuming needs only the step number: nothing is replayed or loaded to skip ahead.
"""

from __future__ import annotations

from typing import Iterator

import torch

from tokcore.errors import ConfigError


def check_global_batch(num_samples: int, batch_size: int, grad_accum: int = 1, world_size: int = 1,
                       split: str = "train") -> None:
    """ConfigError (exit 2, before any training) unless the `split` split holds one global batch."""
    need = batch_size * grad_accum * world_size
    if num_samples < need:
        procs = f" x {world_size} processes" if world_size > 1 else ""
        fix = "lower train.batch_size or train.grad_accum" + (", use fewer processes" if world_size > 1 else "")
        raise ConfigError(f"the {split} split has {num_samples} samples, fewer than one global batch of {need} "
                          f"(train.batch_size {batch_size} x train.grad_accum {grad_accum}{procs}); {fix}, "
                          "or give more data")


class StepBatchSampler:
    def __init__(self, num_samples: int, batch_size: int, grad_accum: int = 1, rank: int = 0,
                 world_size: int = 1, seed: int = 0, shuffle: bool = True, start_step: int = 0):
        self.global_batch = batch_size * grad_accum * world_size
        check_global_batch(num_samples, batch_size, grad_accum, world_size)
        self.num_samples, self.batch_size, self.grad_accum = num_samples, batch_size, grad_accum
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.start_step = start_step
        self.steps_per_epoch = num_samples // self.global_batch  # the incomplete tail is dropped

    def _permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's micro-batches (index lists) for optimizer step `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.global_batch
        batch = self._permutation(epoch)[start:start + self.global_batch]
        per_micro = self.batch_size * self.world_size
        out = []
        for m in range(self.grad_accum):
            micro = batch[m * per_micro:(m + 1) * per_micro]
            out.append(micro[self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist())
        return out

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield from self.micro_batches(step)
            step += 1
