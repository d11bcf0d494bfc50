"""Depth maps with holes: 0, inf and NaN mark pixels without a measurement."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor

from tok_depth.metrics import depth_metric_totals, depth_metrics
from tokcore.api import InputError, Modality, write_array_samples

NORMALIZATIONS = ("log", "metric", "robust", "minmax")
PER_SAMPLE = ("robust", "minmax")  # normalizations with side information


class DepthModality(Modality):
    """Depth maps `(1, H, W)` in metres (or any unit, consistently); invalid pixels are 0, inf
    or NaN and are masked out of normalization, losses and metrics.

    Three normalizations, recorded in the checkpoint like every modality parameter:

    * "log": log depth, `[log near, log far]` mapped onto [-1, 1]: relative precision is the
      same near and far, which suits a discrete code (4M and most depth tokenizers work on
      log or inverse depth for this reason).
    * "metric": depth itself, `[near, far]` mapped linearly onto [-1, 1].
    * "robust": per image, `(depth - median) / mean |depth - median|` over its valid pixels
      (the scale-and-shift normalization of MiDaS). The tokens then hold the shape of the
      scene only; the two statistics are the image's side information
      (`Modality.side_info`), which the tokenizer and the token store carry next to the
      tokens so that decoding gives metric depth back.
    * "minmax": per sample, its valid depths' `[min, max]` mapped onto [-1, 1], as EgoM2P
      feeds depth video to Cosmos (its `legacy_depth_video_cli.py`: min-max over the clip,
      then 0-255 gray); the side information is the midpoint (`shift`) and half the span
      (`scale`), and decoding clamps model outputs to [-1, 1] first, as Cosmos's 0-255
      conversion does.

    A network made for RGB takes the map repeated over `model_channels` channels (EgoM2P
    stacks its gray depth 3 times for Cosmos); decoding averages the channels it gets back.

    Args:
        normalization: "log", "metric", "robust" or "minmax" (see above).
        depth_range: `[near, far]` in the data's unit: the span "log" and "metric" map onto
            [-1, 1] (depths outside it saturate at its ends); decoded depths are clamped to it.
        value_range: `[low, high]` that valid depths must lie in, or None.
        max_depth: depths above this count as invalid (far clipping), or None.
        model_channels: channels of model space: 1, or 3 for a network that takes RGB.
    """

    name = "depth"
    layout = "CHW"
    channels = 1

    def __init__(self, normalization: Literal["log", "metric", "robust", "minmax"] = "log",
                 depth_range: Sequence[float] = (0.1, 100.0), value_range: Sequence[float] | None = None,
                 max_depth: float | None = None, model_channels: int = 1):
        super().__init__(0.0, 1.0, value_range)
        if normalization not in NORMALIZATIONS:
            raise InputError(f"modality '{self.name}': normalization must be one of {', '.join(NORMALIZATIONS)}, "
                             f"got '{normalization}'")
        if len(depth_range) != 2 or not 0 < depth_range[0] < depth_range[1]:
            raise InputError(f"modality '{self.name}': depth_range must be [near, far] with 0 < near < far, got {depth_range}")
        self.normalization = normalization
        self.depth_range = [float(d) for d in depth_range]
        self.max_depth = max_depth
        if model_channels < 1:
            raise InputError(f"modality '{self.name}': model_channels must be at least 1, got {model_channels}")
        self.model_channels = model_channels

    def valid_mask(self, x: Tensor) -> Tensor:
        valid = torch.isfinite(x) & (x > 0)
        return valid if self.max_depth is None else valid & (x <= self.max_depth)

    # -- normalization ------------------------------------------------------------------------
    def side_info(self, x: Tensor, batched: bool = True) -> dict[str, Tensor] | None:
        """"robust": each sample's median depth (`shift`) and mean absolute deviation from
        it (`scale`); "minmax": the midpoint and half the span of its depths; over its valid
        pixels (all frames of a clip), as `(B,)` tensors (scalars unbatched). A sample
        without valid pixels gets shift 1 and scale 1."""
        if self.normalization not in PER_SAMPLE:
            return None
        flat = x.reshape(len(x) if batched else 1, -1).float()
        valid = self.valid_mask(flat)
        flat = torch.where(valid, flat, torch.full_like(flat, float("nan")))
        if self.normalization == "minmax":
            inf = torch.full_like(flat, float("inf"))
            lo, hi = torch.where(valid, flat, inf).amin(dim=1), torch.where(valid, flat, -inf).amax(dim=1)
            shift, scale = (lo + hi) / 2, (hi - lo) / 2
        else:
            shift = flat.nanmedian(dim=1).values
            scale = (flat - shift[:, None]).abs().nanmean(dim=1)
        empty = torch.isnan(shift)
        shift = torch.where(empty, torch.ones_like(shift), shift)
        # a flat wall has no spread: a small floor keeps the division finite
        scale = torch.where(empty, torch.ones_like(scale), scale).clamp_min(1e-6)
        if not batched:
            shift, scale = shift[0], scale[0]
        return {"shift": shift, "scale": scale}

    def _per_sample(self, side: dict[str, Tensor], name: str, x: Tensor, batched: bool) -> Tensor:
        if name not in side:
            raise InputError(f"modality '{self.name}': side information lacks '{name}'; it has {sorted(side)}")
        v = torch.as_tensor(side[name], dtype=x.dtype, device=x.device)
        return v.reshape(-1, *[1] * (x.dim() - 1)) if batched else v.reshape([1] * x.dim())

    def normalize(self, x: Tensor, batched: bool = True, side: dict[str, Tensor] | None = None) -> Tensor:
        """Depths to model space; holes become `fill_value` (0). "robust" uses `side` when
        given (the statistics of the sample it was taken from), else the image's own."""
        valid = self.valid_mask(x)
        near, far = self.depth_range
        d = torch.where(valid, x, torch.full_like(x, near))
        if self.normalization in PER_SAMPLE:
            side = side if side is not None else self.side_info(x, batched)
            out = (d - self._per_sample(side, "shift", x, batched)) / self._per_sample(side, "scale", x, batched)
        elif self.normalization == "log":
            lo, hi = math.log(near), math.log(far)
            out = 2 * (d.clamp(near, far).log() - lo) / (hi - lo) - 1
        else:
            out = 2 * (d.clamp(near, far) - near) / (far - near) - 1
        out = torch.where(valid, out, torch.full_like(out, self.fill_value))
        if self.model_channels > 1:
            out = out.repeat_interleave(self.model_channels, dim=self.channel_axis(batched))
        return out

    def denormalize(self, x: Tensor, batched: bool = True, side: dict[str, Tensor] | None = None) -> Tensor:
        """Model space to depths within `depth_range`; "robust" needs the image's `side`
        information (`Tokens.side`, or the store's sample metadata). Several channels (see
        `model_channels`) are averaged into one."""
        near, far = self.depth_range
        if x.shape[self.channel_axis(batched)] > 1:
            x = x.mean(dim=self.channel_axis(batched), keepdim=True)
        if self.normalization in PER_SAMPLE:
            if side is None:
                raise InputError(f"modality '{self.name}': {self.normalization} normalization is per image; decoding "
                                 "needs each image's shift and scale (Tokens.side, kept in the token store's metadata)")
            if self.normalization == "minmax":
                x = x.clamp(-1, 1)
            out = x * self._per_sample(side, "scale", x, batched) + self._per_sample(side, "shift", x, batched)
        elif self.normalization == "log":
            lo, hi = math.log(near), math.log(far)
            out = torch.exp(lo + (x + 1) / 2 * (hi - lo))
        else:
            out = near + (x + 1) / 2 * (far - near)
        out = out.clamp(near, far)
        return out if self.value_range is None else out.clamp(*self.value_range)

    # -- judge and show ---------------------------------------------------------------------
    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """AbsRel, RMSE, log RMSE, MAE and delta < 1.25^k over the valid pixels of `target`
        (see `tok_depth.metrics`)."""
        return depth_metrics(recon.float(), target.float(), self.valid_mask(target.float()))

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """`<path>.png`: input, reconstruction and relative error side by side, holes in
        grey; `<path>.npz`: the arrays."""
        from tok_depth.plot import plot_depth

        t, r = target.detach().cpu(), recon.detach().cpu()
        files = write_array_samples(t, r, path)
        return [plot_depth(t[:, 0].numpy(), r[:, 0].numpy(), self.valid_mask(t)[:, 0].numpy(),
                           path.with_suffix(".png"))] + files

    def metric_totals(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Sums of the per-image errors over the images with valid pixels (their count under
        `_samples`), so a split's figures are means over its images as `metrics` gives."""
        return depth_metric_totals(recon.float(), target.float(), self.valid_mask(target.float()))

    def rate_units(self, x: Tensor) -> dict[str, float]:
        return {"pixel": x.shape[-2] * x.shape[-1]}

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """`<path>-<codec>.png` per codec: input, reconstruction and relative error of a few
        maps, holes in grey."""
        from tok_depth.plot import plot_depth

        valid = self.valid_mask(inputs)[:, 0].numpy()
        return [plot_depth(inputs[:, 0].numpy(), x[:, 0].numpy(), valid, path.with_name(f"{path.name}-{name}.png"),
                           titles=[name] * len(inputs)) for name, x in columns.items()]

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        depth = 0.5 + 9.5 * torch.rand(batch_size, 1, 16, 16, generator=g)
        depth[:, :, :2, :3] = 0.0  # a hole, as stereo and ToF sensors leave
        depth[:, :, -1, -1] = float("inf")
        return depth

    @staticmethod
    def example_config() -> dict:
        """Robust normalization: the contract kit then checks the side-information path."""
        return {"normalization": "robust"}


def frames_of(x: Tensor) -> Tensor:
    """A batch of clips `(B, C, T, H, W)` as the batch of their frames `(B * T, C, H, W)`."""
    return x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[-2:])


class DepthVideoModality(DepthModality):
    """Depth video `(1, T, H, W)`: a clip of depth maps, with the depth modality's hole
    masking and normalizations; a per-sample normalization ("robust", "minmax") takes its
    statistics over the whole clip, so every frame of a clip is mapped alike (as EgoM2P
    normalizes its depth clips before Cosmos) and the decoded clip does not flicker in scale.
    The metrics are depth's, per frame: each frame with valid pixels counts as one image.

    A modality of its own rather than `depth` accepting two shapes: a modality's `layout`
    fixes the axes of its samples, which validation, the channel axis of the statistics, the
    frame count a token store records and the decoders that read the tokens all rely on, and
    a checkpoint records which it was trained on; a model trained on maps must refuse clips.

    Args: as `DepthModality`.
    """

    name = "depth_video"
    layout = "CTHW"

    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Depth's metrics (`tok_depth.metrics`) over the frames of the clips, each frame one image."""
        return super().metrics(frames_of(recon), frames_of(target))

    def metric_totals(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Sums of the per-frame errors, the number of frames with valid pixels under
        `_samples`: they add up over batches and processes like depth's."""
        return super().metric_totals(frames_of(recon), frames_of(target))

    def rate_units(self, x: Tensor) -> dict[str, float]:
        return {"pixel": float(x.shape[-3] * x.shape[-2] * x.shape[-1]), "frame": float(x.shape[-3])}

    @staticmethod
    def _shown(x: Tensor) -> Tensor:
        """The first, middle and last frame of each clip, as images `(3B, 1, H, W)`."""
        t = x.shape[2]
        return frames_of(x[:, :, sorted({0, t // 2, t - 1})])

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """Depth's pictures of the first, middle and last frame of each clip (`<path>.png`),
        and the whole clips (`<path>.npz`)."""
        shown = super().write_samples(self._shown(target), self._shown(recon), path)
        # the arrays of the whole clips replace those of the frames shown
        return shown[:1] + write_array_samples(target.detach().cpu(), recon.detach().cpu(), path)

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """Depth's pictures, of the first, middle and last frame of each clip."""
        return super().eval_pictures(self._shown(inputs), {k: self._shown(v) for k, v in columns.items()}, path)

    def example(self, batch_size: int = 2) -> Tensor:
        """Clips of 5 frames: a slanted plane moving towards the camera, with a hole."""
        ramp = torch.linspace(2.0, 6.0, 16).expand(16, 16)
        clip = torch.stack([ramp - 0.2 * t for t in range(5)])[None]  # (1, T, H, W)
        depth = torch.stack([clip * (1 + 0.5 * b) for b in range(batch_size)])
        depth[:, :, 1:3, :2, :3] = 0.0  # a hole over two frames
        depth[:, :, -1, -1, -1] = float("nan")
        return depth

    @staticmethod
    def example_config() -> dict:
        """EgoM2P's: per-clip min-max, repeated over 3 channels."""
        return {"normalization": "minmax", "model_channels": 3}
