"""RGB images and videos: 3 channels, raw values 0-255, normalized to [-1, 1] by default.

Outputs a person can open: `tokcore decode` writes an image as one 8-bit PNG (lossless for
0-255 pictures; no `.npy`) and a clip as an mp4 at the frame rate recorded with the sample
plus its raw frames as `.npy` (mp4 is lossy); training samples are PNG grids of inputs above
reconstructions. Pictures map `value_range` to 0-255, so [0, 1] images are not drawn black.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from tok_rgb.video import write_mp4
from tokcore.api import (
    FeatureExtractor,
    InputError,
    Modality,
    atomic_write_bytes,
    write_array,
    write_array_samples,
)

DEFAULT_FPS = 30.0  # for a decoded clip whose metadata records no rate


def to_uint8(x: Tensor) -> np.ndarray:
    """Raw values in [0, 255] (any float) as rounded uint8."""
    return x.detach().float().round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def png_bytes(image: np.ndarray) -> bytes:
    """`(H, W, 3)` uint8 as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class RGBModality(Modality):
    """RGB images `(3, H, W)` with raw values in [0, 255] (uint8 or float).

    Besides shape, finiteness and range, float input whose values are fractions inside
    [0, 1] is rejected when the range is 0-255: that is a [0, 1] image given to a 0-255
    tokenizer, which would otherwise pass as an almost black picture.

    Args:
        mean: per-channel value subtracted before encoding (127.5 maps 0-255 to [-1, 1]).
        std: per-channel divisor applied after the mean.
        value_range: `[low, high]` raw values must lie in. For float images in [0, 1], set
            value_range [0, 1], mean 0.5 and std 0.5.
    """

    name = "rgb"
    layout = "CHW"
    channels = 3

    def __init__(self, mean: float | Sequence[float] = 127.5, std: float | Sequence[float] = 127.5,
                 value_range: Sequence[float] | None = (0.0, 255.0)):
        super().__init__(mean, std, value_range)

    def check(self, x: Tensor, *, sample: str, batched: bool) -> None:
        if self.value_range is None or self.value_range[1] <= 1.0 or not x.numel():
            return
        if float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and bool((x != x.round()).any()):
            raise InputError(f"{sample}: {self.name} values are fractions in [0, 1] but this tokenizer takes "
                             f"[{self.value_range[0]:g}, {self.value_range[1]:g}]; multiply by 255")

    # -- judge -----------------------------------------------------------------------------
    def _data_range(self) -> tuple[float, float]:
        return tuple(self.value_range) if self.value_range is not None else (0.0, 255.0)

    def metric_totals(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Sums that add up across batches and processes: absolute and squared errors over
        elements (for MAE and RMSE in raw units) and per-frame sums of PSNR, SSIM, MS-SSIM and
        LPIPS (`tok_rgb.metrics.metric_sums`; the peak is the width of `value_range`)."""
        from tok_rgb.metrics import metric_sums

        lo, hi = self._data_range()
        recon, target = recon.float(), target.float()
        err = recon.double() - target.double()
        return {"_samples": float(len(target)), "_elements": float(err.numel()),
                "_abs_error": float(err.abs().sum()), "_squared_error": float(err.square().sum()),
                **metric_sums(recon - lo, target - lo, data_range=hi - lo)}

    def metrics_from_totals(self, totals: Mapping[str, float]) -> dict[str, float]:
        """PSNR (the headline, first), SSIM, MS-SSIM and LPIPS as means over images (frames),
        then MAE and RMSE over all elements."""
        out = {k: v / totals["_frames"] for k, v in totals.items() if not k.startswith("_")}
        return out | {"mae": totals["_abs_error"] / totals["_elements"],
                      "rmse": (totals["_squared_error"] / totals["_elements"]) ** 0.5}

    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """MAE and RMSE in raw units, PSNR (dB), SSIM, MS-SSIM (161 px per side or more) and,
        when its weights are installed, LPIPS; means over images (videos: frames)."""
        return self.metrics_from_totals(self.metric_totals(recon, target))

    def rate_units(self, x: Tensor) -> dict[str, float]:
        """`{"pixel": H * W}` of one image `(3, H, W)`."""
        return {"pixel": float(x.shape[-2] * x.shape[-1])}

    def feature_extractors(self, weights: Mapping[str, Path]) -> dict[str, FeatureExtractor]:
        """`fid` (pytorch-fid's Inception-v3, when its file is named) and `fd_vgg16` (the
        LPIPS VGG16, when installed or named); see `tok_rgb.extractors`."""
        from tok_rgb.extractors import IMAGE_FEATURES, build_extractors

        return build_extractors(IMAGE_FEATURES, weights, self.value_range, self.name)

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """`<path>.png`: one row per sample, columns input | tokenizer | baselines."""
        from tok_rgb.pictures import write_grid

        rows = {name: self.picture(x) for name, x in columns.items()}
        return [write_grid(rows, self.picture(inputs), path.with_name(path.name + ".png"))]

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, *[{"C": 3, "T": 4}.get(a, 16) for a in self.layout])
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

    def invalid_examples(self, x: Tensor) -> list[tuple[Any, str]]:
        return super().invalid_examples(x) + [(x.float() / 255.0, "a [0, 1] picture given to a 0-255 tokenizer"),
                                              (x.narrow(1, 0, 1), "one channel")]

    def picture(self, x: Tensor | np.ndarray) -> np.ndarray:
        """Raw values as 8-bit pixels (same layout): `value_range` mapped to 0-255."""
        x = torch.as_tensor(x)
        lo, hi = self.value_range if self.value_range is not None else (0.0, 255.0)
        return to_uint8(x if (lo, hi) == (0.0, 255.0) else (x.float() - lo) * (255.0 / (hi - lo)))

    def from_picture(self, pixels: np.ndarray, like: Tensor) -> Tensor:
        """`picture`'s inverse: 8-bit pixels back to raw float values, shaped and placed like `like`."""
        lo, hi = self.value_range if self.value_range is not None else (0.0, 255.0)
        out = torch.from_numpy(np.ascontiguousarray(pixels)).float()
        out = out if (lo, hi) == (0.0, 255.0) else lo + out * ((hi - lo) / 255.0)
        return out.reshape(like.shape).to(like.device)

    def write_decoded(self, x: Tensor, path: Path, meta: Mapping[str, Any] | None = None) -> list[Path]:
        """`<path>.png` (8-bit, lossless for 0-255 pictures; no `.npy`)."""
        out = path.with_name(path.name + ".png")
        atomic_write_bytes(out, png_bytes(self.picture(x).transpose(1, 2, 0)))
        return [out]

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """`<path>.png`: inputs (top row) above reconstructions; `<path>.npz`: the arrays."""
        grid = np.concatenate([_row(self.picture(target)), _row(self.picture(recon))], axis=0)
        out = path.with_suffix(".png")
        atomic_write_bytes(out, png_bytes(grid))
        return [out] + write_array_samples(target, recon, path)


class VideoModality(RGBModality):
    """RGB video clips `(3, T, H, W)` with raw values in [0, 255] (channels first, as Conv3d takes).

    Args:
        mean: per-channel value subtracted before encoding.
        std: per-channel divisor applied after the mean.
        value_range: `[low, high]` raw values must lie in.
    """

    name = "video"
    layout = "CTHW"

    def metric_totals(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """The image metrics frame by frame, plus the per-clip sum of `temporal_psnr` (PSNR of
        the frame differences, `tok_rgb.metrics.temporal_psnr`: what per-frame metrics miss,
        flicker and lost motion) for clips of two frames or more."""
        from tok_rgb.metrics import temporal_psnr

        totals = super().metric_totals(recon, target)
        if target.shape[2] >= 2:
            lo, hi = self._data_range()
            totals["_temporal_psnr"] = float(temporal_psnr(recon.float(), target.float(), hi - lo).sum())
        return totals

    def metrics_from_totals(self, totals: Mapping[str, float]) -> dict[str, float]:
        """The image metrics (means over frames) and `temporal_psnr` (a mean over clips)."""
        out = super().metrics_from_totals(totals)
        if "_temporal_psnr" in totals:
            out["temporal_psnr"] = totals["_temporal_psnr"] / totals["_samples"]
        return out

    def rate_units(self, x: Tensor) -> dict[str, float]:
        """`{"pixel": T * H * W, "frame": T}` of one clip `(3, T, H, W)`."""
        return {"pixel": float(x.shape[-3] * x.shape[-2] * x.shape[-1]), "frame": float(x.shape[-3])}

    def feature_extractors(self, weights: Mapping[str, Path]) -> dict[str, FeatureExtractor]:
        """`fvd` (pytorch-i3d's RGB I3D, when its file is named); see `tok_rgb.extractors`."""
        from tok_rgb.extractors import VIDEO_FEATURES, build_extractors

        return build_extractors(VIDEO_FEATURES, weights, self.value_range, self.name)

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """`<path>.gif`, the clips side by side (input | tokenizer | baselines) playing, and
        `<path>.png`, their filmstrip."""
        from tok_rgb.pictures import write_clips

        return write_clips({"input": self.picture(inputs), **{k: self.picture(v) for k, v in columns.items()}}, path)

    def write_decoded(self, x: Tensor, path: Path, meta: Mapping[str, Any] | None = None) -> list[Path]:
        """`<path>.mp4` at the clip's recorded `fps` (meta), and `<path>.npy`, the raw frames
        (mp4 is lossy)."""
        fps = float((meta or {}).get("fps") or DEFAULT_FPS)
        frames = self.picture(x).transpose(1, 2, 3, 0)  # (T, H, W, 3)
        return [write_mp4(path.with_name(path.name + ".mp4"), frames, fps)] + write_array(x, path)

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """`<path>.png`: for each clip, its frames left to right, input above reconstruction."""
        rows = []
        for t, r in zip(target, recon):  # (3, T, H, W): frames as a row of pictures
            rows += [_row(self.picture(t.transpose(0, 1))), _row(self.picture(r.transpose(0, 1)))]
        out = path.with_suffix(".png")
        atomic_write_bytes(out, png_bytes(np.concatenate(rows, axis=0)))
        return [out] + write_array_samples(target, recon, path)


def _row(images: np.ndarray) -> np.ndarray:
    """`(N, 3, H, W)` uint8 pictures side by side, `(H, N*W, 3)`."""
    return np.concatenate(list(images.transpose(0, 2, 3, 1)), axis=1)
