"""Image folders and WebDataset shards: formats, conversions, views, keys, splits, failures."""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from tok_rgb.datasets import ImageFolder, ImageShards
from tokcore import ConfigError, registry
from tokcore.batch import GuardedDataset


def save(path, array, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    else:
        Image.fromarray(array).save(path, **kw)


def ramp(h=20, w=30):
    """Rows count 0, 10, 20, ... down; columns 0, 5, 10 ... across (red, green); blue 7."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (np.arange(h) * 10)[:, None]
    img[..., 1] = (np.arange(w) * 5)[None, :]
    img[..., 2] = 7
    return img


def test_formats_are_read_as_rgb_with_keys_from_relative_paths(tmp_path):
    img = ramp()
    save(tmp_path / "a" / "one.png", img)
    save(tmp_path / "a" / "b" / "two.webp", img, lossless=True)
    save(tmp_path / "three.npy", img)
    save(tmp_path / "chw.npy", img.transpose(2, 0, 1).copy())
    save(tmp_path / "four.jpg", img, quality=100)
    (tmp_path / "notes.txt").write_text("not a picture")
    ds = registry.build("dataset", {"name": "image_folder", "path": str(tmp_path), "split": "all"})
    keys = [ds.key(i) for i in range(len(ds))]
    assert keys == ["a/b/two", "a/one", "chw", "four", "three"]
    for i in range(len(ds)):
        s = ds[i]
        assert s["key"] == keys[i] and s["input"].shape == (3, 20, 30) and s["input"].dtype == torch.uint8
        tol = 8 if keys[i] == "four" else 0  # jpeg is lossy (chroma subsampled) even at quality 100
        assert (s["input"].permute(1, 2, 0).int() - torch.from_numpy(img).int()).abs().max() <= tol, keys[i]


def test_grayscale_16bit_and_opaque_alpha_are_converted(tmp_path):
    gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
    save(tmp_path / "gray.png", gray)
    save(tmp_path / "deep.png", (gray.astype(np.uint16) * 257))  # 16-bit PNG: 257 * v -> v
    rgba = np.dstack([ramp(10, 20), np.full((10, 20), 255, np.uint8)])
    save(tmp_path / "opaque.png", rgba)
    ds = ImageFolder(str(tmp_path), split="all")
    got = {ds.key(i): ds[i]["input"] for i in range(len(ds))}
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    for key in ("gray", "deep"):
        assert torch.equal(got[key], torch.from_numpy(gray)[None].expand(3, -1, -1)), key
    assert torch.equal(got["opaque"], torch.from_numpy(ramp(10, 20)).permute(2, 0, 1))


def test_transparency_is_rejected_naming_the_file_or_composited(tmp_path):
    rgba = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 0, np.uint8)])
    rgba[0, 0, 3] = 255
    save(tmp_path / "logo.png", rgba)
    failed = GuardedDataset(ImageFolder(str(tmp_path), split="all"))[0]
    assert "logo.png: image has transparent pixels; set the dataset's background" in failed["error"]
    x = ImageFolder(str(tmp_path), split="all", background=[0, 0, 255])[0]["input"]
    assert x[:, 0, 0].tolist() == [200, 200, 200] and x[:, 1, 1].tolist() == [0, 0, 255]


def test_unsupported_pictures_fail_per_sample_with_the_file(tmp_path):
    Image.new("CMYK", (8, 8)).save(tmp_path / "print.jpg")
    save(tmp_path / "flat.npy", np.zeros((8, 8, 5), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    save(tmp_path / "fine.png", ramp())
    ds = GuardedDataset(ImageFolder(str(tmp_path), split="all"))
    errors = {ds[i]["key"]: ds[i].get("error") for i in range(len(ds))}
    assert errors["fine"] is None
    assert "print.jpg: image mode CMYK is not supported" in errors["print"]
    assert "flat.npy: picture of shape (8, 8, 5) is not an image" in errors["flat"]
    assert "broken: cannot load" in errors["broken"]


def test_resize_crop_and_flip(tmp_path):
    save(tmp_path / "r.png", ramp(20, 30))
    top = ImageFolder(str(tmp_path), split="all", crop_size=[10, 30], crop="top")[0]
    bottom = ImageFolder(str(tmp_path), split="all", crop_size=[10, 30], crop="bottom")[0]
    center = ImageFolder(str(tmp_path), split="all", crop_size=[10, 10], crop="center")[0]
    assert top["input"][0, :, 0].tolist() == list(range(0, 100, 10))
    assert bottom["input"][0, :, 0].tolist() == list(range(100, 200, 10))
    assert center["input"][0, :, 0].tolist() == list(range(50, 150, 10))  # rows 5-14
    assert center["input"][1, 0, :].tolist() == list(range(50, 100, 5))  # columns 10-19
    assert center["meta"]["crop"] == [5, 10, 10, 10] and center["meta"]["flip"] is False
    flipped = ImageFolder(str(tmp_path), split="all", flip="horizontal")[0]["input"]
    assert torch.equal(flipped, torch.from_numpy(ramp(20, 30)).permute(2, 0, 1).flip(-1))
    small = ImageFolder(str(tmp_path), split="all", size=10)[0]  # shorter side 20 -> 10
    assert small["input"].shape == (3, 10, 15) and small["meta"]["resize"] == [10, 15]
    # antialiased resize of a linear ramp: each row the mean of two (edges clamp the filter)
    assert np.allclose(small["input"][0, 1:-1, 0].float().numpy(), np.arange(1, 9) * 20 + 5, atol=1)


def test_random_views_depend_only_on_seed_and_index(tmp_path):
    for i in range(8):
        save(tmp_path / f"{i}.png", ramp(20, 30))
    def views(seed):
        ds = ImageFolder(str(tmp_path), split="all", crop_size=12, crop="random", flip="random", seed=seed)
        return [(ds[i]["meta"]["crop"], ds[i]["meta"]["flip"]) for i in range(len(ds))]
    assert views(0) == views(0)
    assert views(0) != views(1)
    assert len({tuple(c) for c, _ in views(0)}) > 1 and {f for _, f in views(0)} == {True, False}


def test_splits_are_disjoint_and_bad_config_is_named(tmp_path):
    for i in range(10):
        save(tmp_path / f"{i}.png", ramp(8, 8))
    train, val = (ImageFolder(str(tmp_path), split=s, val_fraction=0.3) for s in ("train", "val"))
    keys = lambda d: {d.key(i) for i in range(len(d))}
    assert len(val) == 3 and len(train) == 7 and not keys(train) & keys(val)
    save(tmp_path / "0.jpg", ramp(8, 8))
    with pytest.raises(ConfigError, match=r"0\.jpg' and .*0\.png' would both have sample key '0'"):
        ImageFolder(str(tmp_path))
    (tmp_path / "0.jpg").unlink()
    with pytest.raises(ConfigError, match="crop: unknown crop 'middle'; use one of top, center, bottom, random"):
        ImageFolder(str(tmp_path), crop="middle")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="path: '.*empty' has no pictures"):
        ImageFolder(str(tmp_path / "empty"))
    crop_too_big = GuardedDataset(ImageFolder(str(tmp_path), split="all", crop_size=9))[0]
    assert "crop 9x9 is larger than the 8x8 picture" in crop_too_big["error"]


def make_shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_shards_group_members_into_samples_and_read_by_seeking(tmp_path):
    a, b = ramp(12, 16), 255 - ramp(12, 16)
    make_shard(tmp_path / "train-000.tar", [("s/0001.png", png(a)), ("s/0001.json", b"{}"),
                                            ("s/0001.depth.png", png(b)), ("s/0002.png", png(b)),
                                            ("s/0003.cls", b"3")])
    make_shard(tmp_path / "train-001.tar", [("0004.jpg", png(a))])  # content sniffed, not trusted to suffix
    ds = registry.build("dataset", {"name": "image_shards", "path": str(tmp_path), "split": "all"})
    assert [ds.key(i) for i in range(len(ds))] == ["train-000/s/0001", "train-000/s/0002", "train-001/0004"]
    assert torch.equal(ds[0]["input"], torch.from_numpy(a).permute(2, 0, 1))
    assert torch.equal(ds[1]["input"], torch.from_numpy(b).permute(2, 0, 1))
    assert ds[2]["meta"]["source"].endswith("train-001.tar:0004.jpg")
    depth = ImageShards(str(tmp_path / "train-000.tar"), ext="depth.png", split="all")
    assert len(depth) == 1 and torch.equal(depth[0]["input"], torch.from_numpy(b).permute(2, 0, 1))


def test_damaged_shards(tmp_path):
    make_shard(tmp_path / "x.tar", [("0.png", png(ramp())), ("1.png", png(ramp()))])
    data = (tmp_path / "x.tar").read_bytes()
    ds = ImageShards(str(tmp_path / "x.tar"), split="all")
    (tmp_path / "x.tar").write_bytes(data[:1200])  # cut inside the second member's header
    guarded = GuardedDataset(ds)
    assert any("truncated" in (guarded[i].get("error") or "") for i in range(len(ds)))
    with tarfile.open(tmp_path / "z.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "x.tar", arcname="0.png")
    (tmp_path / "z.tar").write_bytes((tmp_path / "z.tar.gz").read_bytes())
    with pytest.raises(ConfigError, match="cannot read shard .*z.tar' as an uncompressed tar"):
        ImageShards(str(tmp_path / "z.tar"))


def test_unreadable_files_are_named_by_their_path_in_training(tmp_path):
    import json
    from pathlib import Path

    from tokcore.cli import main

    quick = "tok-rgb:quick"
    pictures = tmp_path / "pictures"
    for i in range(11):
        save(pictures / f"{i:02d}.png", np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (pictures / "03.png").write_bytes(b"these bytes are no picture")
    (pictures / "05.png").write_bytes((pictures / "05.png").read_bytes()[:80])  # truncated
    (pictures / "07.png").unlink()
    (pictures / "07.npy").write_text("r,g,b\n1,2,3\n")                          # a CSV named .npy
    run = tmp_path / "run"
    assert main(["train", "--config", str(quick), "--output", str(run), "data.name=image_folder",
                 f"data.path={pictures}", "train.steps=3", "train.batch_size=4",
                 "train.eval_batches=1"]) == 0
    failed = {}
    for line in (run / "failed_samples.rank0.jsonl").read_text().splitlines():
        row = json.loads(line)
        failed[row["key"]] = row["error"]
    assert set(failed) == {"03", "05", "07"}
    assert failed["03"] == (f"03: cannot load: {pictures / '03.png'}: not a picture Pillow can read (no known image "
                            "format in its 26 bytes); remove it or convert it to PNG or JPEG")
    assert failed["05"].startswith(f"05: cannot load: {pictures / '05.png'}: damaged or truncated PNG file")
    assert failed["07"].startswith(f"07: cannot load: {pictures / '07.npy'} is not a NumPy array file: it holds text")
    assert not any("BytesIO" in e or "pickle" in e for e in failed.values())
