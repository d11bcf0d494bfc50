"""Batches packed to a token budget (NaViT-style) instead of padded to a fixed size: the
sampler. (Packing the sequences and attending within each sample: `tokcore.nn.varlen`.)

Samples of different sizes (resolutions, frame counts, token counts) make sequences of
different lengths; `TokenBudgetSampler` fills each micro-batch up to `max_tokens` tokens
instead of taking a fixed number of samples.

The sampler keeps `StepBatchSampler`'s guarantees: a step's samples come from a per-epoch
permutation seeded by (seed, epoch), packed into micro-batches in order once per epoch, and
step s takes micro-batches `[s*G, (s+1)*G)` (G = grad_accum * world_size) with micro-batch
`m * world + r` going to rank r's m-th accumulation: two processes without accumulation see
exactly what one process with 2x accumulation sees, and resuming needs only the step number.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

import torch

from tokcore.errors import ConfigError


def pack_greedy(order: Sequence[int], lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """`order` cut into consecutive groups whose lengths sum to at most `max_tokens` (a group
    closes when the next sample would overflow it)."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        n = lengths[i]
        if current and used + n > max_tokens:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        groups.append(current)
    return groups


class TokenBudgetSampler:
    """Micro-batches of sample indices, each holding at most `max_tokens` tokens.

    Args:
        lengths: tokens of each sample (its sequence length in the model).
        max_tokens: the budget of one micro-batch; a sample longer than it is an error.
        grad_accum, rank, world_size, seed, shuffle, start_step: as for `StepBatchSampler`.
    """

    def __init__(self, lengths: Sequence[int], max_tokens: int, grad_accum: int = 1, rank: int = 0,
                 world_size: int = 1, seed: int = 0, shuffle: bool = True, start_step: int = 0):
        self.lengths = [int(n) for n in lengths]
        longest = max(self.lengths, default=0)
        if longest > max_tokens:
            i = self.lengths.index(longest)
            raise ConfigError(f"sample {i} has {longest} tokens, more than max_tokens={max_tokens}; raise it",
                              key="max_tokens")
        self.max_tokens, self.grad_accum, self.rank, self.world_size = max_tokens, grad_accum, rank, world_size
        self.seed, self.shuffle, self.start_step = seed, shuffle, start_step
        self.per_step = grad_accum * world_size
        if len(self._epoch(0)) < self.per_step:
            raise ConfigError(f"{len(self.lengths)} samples fill {len(self._epoch(0))} micro-batches of "
                              f"max_tokens={max_tokens}, fewer than one step's {self.per_step}; lower max_tokens "
                              "or grad_accum, or give more data", key="max_tokens")

    def _epoch(self, epoch: int) -> list[list[int]]:
        return _packed_epoch(tuple(self.lengths), self.max_tokens, self.seed, epoch, self.shuffle)

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's micro-batches (index lists) for optimizer step `step`. An epoch's incomplete
        last step is dropped, as `StepBatchSampler` drops its incomplete tail."""
        epoch, within = 0, step
        while within >= len(self._epoch(epoch)) // self.per_step:  # epochs pack into different counts
            within -= len(self._epoch(epoch)) // self.per_step
            epoch += 1
        groups = self._epoch(epoch)[within * self.per_step:(within + 1) * self.per_step]
        return [groups[m * self.world_size + self.rank] for m in range(self.grad_accum)]

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield from self.micro_batches(step)
            step += 1


@lru_cache(maxsize=4)
def _packed_epoch(lengths: tuple[int, ...], max_tokens: int, seed: int, epoch: int, shuffle: bool) -> list[list[int]]:
    if shuffle:
        order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    else:
        order = torch.arange(len(lengths))
    return pack_greedy(order.tolist(), lengths, max_tokens)
