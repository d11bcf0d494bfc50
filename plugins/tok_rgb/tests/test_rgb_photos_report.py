"""The embedded photos (whole photos held out, deterministic crops) and the quick config's
report in miniature: train a few steps, tokenize and decode the held-out crops, compare with
JPEG and bicubic, write the picture grid."""

import json

import numpy as np
import pytest
import torch

from tokcore import registry
from tokcore.cli import main
from tokcore.errors import ConfigError


def test_photos_hold_out_whole_pictures_and_are_deterministic():
    train = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 8})
    val = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 8, "split": "val"})
    photo = lambda ds: {ds.key(i).split("/")[1] for i in range(len(ds))}  # noqa: E731
    assert photo(train).isdisjoint(photo(val)) and photo(val) == {"chelsea", "coffee"}
    assert len(train) == 5 * 8 and len(val) == 2 * 8
    many = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 512, "split": "val"})
    assert len({many.key(i) for i in range(len(many))}) == len(many)  # unique even where crops coincide
    s = train[3]
    assert s["input"].dtype == torch.uint8 and s["input"].shape == (3, 32, 32)
    again = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 8})
    assert again.key(3) == s["key"] and torch.equal(again[3]["input"], s["input"])
    # the crop is the photo's pixels at the recorded place, after the recorded resize
    from tok_rgb.photos import load_photo

    y, x, h, w = s["meta"]["crop"]
    name = s["key"].split("/")[1]
    assert np.array_equal(load_photo(name, 0.5)[y:y + h, x:x + w].transpose(2, 0, 1), s["input"].numpy())
    assert float(s["input"].float().std()) > 0  # real content, not padding
    registry.build("modality", {"name": "rgb"}).validate(s["input"][None], sample=s["key"])


def test_grayscale_pictures_are_three_equal_channels_and_keep_the_crops_of_the_others():
    from tok_rgb.photos import load_photo

    for name in ("camera", "brick", "grass", "gravel", "coins", "moon", "page"):
        photo = load_photo(name, 0.5)
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8
        assert np.array_equal(photo[..., 0], photo[..., 1]) and np.array_equal(photo[..., 0], photo[..., 2])
        assert photo.std() > 10  # a picture, not a constant
    retina = load_photo("retina", 0.5)
    assert retina.shape == (706, 706, 3) and not np.array_equal(retina[..., 0], retina[..., 1])
    # crop positions are seeded per photo, so naming more training photos moves no existing crop
    base = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 4, "train_photos": ["rocket"]})
    more = registry.build("dataset", {"name": "skimage_photos", "crops_per_photo": 4,
                                      "train_photos": ["rocket", "camera", "grass"]})
    assert len(more) == 12 and [base[i]["meta"]["crop"] for i in range(4)] == [more[i]["meta"]["crop"] for i in range(4)]
    assert {more.key(i).split("/")[1] for i in range(len(more))} == {"rocket", "camera", "grass"}


@pytest.mark.parametrize("bad, match", [({"val_photos": ["astronaut"]}, "in both splits"),
                                        ({"train_photos": ["lena"]}, "unknown photo 'lena'"),
                                        ({"size": 400, "scale": 0.5}, "smaller than crops")])
def test_photo_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        registry.build("dataset", {"name": "skimage_photos", **bad})


def test_quick_config_resolves(capsys):
    assert main(["train", "--config", "tok-rgb:quick", "data.crops_per_photo=2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "grid (4, 4) = 16 per sample" in out and "codebook 16777216" in out


def test_train_then_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tok-rgb:quick", "--output", str(run), "data.crops_per_photo=4",
                 "train.steps=2", "train.batch_size=4", "train.log_every=1"]) == 0
    assert main(["rgb-report", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "8 val crops of 32x32 (chelsea, coffee)" in out and "JPEG q=" in out and "bicubic 1/8" in out
    result = json.loads((run / "report" / "metrics.json").read_text())
    m = result["metrics"]
    assert result["bits_per_image"] == 384 and m["tokenizer"]["bpp"] == pytest.approx(384 / 1024)
    assert m["jpeg"]["bpp"] >= m["tokenizer"]["bpp"] and m["bicubic"]["bpp"] == pytest.approx(24 / 64)
    assert all(0 < v["psnr"] < 60 and -1 <= v["ssim"] <= 1 for v in m.values())
    grid = run / "report" / "rgb_val.png"
    from PIL import Image

    with Image.open(grid) as im:  # 4 columns of 128 px tiles, 8 rows
        assert im.size == (4 * (128 + 4) + 4, 16 + 8 * (128 + 4) + 4)
