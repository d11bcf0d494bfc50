import pytest
import torch

from tokcore import InputError, registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-rgb")


def test_normalization_maps_0_255_to_minus1_1_and_back():
    rgb = registry.build("modality", {"name": "rgb"})
    x = torch.tensor([0, 127.5, 255]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    n = rgb.normalize(rgb.validate(x))
    assert torch.allclose(n[0, :, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(rgb.denormalize(n), x)


def test_bad_images_are_rejected_with_the_sample_and_the_fix():
    rgb = registry.build("modality", {"name": "rgb"})
    with pytest.raises(InputError, match=r"img7: rgb input needs 3 channels .* got shape \(1, 4, 8, 8\)"):
        rgb.validate(torch.zeros(1, 4, 8, 8), sample="img7")
    with pytest.raises(InputError, match=r"img7: rgb values span \[0, 300\].*rescale"):
        rgb.validate(torch.full((1, 3, 8, 8), 300.0).index_fill_(2, torch.tensor([0]), 0.0), sample="img7")


def test_video_is_channels_first_over_time():
    video = registry.build("modality", {"name": "video"})
    clip = video.example(2)
    assert clip.shape == (2, 3, 4, 16, 16)
    with pytest.raises(InputError, match="shape"):
        video.validate(clip.permute(0, 2, 1, 3, 4)[:, :, :, :8])  # (B, T, C, H, W) by mistake


def test_pictures_in_0_1_and_wrong_dtypes_are_caught():
    rgb = registry.build("modality", {"name": "rgb"})
    with pytest.raises(InputError, match=r"cat: rgb values are fractions in \[0, 1\] .* multiply by 255"):
        rgb.validate(torch.rand(3, 8, 8), sample="cat", batched=False)
    assert rgb.validate(torch.zeros(3, 8, 8), batched=False).abs().sum() == 0  # a black frame is fine
    with pytest.raises(InputError, match=r"cat: rgb input has dtype torch.bool; give floats or integers"):
        rgb.validate(torch.zeros(3, 8, 8, dtype=torch.bool), sample="cat", batched=False)
    with pytest.raises(InputError, match=r"cat: rgb values span \[0, 65535\]"):  # 16-bit not rescaled
        rgb.validate(torch.full((3, 8, 8), 65535, dtype=torch.int32).index_fill_(1, torch.tensor([0]), 0),
                     sample="cat", batched=False)
    unit = registry.build("modality", {"name": "rgb", "value_range": [0, 1], "mean": 0.5, "std": 0.5})
    assert unit.validate(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)  # [0, 1] when configured so


def test_decode_writes_a_png_per_image_and_an_mp4_plus_npy_per_clip_as_documented(tmp_path):
    # docs (README, docs/token-store.md, the module docstring): images as PNG only, since an
    # 8-bit PNG holds a 0-255 picture exactly; clips as mp4 plus the raw .npy, since mp4 is lossy
    import numpy as np
    from PIL import Image

    rgb = registry.build("modality", {"name": "rgb"})
    image = torch.randint(0, 256, (3, 8, 8)).float()
    written = rgb.write_decoded(image, tmp_path / "cat")
    assert [p.name for p in written] == ["cat.png"] and sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]
    assert np.array_equal(np.asarray(Image.open(written[0])), image.permute(1, 2, 0).numpy().astype(np.uint8))
    video = registry.build("modality", {"name": "video"})
    clip = video.example(1)[0].float()
    assert [p.name for p in video.write_decoded(clip, tmp_path / "clip", {"fps": 10})] == ["clip.mp4", "clip.npy"]
    assert np.array_equal(np.load(tmp_path / "clip.npy"), clip.numpy())


def test_a_0_1_image_is_drawn_in_full_range_not_black(tmp_path):
    import numpy as np
    from PIL import Image

    rgb = registry.build("modality", {"name": "rgb", "value_range": [0.0, 1.0], "mean": 0.5, "std": 0.5})
    image = torch.rand(3, 8, 8)
    pixels = np.asarray(Image.open(rgb.write_decoded(image, tmp_path / "x")[0]))
    assert np.abs(pixels.astype(float) - image.permute(1, 2, 0).numpy() * 255).max() <= 0.5
