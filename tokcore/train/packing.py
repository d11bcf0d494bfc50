"""Batches packed to a token budget (NaViT-style) instead of padded to a fixed size: the
sampler, and the per-sample sizes it packs. (Packing the sequences and attending within each
sample: `tokcore.nn.varlen`.)

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

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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
        lengths: tokens of each sample (its sequence length in the model); or, for samples
            whose size is drawn anew each epoch (`SizedViews`), a function of the epoch giving
            them, and the sampler then yields view ids `epoch * n + i` instead of indices i.
        max_tokens: the budget of one micro-batch; a sample longer than it is an error.
        grad_accum, rank, world_size, seed, shuffle, start_step: as for `StepBatchSampler`.
    """

    def __init__(self, lengths: Sequence[int] | Callable[[int], Sequence[int]], max_tokens: int, grad_accum: int = 1,
                 rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True, start_step: int = 0):
        self.per_epoch = callable(lengths)
        self._lengths = lengths if callable(lengths) else (lambda epoch, fixed=tuple(lengths): fixed)
        self.max_tokens, self.grad_accum, self.rank, self.world_size = max_tokens, grad_accum, rank, world_size
        self.seed, self.shuffle, self.start_step = seed, shuffle, start_step
        self.per_step = grad_accum * world_size
        first = self._epoch(0)
        if len(first) < self.per_step:
            raise ConfigError(f"{len(self.lengths(0))} samples fill {len(first)} micro-batches of "
                              f"max_tokens={max_tokens}, fewer than one step's {self.per_step}; lower max_tokens "
                              "or grad_accum, or give more data", key="max_tokens")

    def lengths(self, epoch: int) -> tuple[int, ...]:
        return tuple(int(n) for n in self._lengths(epoch))

    def _epoch(self, epoch: int) -> list[list[int]]:
        lengths = self.lengths(epoch)
        longest = max(lengths, default=0)
        if longest > self.max_tokens:
            i = lengths.index(longest)
            raise ConfigError(f"sample {i} has {longest} tokens, more than max_tokens={self.max_tokens} (epoch {epoch}); "
                              "raise it", key="max_tokens")
        groups = _packed_epoch(lengths, self.max_tokens, self.seed, epoch, self.shuffle)
        if self.per_epoch:  # view ids: the dataset draws sample i's size for this epoch from them
            return [[epoch * len(lengths) + i for i in g] for g in groups]
        return groups

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


# -- per-sample sizes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewSizes:
    """Ranges that each training sample's size is drawn from (`train.views`), anew per epoch.

    Args:
        height, width: [min, max] pixels, drawn on multiples of the patch side.
        max_aspect: the largest width/height or height/width a drawn size may have.
        frames: [min, max] frames of a video sample, drawn on multiples of the temporal patch;
            None keeps the clip's frame count.
        frame_stride: [min, max] step between the frames taken (the frame rate divided by it);
            the clip must hold stride * (frames - 1) + 1 frames, or the stride is lowered to fit.
    """

    height: tuple[int, int]
    width: tuple[int, int]
    max_aspect: float = 2.0
    frames: tuple[int, int] | None = None
    frame_stride: tuple[int, int] = (1, 1)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "ViewSizes":
        known = {"height", "width", "max_aspect", "frames", "frame_stride"}
        if unknown := set(cfg) - known:
            raise ConfigError(f"unknown key(s) {sorted(unknown)}; known: {sorted(known)}", key="train.views")
        for name in ("height", "width"):
            if name not in cfg:
                raise ConfigError(f"missing '{name}: [min, max]'", key=f"train.views.{name}")
        pairs = {}
        for name in ("height", "width", "frames", "frame_stride"):
            if cfg.get(name) is None:
                continue
            pair = cfg[name]
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and 1 <= int(pair[0]) <= int(pair[1])):
                raise ConfigError(f"must be [min, max] with 1 <= min <= max, got {pair!r}", key=f"train.views.{name}")
            pairs[name] = (int(pair[0]), int(pair[1]))
        aspect = float(cfg.get("max_aspect", 2.0))
        if aspect < 1:
            raise ConfigError(f"must be at least 1, got {aspect}", key="train.views.max_aspect")
        return cls(max_aspect=aspect, **pairs)

    def draw(self, rng: random.Random, patch: tuple[int, int, int], clip_frames: int | None = None
             ) -> tuple[int | None, int, int, int]:
        """(frames or None, height, width, frame stride) on multiples of `patch` (pt, p, p)."""
        pt, p, _ = patch
        h = _multiple(rng, *self.height, p, "height")
        lo = max(self.width[0], h / self.max_aspect)
        hi = min(self.width[1], h * self.max_aspect)
        w = _multiple(rng, int(-(-lo // 1)), int(hi), p, "width (within max_aspect of the height)")
        if self.frames is None or clip_frames is None:
            return None, h, w, 1
        t = _multiple(rng, *self.frames, pt, "frames")
        stride = rng.randint(*self.frame_stride)
        return t, h, w, max(1, min(stride, (clip_frames - 1) // max(t - 1, 1)))


def _multiple(rng: random.Random, lo: int, hi: int, step: int, what: str) -> int:
    first, last = -(-lo // step), hi // step
    if first > last:
        raise ConfigError(f"[{lo}, {hi}] holds no multiple of the model's patch {step}; widen it", key=f"train.views.{what}")
    return rng.randint(first, last) * step


class SizedViews(torch.utils.data.Dataset):
    """A dataset whose samples are resized per epoch to sizes drawn from `ViewSizes`, each with
    a token count drawn from `num_tokens` (lo, hi): view id `epoch * n + i` is sample i in that
    epoch, its size and count a function of (seed, view id) only, so any process on any step
    draws the same. Images `(C, H, W)`: the centred crop of the drawn aspect ratio, resized
    (area averaging down, bilinear up). Video `(C, T, H, W)`: that per frame, on `frames` frames
    taken every `stride` frames from a drawn start."""

    def __init__(self, dataset: Any, sizes: ViewSizes, patch: tuple[int, int, int], num_tokens: tuple[int, int],
                 seed: int = 0, clip_frames: int | None = None):
        self.dataset, self.sizes, self.patch, self.num_tokens = dataset, sizes, patch, num_tokens
        self.seed, self.clip_frames = seed, clip_frames

    def __len__(self) -> int:
        return len(self.dataset)

    def view(self, view: int) -> tuple[tuple[int, ...], int, int]:
        """View id -> (size (T, H, W) or (H, W), token count, frame stride)."""
        rng = random.Random(self.seed * 1_000_003 + view)
        t, h, w, stride = self.sizes.draw(rng, self.patch, self.clip_frames)
        k = rng.randint(*self.num_tokens)
        return ((h, w) if t is None else (t, h, w)), k, stride

    def __getitem__(self, view: int) -> dict[str, Any]:
        sample = dict(self.dataset[view % len(self.dataset)])
        size, k, stride = self.view(view)
        x = torch.as_tensor(sample["input"])
        if len(size) == 3:
            x = _frames(x, size[0], stride, random.Random(self.seed * 1_000_003 + view + 1), sample.get("key", view))
        sample["input"] = resize_crop(x, size[-2:])
        sample["num_tokens"] = k
        return sample

    def lengths(self, sequence_length: Callable[[tuple[int, ...], int], int]) -> Callable[[int], list[int]]:
        """The per-epoch lengths for `TokenBudgetSampler`, given the model's length of a (size, k)."""
        def of_epoch(epoch: int) -> list[int]:
            n = len(self.dataset)
            return [sequence_length(*self.view(epoch * n + i)[:2]) for i in range(n)]
        return of_epoch


def _frames(x: Tensor, frames: int, stride: int, rng: random.Random, key: Any) -> Tensor:
    span = stride * (frames - 1) + 1
    if x.dim() != 4 or x.shape[1] < span:
        raise ConfigError(f"sample {key}: {tuple(x.shape)} holds fewer than the {span} frames train.views draws; "
                          "lengthen the data's clips or lower train.views.frames", key="train.views.frames")
    start = rng.randint(0, x.shape[1] - span)
    return x[:, start:start + span:stride]


def resize_crop(x: Tensor, size: Sequence[int]) -> Tensor:
    """`(..., H, W)` -> `(..., h, w)`: the largest centred crop of h:w's aspect ratio, resized;
    the dtype kept (integers rounded)."""
    h, w = int(size[0]), int(size[1])
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x
    ch, cw = (H, round(H * w / h)) if H * w <= W * h else (round(W * h / w), W)
    top, left = (H - ch) // 2, (W - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    flat = crop.reshape(-1, 1, ch, cw).float()
    mode = "area" if h <= ch and w <= cw else "bilinear"
    out = F.interpolate(flat, size=(h, w), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    out = out.reshape(*crop.shape[:-2], h, w)
    if not x.dtype.is_floating_point:
        out = out.round().clamp(torch.iinfo(x.dtype).min, torch.iinfo(x.dtype).max)
    return out.to(x.dtype)
