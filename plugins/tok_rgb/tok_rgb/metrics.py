"""Image quality metrics in torch: PSNR, SSIM (Wang et al. 2004, Gaussian window) and LPIPS.

They follow scikit-image's `peak_signal_noise_ratio` and `structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=0)`
exactly (the tests compare them on real photos), computed per image and then averaged, so
a batch's figure is the mean of what scikit-image gives for each image.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's (and scipy's gaussian_filter's) window radius, in sigmas
SSIM_K1, SSIM_K2 = 0.01, 0.03
LPIPS_MIN_SIDE = 32  # AlexNet's five layers need about this much image


def as_images(x: Tensor) -> Tensor:
    """`(B, C, H, W)` images, or `(B, C, T, H, W)` videos as `(B*T, C, H, W)` frames."""
    return x.transpose(1, 2).flatten(0, 1) if x.dim() == 5 else x


def psnr(pred: Tensor, target: Tensor, data_range: float = 255.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image `(N,)` of `(N, C, H, W)` batches
    (inf where an image is reproduced exactly)."""
    mse = (pred.double() - target.double()).square().flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> Tensor:
    """The normalized 1D Gaussian scipy's `gaussian_filter` uses (radius int(truncate*sigma + 0.5))."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(pred: Tensor, target: Tensor, data_range: float = 255.0, sigma: float = SSIM_SIGMA) -> Tensor:
    """Mean structural similarity per image `(N,)` of `(N, C, H, W)` batches, averaged over
    channels. Local statistics come from a separable Gaussian window; as in scikit-image, only
    positions where the whole window lies inside the image count (a valid convolution: the
    border scikit-image crops is exactly the part its padding would affect)."""
    w = gaussian_window(sigma).to(pred.device)
    if min(pred.shape[-2:]) < len(w):
        raise ValueError(f"SSIM needs images of at least {len(w)} px per side, got {tuple(pred.shape[-2:])}")
    n, c = pred.shape[:2]
    x, y = pred.double().reshape(n * c, 1, *pred.shape[-2:]), target.double().reshape(n * c, 1, *pred.shape[-2:])

    def blur(v: Tensor) -> Tensor:
        v = F.conv2d(v, w.view(1, 1, -1, 1))
        return F.conv2d(v, w.view(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).view(n, c).mean(1)


def image_metrics(recon: Tensor, target: Tensor, data_range: float = 255.0) -> dict[str, float]:
    """Batch means of PSNR (dB) and SSIM, plus LPIPS (AlexNet, on images scaled to [-1, 1] by
    `data_range`) when its weights are installed and the images are large enough. Raw units;
    videos are measured frame by frame."""
    recon, target = as_images(recon.float()), as_images(target.float())
    # an exactly reproduced image has infinite PSNR; 100 dB keeps a batch mean finite
    out = {"psnr": float(psnr(recon, target, data_range).clamp_max(100.0).mean())}
    if min(recon.shape[-2:]) >= len(gaussian_window()):
        out["ssim"] = float(ssim(recon, target, data_range).mean())
    if min(recon.shape[-2:]) >= LPIPS_MIN_SIDE and recon.shape[1] == 3:
        value = lpips_metric(recon, target, data_range)
        if value is not None:
            out["lpips"] = value
    return out


def lpips_metric(recon: Tensor, target: Tensor, data_range: float = 255.0, net: str = "alex") -> float | None:
    """Mean LPIPS of raw images in [0, data_range], or None when the weights are not installed."""
    from tok_rgb.weights import lpips_weights_available

    if not lpips_weights_available(net):
        return None
    from tok_rgb.lpips import build_lpips

    model = build_lpips(net).to(recon.device)
    scale = lambda v: v.float() * (2.0 / data_range) - 1.0  # noqa: E731
    with torch.no_grad():
        return float(model(scale(recon), scale(target)).mean())

