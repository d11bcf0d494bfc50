"""RGB images and videos: 3 channels, raw values 0-255, normalized to [-1, 1] by default."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from tokcore.modality import Modality


class RGBModality(Modality):
    """RGB images `(3, H, W)` with raw values in [0, 255] (uint8 or float).

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

    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """MAE and RMSE in raw units, PSNR (dB), SSIM and, when its weights are installed,
        LPIPS (`tok_rgb.metrics.image_metrics`; videos frame by frame). The peak value is the
        width of `value_range` (255 by default)."""
        from tok_rgb.metrics import image_metrics

        lo, hi = self.value_range if self.value_range is not None else (0.0, 255.0)
        return {**super().metrics(recon, target), **image_metrics(recon - lo, target - lo, data_range=hi - lo)}

    def example(self, batch_size: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(0)
        shape = (batch_size, *[{"C": 3, "T": 4}.get(a, 16) for a in self.layout])
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


class VideoModality(RGBModality):
    """RGB video clips `(3, T, H, W)` with raw values in [0, 255] (channels first, as Conv3d takes).

    Args:
        mean: per-channel value subtracted before encoding.
        std: per-channel divisor applied after the mean.
        value_range: `[low, high]` raw values must lie in.
    """

    name = "video"
    layout = "CTHW"
