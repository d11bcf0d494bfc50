"""The evaluation pictures: an image grid (input | tokenizer | baselines per row) and, for clips,
an animated GIF of the same grid plus a filmstrip."""

import numpy as np
import torch
from PIL import Image

from tok_rgb.pictures import GAP, HEAD, LABEL
from tokcore import registry


def tile(sheet: np.ndarray, row: int, col: int, h: int, w: int, left: int = 0) -> np.ndarray:
    y, x = HEAD + GAP + row * (h + GAP), left + GAP + col * (w + GAP)
    return sheet[y:y + h, x:x + w]


def test_image_grid_has_a_row_per_sample_and_a_column_per_codec(tmp_path):
    rgb = registry.build("modality", {"name": "rgb"})
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 256, (3, 3, 32, 24), generator=g).float()
    columns = {"tokenizer": 255 - inputs, "JPEG": inputs.flip(-1)}
    [png] = rgb.eval_pictures(inputs, columns, tmp_path / "samples")
    assert png == tmp_path / "samples.png"
    sheet = np.asarray(Image.open(png).convert("RGB"))
    zoom = 4  # 32 px enlarged to 128
    h, w = 32 * zoom, 24 * zoom
    assert sheet.shape == (HEAD + 3 * (h + GAP) + GAP, 3 * (w + GAP) + GAP, 3)
    for r in range(3):
        for c, x in enumerate([inputs, *columns.values()]):
            want = x[r].to(torch.uint8).numpy().transpose(1, 2, 0).repeat(zoom, 0).repeat(zoom, 1)
            assert np.array_equal(tile(sheet, r, c, h, w), want)


def test_clips_play_side_by_side_and_lie_on_a_filmstrip(tmp_path):
    video = registry.build("modality", {"name": "video"})
    g = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 256, (2, 3, 5, 16, 16), generator=g).float()
    columns = {"tokenizer": inputs.roll(1, dims=2), "H.264": (inputs * 0.5).round()}
    gif, png = video.eval_pictures(inputs, columns, tmp_path / "clips")
    assert (gif.name, png.name) == ("clips.gif", "clips.png")
    zoom = 6  # 16 px enlarged to 96
    h = w = 16 * zoom
    with Image.open(gif) as animation:
        assert animation.n_frames == 5 and animation.size == (3 * (w + GAP) + GAP, HEAD + 2 * (h + GAP) + GAP)
        animation.seek(2)
        frame = np.asarray(animation.convert("RGB")).astype(int)
    want = inputs[1, :, 2].numpy().transpose(1, 2, 0).repeat(zoom, 0).repeat(zoom, 1)
    assert np.abs(tile(frame, 1, 0, h, w) - want).mean() < 12  # a GIF has a 256-colour palette
    strip = np.asarray(Image.open(png).convert("RGB"))
    assert strip.shape == (HEAD + 2 * 3 * (h + GAP) + GAP, LABEL + 5 * (w + GAP) + GAP, 3)  # 2 clips x 3 rows
    roll = columns["tokenizer"][0, :, 4].to(torch.uint8).numpy().transpose(1, 2, 0).repeat(zoom, 0).repeat(zoom, 1)
    assert np.array_equal(tile(strip, 1, 4, h, w, left=LABEL), roll)  # clip 0, tokenizer row, frame 4


def test_pictures_map_the_value_range_to_8_bits(tmp_path):
    rgb = registry.build("modality", {"name": "rgb", "value_range": [0.0, 1.0], "mean": 0.5, "std": 0.5})
    inputs = torch.ones(1, 3, 32, 32)
    [png] = rgb.eval_pictures(inputs, {"tokenizer": inputs * 0.0}, tmp_path / "unit")
    sheet = np.asarray(Image.open(png).convert("RGB"))
    assert (tile(sheet, 0, 0, 128, 128) == 255).all() and (tile(sheet, 0, 1, 128, 128) == 0).all()
