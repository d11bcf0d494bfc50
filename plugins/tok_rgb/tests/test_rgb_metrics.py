"""PSNR and SSIM against scikit-image, MS-SSIM against pytorch-msssim, on real photos; the
modality's metrics and their totals; the temporal PSNR; the codecs."""

import numpy as np
import pytest
import torch

from tok_rgb.codecs import bicubic, jpeg, jpeg_at_bpp, scan_start
from tok_rgb.metrics import gaussian_window, image_metrics, ms_ssim, ms_ssim_min_side, psnr, ssim, temporal_psnr

skimage = pytest.importorskip("skimage")
from skimage import data, metrics  # noqa: E402


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).double()


@pytest.fixture(scope="module")
def pairs():
    """Real photos with real distortions: JPEG at several qualities, Gaussian noise, a shift."""
    rng = np.random.default_rng(0)
    out = []
    for photo in (data.astronaut()[100:164, 200:296], data.coffee()[:48, :64], data.chelsea()[60:124, 100:164]):
        noisy = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
        for q in (5, 40):
            out.append((photo, jpeg(photo.transpose(2, 0, 1)[None], q).images[0].transpose(1, 2, 0)))
        out += [(photo, noisy), (photo, np.roll(photo, 1, axis=1))]
    return out


def test_psnr_matches_skimage(pairs):
    for ref, test in pairs:
        want = metrics.peak_signal_noise_ratio(ref, test, data_range=255)
        got = float(psnr(chw(test)[None], chw(ref)[None], 255.0)[0])
        assert got == pytest.approx(want, abs=1e-9)


def test_ssim_matches_skimage_gaussian(pairs):
    values = []
    for ref, test in pairs:
        want = metrics.structural_similarity(ref.astype(np.float64), test.astype(np.float64), gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
        got = float(ssim(chw(test)[None], chw(ref)[None], 255.0)[0])
        assert got == pytest.approx(want, abs=1e-7)
        values.append(got)
    assert min(values) < 0.9 < max(values)  # the distortions span a real range


def test_ssim_is_one_for_identical_and_symmetric(pairs):
    ref, test = (torch.stack([chw(p[i]) for p in pairs[:2]]) for i in (0, 1))
    assert torch.allclose(ssim(ref, ref), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(ssim(ref, test), ssim(test, ref))


def test_gaussian_window_is_scipys():
    w = gaussian_window()
    assert len(w) == 11 and float(w.sum()) == pytest.approx(1.0)
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(31)
    impulse[15] = 1.0
    assert np.allclose(gaussian_filter1d(impulse, 1.5, truncate=3.5)[10:21], w.numpy())


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_modality_metrics_are_batch_means_in_raw_units(pairs):
    from tokcore import registry

    modality = registry.build("modality", {"name": "rgb"})
    ref = torch.stack([chw(p[0]) for p in pairs[:3]]).float()
    test = torch.stack([chw(p[1]) for p in pairs[:3]]).float()
    m = modality.metrics(test, ref)
    want_psnr = np.mean([metrics.peak_signal_noise_ratio(a, b, data_range=255) for a, b in pairs[:3]])
    assert m["psnr"] == pytest.approx(want_psnr, rel=1e-5)
    assert {"mae", "rmse", "psnr", "ssim"} <= set(m)
    video = modality.metrics  # frames of a video are images: (B, C, T, H, W) gives the same means
    frames = image_metrics(test.unsqueeze(2).repeat(1, 1, 2, 1, 1), ref.unsqueeze(2).repeat(1, 1, 2, 1, 1))
    assert frames["psnr"] == pytest.approx(video(test, ref)["psnr"], rel=1e-5)


def test_jpeg_rate_counts_the_scan_and_rises_with_quality():
    photo = data.astronaut()[:64, :64].transpose(2, 0, 1)[None]
    low, high = jpeg(photo, 10), jpeg(photo, 90)
    assert 0 < low.bpp < high.bpp and low.file_bpp > low.bpp
    assert metrics.peak_signal_noise_ratio(photo, high.images) > metrics.peak_signal_noise_ratio(photo, low.images)
    chosen = jpeg_at_bpp(photo, low.bpp + 1e-6)
    assert chosen.bpp >= low.bpp and jpeg(photo, int(chosen.name.split("=")[1]) - 1).bpp < low.bpp + 1e-6
    with pytest.raises(ValueError, match="baseline JPEG"):
        scan_start(b"\xff\xd8\x00\x00")


def test_bicubic_keeps_the_low_frequencies():
    photo = data.astronaut()[100:164, 180:244].transpose(2, 0, 1)[None]  # a face: real detail
    coded = bicubic(photo, 8)
    assert coded.bpp == pytest.approx(24 / 64) and coded.images.shape == photo.shape
    assert abs(float(coded.images.mean()) - float(photo.mean())) < 3
    coarse, fine = (metrics.peak_signal_noise_ratio(photo, c.images) for c in (coded, bicubic(photo, 2)))
    assert 15 < coarse < fine
    with pytest.raises(ValueError, match="factor"):
        bicubic(photo[..., :60], 8)


@pytest.fixture(scope="module")
def large_pairs():
    """Photos large enough for five MS-SSIM scales (161 px per side, odd sides included, so the
    padded 2x2 averaging is exercised), with JPEG, noise and blur distortions."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(1)
    photos = [data.astronaut()[40:217, 150:333], data.coffee()[100:300, 200:400], data.chelsea()[:165, :171]]
    out = []
    for photo in photos:
        blurred = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(2)))
        noisy = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
        out += [(photo, jpeg(photo.transpose(2, 0, 1)[None], 10).images[0].transpose(1, 2, 0)), (photo, blurred),
                (photo, noisy)]
    return out


def test_ms_ssim_matches_pytorch_msssim(large_pairs):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    values = []
    for ref, test in large_pairs:
        a, b = chw(test)[None], chw(ref)[None]
        want = float(pytorch_msssim.ms_ssim(a.float(), b.float(), data_range=255, size_average=False)[0])
        got = float(ms_ssim(a, b, 255.0)[0])
        assert got == pytest.approx(want, abs=2e-5)
        values.append(got)
        three = (0.2, 0.3, 0.5)  # other weights: fewer scales
        want3 = float(pytorch_msssim.ms_ssim(a.float(), b.float(), data_range=255, size_average=False, weights=three)[0])
        assert float(ms_ssim(a, b, 255.0, weights=three)[0]) == pytest.approx(want3, abs=2e-5)
    assert min(values) < 0.9 < max(values) <= 1.0


def test_ms_ssim_needs_five_scales_of_image():
    assert ms_ssim_min_side() == 161 and ms_ssim_min_side(3) == 41
    x = torch.zeros(1, 3, 160, 200)
    with pytest.raises(ValueError, match="at least 161 px per side, got \\(160, 200\\)"):
        ms_ssim(x, x)
    assert float(ms_ssim(x[..., :41, :41], x[..., :41, :41], weights=(0.2, 0.3, 0.5))[0]) == pytest.approx(1.0)
    # the modality reports MS-SSIM only where it is defined: 32 px crops get PSNR, SSIM (and LPIPS)
    assert "ms_ssim" not in image_metrics(x[..., :32, :32], x[..., :32, :32])
    assert "ms_ssim" in image_metrics(torch.zeros(1, 3, 161, 161), torch.zeros(1, 3, 161, 161))


def test_metric_totals_add_up_across_batches(pairs):
    """Totals of two halves summed give what the whole batch gives (what --nproc relies on),
    and MAE / RMSE are over all elements, not a mean of batch figures."""
    from tokcore import registry

    modality = registry.build("modality", {"name": "rgb"})
    ref = torch.stack([chw(p[0][:48, :48]) for p in pairs]).float()
    test = torch.stack([chw(p[1][:48, :48]) for p in pairs]).float()
    whole = modality.metrics_from_totals(modality.metric_totals(test, ref))
    parts = [modality.metric_totals(test[s], ref[s]) for s in (slice(0, 3), slice(3, None))]
    summed = {k: parts[0][k] + parts[1][k] for k in parts[0]}
    split = modality.metrics_from_totals(summed)
    assert split.keys() == whole.keys() and {"mae", "rmse", "psnr", "ssim"} <= set(whole)
    for k in whole:
        assert split[k] == pytest.approx(whole[k], rel=1e-9)
    err = (test.double() - ref.double())
    assert whole["rmse"] == pytest.approx(float(err.square().mean().sqrt()), rel=1e-9)
    assert whole["psnr"] == pytest.approx(float(psnr(test, ref).mean()), rel=1e-9)
    assert modality.metrics(test, ref) == whole


def test_temporal_psnr_sees_flicker_that_per_frame_psnr_does_not():
    from tokcore import registry

    video = registry.build("modality", {"name": "video"})
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 6, 16, 16, generator=g) * 200 + 20
    noise = torch.randn(1, 3, 1, 16, 16, generator=g) * 8
    steady = clip + noise  # the same error in every frame
    signs = torch.tensor([1.0, -1, 1, -1, 1, -1]).view(1, 1, 6, 1, 1)
    flicker = clip + noise * signs  # the same error magnitude, changing sign every frame
    a, b = video.metrics(steady, clip), video.metrics(flicker, clip)
    assert a["psnr"] == pytest.approx(b["psnr"], rel=1e-6)  # per frame they are equally good
    assert a["temporal_psnr"] == 100.0 and b["temporal_psnr"] < a["psnr"]  # only one flickers
    assert float(temporal_psnr(flicker, clip)[0]) == pytest.approx(b["temporal_psnr"])
    assert "temporal_psnr" not in video.metrics(clip[:, :, :1], clip[:, :, :1])
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_psnr(clip[:, :, :1], clip[:, :, :1])


def test_rate_units_count_pixels_and_frames():
    from tokcore import registry

    assert registry.build("modality", {"name": "rgb"}).rate_units(torch.zeros(3, 24, 40)) == {"pixel": 960.0}
    video = registry.build("modality", {"name": "video"})
    assert video.rate_units(torch.zeros(3, 5, 8, 16)) == {"pixel": 640.0, "frame": 5.0}
