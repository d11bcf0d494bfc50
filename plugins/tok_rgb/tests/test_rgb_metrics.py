"""PSNR and SSIM against scikit-image on real photos; the modality's metrics; the baselines."""

import numpy as np
import pytest
import torch

from tok_rgb.codecs import bicubic, jpeg, jpeg_at_bpp, scan_start
from tok_rgb.metrics import gaussian_window, image_metrics, psnr, ssim

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
