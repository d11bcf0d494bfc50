"""Gaze tracks: one 2D gaze point per frame, NaN where the tracker lost the eye."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor

from tokcore.api import InputError, Modality, fill_gaps, write_array_samples


def angular_error_deg(a: Tensor, b: Tensor, fov: Sequence[float]) -> Tensor:
    """Angle in degrees between the viewing rays through normalized image points `a` and `b`
    (..., 2) of a pinhole camera with horizontal and vertical field of view `fov` (degrees)."""
    half = torch.tan(torch.deg2rad(torch.as_tensor(fov, dtype=torch.float64) / 2))

    def ray(p: Tensor) -> Tensor:
        xy = (p.double() - 0.5) * 2 * half
        return torch.nn.functional.normalize(torch.cat([xy, torch.ones_like(xy[..., :1])], -1), dim=-1)

    ra, rb = ray(a), ray(b)
    # atan2(|a x b|, a . b) is accurate for small angles, where acos is not
    return torch.rad2deg(torch.atan2(torch.linalg.cross(ra, rb).norm(dim=-1), (ra * rb).sum(-1)))


def interpolate_gaps(x: Tensor, outside: Tensor | float = 0.5) -> Tensor:
    """`(..., T, 2)` gaze with NaN frames -> gaps interpolated (`tokcore.api.fill_gaps`); a
    clip without any valid frame becomes `outside` (the image centre by default)."""
    return fill_gaps(x, outside)


class GazeModality(Modality):
    """Gaze points `(T, 2)`: x horizontal, y vertical (OpenCV image convention, origin top
    left), normalized to [0, 1] by the image size. Frames without a valid gaze (blinks,
    tracking loss) are NaN; they are masked out of normalization, losses and metrics.

    Args:
        mean: value subtracted before encoding (0.5 centres the image).
        std: divisor applied after the mean (0.5 maps [0, 1] to [-1, 1]).
        value_range: `[low, high]` valid coordinates must lie in; the default [0, 1] catches
            pixel coordinates passed without dividing by the image size.
        fov: `[horizontal, vertical]` field of view of the scene camera in degrees; when
            given, metrics include the error in degrees of visual angle (pinhole model).
        fill: what invalid frames become before encoding: "mean", the normalization mean (the
            image centre; a blink is a jump there and back), or "interpolate", the straight
            line between the valid frames around the gap, held at the clip's ends (what a
            spectral encoder such as `dct1d` needs: a jump costs every frequency). Losses
            and metrics ignore these frames either way.
    """

    name = "gaze"
    layout = "TC"
    channels = 2

    def __init__(self, mean: float | Sequence[float] = 0.5, std: float | Sequence[float] = 0.5,
                 value_range: Sequence[float] | None = (0.0, 1.0), fov: Sequence[float] | None = None,
                 fill: str = "mean"):
        super().__init__(mean, std, value_range)
        if fill not in ("mean", "interpolate"):
            raise InputError(f"modality 'gaze': fill must be 'mean' or 'interpolate', got {fill!r}")
        self.fill = fill
        if fov is not None and (len(fov) != 2 or not all(0 < f < 180 for f in fov)):
            raise InputError(f"modality 'gaze': fov must be [horizontal, vertical] degrees in (0, 180), got {fov}")
        self.fov = list(fov) if fov is not None else None

    def valid_mask(self, x: Tensor) -> Tensor:
        # a frame is valid only when both coordinates are
        frame_ok = torch.isfinite(x).all(dim=-1, keepdim=True)
        return frame_ok.expand_as(x)

    def normalize(self, x: Tensor, batched: bool = True) -> Tensor:
        if self.fill == "interpolate":
            mean, _ = self._stats(x, batched)
            x = interpolate_gaps(x, outside=mean)
        return super().normalize(x, batched)

    def metric_totals(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Sums over the valid frames of `target` (counted under `_samples`): `error`, the
        Euclidean distance in normalized image units; `error_deg`, the angle between the
        viewing rays (with `fov`). Pooled over frames, so a clip with few valid frames weighs
        little."""
        valid = self.valid_mask(target)[..., 0]
        a, b = recon.double()[valid], target.double()[valid]
        out = {"_samples": float(len(a)), "error": float((a - b).norm(dim=-1).sum())}
        if self.fov is not None:
            out["error_deg"] = float(angular_error_deg(a, b, self.fov).sum())
        return out

    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Means over the valid frames of `target` (see `metric_totals`); NaN without any."""
        totals = self.metric_totals(recon, target)
        if not totals["_samples"]:
            return {k: float("nan") for k in totals if not k.startswith("_")}
        return self.metrics_from_totals(totals)

    def rate_units(self, x: Tensor) -> dict[str, float]:
        return {"frame": x.shape[0]}

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """`<path>.png`: x(t), y(t) and the path in the image of a few clips, the input
        against each codec's reconstruction."""
        from tok_gaze.plot import plot_gaze

        (first, recon), *rest = columns.items()
        return [plot_gaze(inputs.numpy(), recon.numpy(), path.with_suffix(".png"),
                          extra={name: x.numpy() for name, x in rest})]

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """`<path>.png`: x and y over time and the path in the image, input vs reconstruction
        (invalid input frames are gaps); `<path>.npz`: the arrays."""
        from tok_gaze.plot import plot_gaze

        files = write_array_samples(target, recon, path)
        return [plot_gaze(target.detach().cpu().numpy(), recon.detach().cpu().numpy(), path.with_suffix(".png"))] + files

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        gaze = 0.1 + 0.8 * torch.rand(batch_size, 16, 2, generator=g)
        gaze[:, 5:7] = float("nan")  # a blink
        return gaze
