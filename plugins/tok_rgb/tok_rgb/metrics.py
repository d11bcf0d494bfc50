"""Image and video quality metrics in torch: PSNR, SSIM (Wang et al. 2004, Gaussian window),
MS-SSIM (Wang, Simoncelli and Bovik 2003), LPIPS, and a temporal PSNR for clips.

PSNR and SSIM follow scikit-image's `peak_signal_noise_ratio` and `structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=0)`
exactly, MS-SSIM follows pytorch-msssim's `ms_ssim` (the tests compare them on real photos).
Every metric is computed per image (per frame for video) and then averaged, so a batch's
figure is the mean of what the references give for each image, and `metric_sums` returns the
per-frame sums that add up exactly across batches and processes (`tokcore eval`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's (and scipy's gaussian_filter's) window radius, in sigmas
SSIM_K1, SSIM_K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # the paper's five scales, finest first
LPIPS_MIN_SIDE = 32  # AlexNet's five layers need about this much image
PSNR_CAP = 100.0  # an exactly reproduced image has infinite PSNR; 100 dB keeps a mean finite


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


def _ssim_cs(x: Tensor, y: Tensor, data_range: float, w: Tensor) -> tuple[Tensor, Tensor]:
    """SSIM and its contrast-structure term, each averaged over valid window positions, per
    image and channel `(N, C)`, of float64 `(N, C, H, W)` batches. Local statistics come from a
    separable Gaussian window; only positions where the whole window lies inside the image
    count (a valid convolution, as scikit-image's cropped border and pytorch-msssim do)."""
    n, c = x.shape[:2]
    x, y = x.reshape(n * c, 1, *x.shape[-2:]), y.reshape(n * c, 1, *y.shape[-2:])

    def blur(v: Tensor) -> Tensor:
        v = F.conv2d(v, w.view(1, 1, -1, 1))
        return F.conv2d(v, w.view(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    cs = (2 * cxy + c2) / (vx + vy + c2)
    s = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return s.flatten(1).mean(1).view(n, c), cs.flatten(1).mean(1).view(n, c)


def ssim(pred: Tensor, target: Tensor, data_range: float = 255.0, sigma: float = SSIM_SIGMA) -> Tensor:
    """Mean structural similarity per image `(N,)` of `(N, C, H, W)` batches, averaged over channels."""
    w = gaussian_window(sigma).to(pred.device)
    if min(pred.shape[-2:]) < len(w):
        raise ValueError(f"SSIM needs images of at least {len(w)} px per side, got {tuple(pred.shape[-2:])}")
    return _ssim_cs(pred.double(), target.double(), data_range, w)[0].mean(1)


def ms_ssim_min_side(scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The smallest image side MS-SSIM takes: the coarsest scale, halved `scales - 1` times,
    must still hold the 11-tap window; 161 px for the standard five (pytorch-msssim's bound)."""
    return (len(gaussian_window()) - 1) * 2 ** (scales - 1) + 1


def ms_ssim(pred: Tensor, target: Tensor, data_range: float = 255.0,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> Tensor:
    """Multi-scale SSIM per image `(N,)` of `(N, C, H, W)` batches (pytorch-msssim's `ms_ssim`
    with `size_average=False`): the contrast-structure term at each scale but the coarsest
    and the full SSIM there, each clipped at 0 and raised to its weight, multiplied, then
    averaged over channels. Between scales the images are halved by 2x2 averaging, an odd
    side padded by one zero row/column (as pytorch-msssim does). Images smaller than
    `ms_ssim_min_side` are a ValueError: the coarse scales would have no valid window."""
    need = ms_ssim_min_side(len(weights))
    if min(pred.shape[-2:]) < need:
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least {need} px per side, "
                         f"got {tuple(pred.shape[-2:])}; use SSIM, or fewer scales (weights=...)")
    w = gaussian_window().to(pred.device)
    x, y = pred.double(), target.double()
    terms = []
    for level in range(len(weights)):
        s, cs = _ssim_cs(x, y, data_range, w)
        if level == len(weights) - 1:
            terms.append(s.clamp_min(0))
            break
        terms.append(cs.clamp_min(0))
        pad = [side % 2 for side in x.shape[-2:]]
        x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    powers = torch.stack(terms) ** torch.tensor(weights, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return powers.prod(0).mean(1)


def lpips_values(recon: Tensor, target: Tensor, data_range: float = 255.0, net: str = "alex") -> Tensor | None:
    """LPIPS per image `(N,)` of raw images in [0, data_range], or None when the weights are
    not installed."""
    from tok_rgb.weights import lpips_weights_available

    if not lpips_weights_available(net):
        return None
    from tok_rgb.lpips import build_lpips

    model = build_lpips(net).to(recon.device)
    scale = lambda v: v.float() * (2.0 / data_range) - 1.0  # noqa: E731
    with torch.no_grad():
        return model(scale(recon), scale(target)).double()


def metric_sums(recon: Tensor, target: Tensor, data_range: float = 255.0) -> dict[str, float]:
    """Per-frame sums of PSNR (dB, capped at 100), SSIM, MS-SSIM (images of 161 px per side or
    more), LPIPS (AlexNet, when its weights are installed and the images have 32 px per side or
    more), with the number of frames under `_frames`; images `(B, C, H, W)` or videos
    `(B, C, T, H, W)` frame by frame, raw values in [0, data_range]."""
    recon, target = as_images(recon.float()), as_images(target.float())
    side = min(recon.shape[-2:])
    out = {"_frames": float(len(recon)),
           "psnr": float(psnr(recon, target, data_range).clamp_max(PSNR_CAP).sum())}
    if side >= len(gaussian_window()):
        out["ssim"] = float(ssim(recon, target, data_range).sum())
    if side >= ms_ssim_min_side():
        out["ms_ssim"] = float(ms_ssim(recon, target, data_range).sum())
    if side >= LPIPS_MIN_SIDE and recon.shape[1] == 3:
        values = lpips_values(recon, target, data_range)
        if values is not None:
            out["lpips"] = float(values.sum())
    return out


def image_metrics(recon: Tensor, target: Tensor, data_range: float = 255.0) -> dict[str, float]:
    """The batch means of `metric_sums`."""
    sums = metric_sums(recon, target, data_range)
    frames = sums.pop("_frames")
    return {k: v / frames for k, v in sums.items()}


def temporal_psnr(recon: Tensor, target: Tensor, data_range: float = 255.0) -> Tensor:
    """PSNR of the frame differences per clip `(B,)` of `(B, C, T, H, W)` clips (T >= 2), capped
    at 100 dB: how faithfully the changes from one frame to the next are reproduced.

    Per-frame metrics cannot see flicker: a decoder whose error is the same in every frame
    and one whose error jumps from frame to frame score the same per-frame PSNR, but only
    the second flickers. Differencing cancels an error that stays put and keeps one that
    changes, so this is high for temporally consistent reconstructions and low for flicker
    (or for motion that is lost). The peak is `data_range`, as for PSNR, so the two read on
    the same scale."""
    if recon.shape[2] < 2:
        raise ValueError(f"temporal PSNR needs clips of at least 2 frames, got {recon.shape[2]}")
    dr, dt = recon.double().diff(dim=2), target.double().diff(dim=2)
    return psnr(dr, dt, data_range).clamp_max(PSNR_CAP)
