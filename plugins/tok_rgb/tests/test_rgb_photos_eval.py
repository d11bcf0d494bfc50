"""The embedded photos (whole photos held out, deterministic crops) and the quick config's
evaluation in miniature: train a few steps, then `tokcore eval` on the held-out crops beside
JPEG and bicubic, with the picture grid."""

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


def test_train_then_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tok-rgb:quick", "--output", str(run), "data.crops_per_photo=4",
                 "train.steps=2", "train.batch_size=4", "train.log_every=1"]) == 0
    assert main(["eval", "--checkpoint", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "8 samples of split 'val'" in out and "bicubic (" in out
    # a 32x32 JPEG cannot be coded in 384 bits: no row at the tokenizer's rate, points above it
    assert "jpeg: no setting fits the tokenizer's 384 bits per sample" in out
    cols = json.loads((run / "eval-val" / "metrics.json").read_text())["columns"]
    tok = cols["tokenizer"]
    assert tok["bits_per_sample"] == 384 and tok["bits_per_pixel"] == pytest.approx(384 / 1024)
    assert "jpeg" not in cols and cols["jpeg@4x"]["bits_per_sample"] <= 4 * 384
    assert cols["bicubic"]["bits_per_sample"] == 24 * 16  # 1/8: 4x4 pixels
    assert all(0 < c["metrics"]["psnr"] < 60 and -1 <= c["metrics"]["ssim"] <= 1
               for c in (cols["tokenizer"], cols["jpeg@4x"], cols["bicubic"]))
    from PIL import Image

    with Image.open(run / "eval-val" / "samples.png") as im:  # input | tokenizer | jpeg | bicubic, 8 rows
        assert im.size[0] > im.size[1] / 3
