"""The `coordtok` trainer: CoordTok's two training steps (Jang et al. 2024, Sec. 3.3).

Step 1 (`sample: patches`) encodes each clip whole and decodes only `patches_per_clip`
patches drawn at random over the clip (the paper: 1024), so the decoder's cost is set by that
number and not by the clip's length; the config's `loss` (the paper: L2) compares them with
the clip's own pixels, given to it as `(B, N, pt*p*p*C)`.

Step 2 (`sample: frames`, started with `train.init_from` the step-1 run) decodes every patch
of `frames_per_clip` temporal slabs drawn at random (the paper: 16 of 128 frames) and gives
the loss those frames as clips `(B, C, frames, H, W)`, so that an image loss such as
tok-rgb's `perceptual` (L2 + LPIPS) applies: the config names it (`loss: {name:
perceptual}`, `requires: [tok-rgb]`).

Both add the quantizer's auxiliary losses (none for the default `identity` bottleneck). The
draws come from a generator of their own, seeded by (`seed`, step, rank, micro-batch): a
resumed run draws the same patches as one that never stopped, whatever else consumed torch's
global generator in between (a DataLoader draws its seed from it each epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from tok_coordtok.patches import (
    from_patches,
    gather_patches,
    random_patches,
    random_slabs,
)
from tokcore.api import ConfigError, StepOutput, Trainer


class CoordTokTrainer(Trainer):
    """CoordTok's training: the loss on randomly sampled patches (step 1) or frames (step 2).

    Args:
        sample: "patches" (step 1) or "frames" (step 2).
        patches_per_clip: patches decoded per clip in step 1 (K).
        frames_per_clip: temporal slabs (patch_t frames each) decoded whole per clip in step 2.
        quantizer_weight: factor on the sum of the quantizer's auxiliary losses.
        seed: seed of the patch and frame draws.
    """

    example_config: ClassVar[dict[str, Any]] = {"patches_per_clip": 16}

    def __init__(self, sample: Literal["patches", "frames"] = "patches", patches_per_clip: int = 1024,
                 frames_per_clip: int = 4, quantizer_weight: float = 1.0, seed: int = 0):
        super().__init__()
        for key, value in (("patches_per_clip", patches_per_clip), ("frames_per_clip", frames_per_clip)):
            if value < 1:
                raise ConfigError(f"must be at least 1, got {value}", key=key)
        self.sample, self.patches_per_clip, self.frames_per_clip = sample, patches_per_clip, frames_per_clip
        self.quantizer_weight, self.seed = quantizer_weight, seed
        self._step, self._draws = -1, 0  # micro-batches drawn for so far in this step

    def generator(self, step: int) -> torch.Generator:
        """The generator of this micro-batch's draws, a function of (seed, step, rank, micro-batch)."""
        if step != self._step:
            self._step, self._draws = step, 0
        self._draws += 1
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + step) * 4099 + rank) * 257 + self._draws)

    def training_step(self, model: nn.Module, batch: Mapping[str, Any], step: int,
                      optimizer: str = "model") -> StepOutput:
        x, mask = batch["input"], batch.get("mask")
        decoder = getattr(model, "module", model).decoder  # the model may be DDP-wrapped
        pt, p, c = decoder.patch_t, decoder.patch, decoder.out_channels
        b = x.shape[0]
        grid = (x.shape[2] // pt, *decoder.grid[1:])  # a clip shorter than the model's: its own slabs only
        g = self.generator(step)
        if self.sample == "patches":
            index = random_patches(b, grid, self.patches_per_clip, generator=g)
        else:
            if self.frames_per_clip > grid[0]:
                raise ConfigError(f"{self.frames_per_clip} slabs of {pt} frame(s) asked of clips of {x.shape[2]} "
                                  "frames; lower it or use longer clips", key="trainer.frames_per_clip")
            _, index = random_slabs(b, grid, self.frames_per_clip, generator=g)
        index = index.to(x.device)
        out = model(x, patches=index)  # through the (DDP) model: one forward, gradients synchronized
        pred, target = out.recon, gather_patches(x, index, pt, p)
        valid = None if mask is None else gather_patches(mask.expand_as(x).to(x.dtype), index, pt, p) > 0.5
        if self.sample == "frames":  # back to clips of the drawn slabs, for image losses
            pred, target = (self._slabs(v, b, c, pt, p, grid) for v in (pred, target))
            valid = None if valid is None else self._slabs(valid.to(x.dtype), b, c, pt, p, grid) > 0.5
        rec = self.loss(pred.float(), target, valid)
        aux = sum(out.quant.losses.values(), torch.zeros((), device=x.device))
        metrics: dict[str, Any] = {f"loss/{k}": v for k, v in rec.terms.items()}
        metrics.update({f"quantizer/{k}": v.detach() for k, v in out.quant.losses.items()})
        metrics.update({f"codebook/{k}": v for k, v in out.quant.stats.items()})
        return StepOutput(rec.loss + self.quantizer_weight * aux, metrics)

    def _slabs(self, patches: Tensor, b: int, c: int, pt: int, p: int, grid: tuple[int, int, int]) -> Tensor:
        """`(B, F*H'*W', values)`, slab by slab, -> clips `(B, C, F*pt, H, W)`."""
        return from_patches(patches.reshape(b, self.frames_per_clip, grid[1], grid[2], -1), c, pt, p)
