from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tokcore import registry
from tokcore.errors import ConfigError, InputError
from tok_depth.datasets import MOTORCYCLE_BASELINE_M, MOTORCYCLE_DOFFS_PX, MOTORCYCLE_FOCAL_PX, motorcycle_depth
from tok_depth.readers import disparity_to_depth, read_depth
from tok_depth.resize import masked_resize

CASTLE = Path("/usr/share/visp-images-data/ViSP-images/mbt-depth/Castle-simu/Depth")
CASTLE_SCALE = 0.000030518  # metres per count, as ViSP's own Castle-simu example reads them


def test_png16_with_scale_npy_and_npz(tmp_path):
    mm = np.array([[0, 1000], [2500, 65535]], dtype=np.uint16)
    Image.fromarray(mm).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", np.array([[1.5, np.nan], [np.inf, -1.0]], dtype=np.float32))
    np.savez(tmp_path / "c.npz", depth=np.full((1, 2, 2), 4.0, dtype=np.float32), other=np.zeros(3))
    assert np.array_equal(read_depth(tmp_path / "a.png", 0.001), mm.astype(np.float32) * np.float32(0.001))
    ds = registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "scale": 0.001, "split": "all",
                                    "array": None})
    by_key = {ds[i]["key"]: ds[i]["input"] for i in range(len(ds))}
    assert set(by_key) == {"a", "b", "c"}
    assert by_key["a"].shape == (1, 2, 2) and by_key["a"][0, 0, 0] == 0.0
    assert torch.allclose(by_key["a"][0, 1], torch.tensor([2.5, 65.535]))
    assert by_key["b"][0].tolist() == [[pytest.approx(0.0015), 0.0], [0.0, 0.0]]  # every hole becomes 0
    npz = registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "pattern": "*.npz",
                                     "array": "depth", "split": "all"})
    assert torch.equal(npz[0]["input"], torch.full((1, 2, 2), 4.0))


def test_an_rgb_png_is_refused_with_the_fix(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="rgb.png: a depth PNG must be 16-bit single-channel"):
        read_depth(tmp_path / "rgb.png")


@pytest.mark.skipif(not CASTLE.is_dir(), reason="Debian visp-images-data is not installed")
def test_real_16bit_depth_from_castle_simu_through_a_png(tmp_path):
    raw = (CASTLE / "Depth_0001.bin").read_bytes()
    h, w = np.frombuffer(raw[:8], dtype="<u4")
    counts = np.frombuffer(raw[8:], dtype="<u2").reshape(h, w)
    Image.fromarray(counts).save(tmp_path / "castle.png")  # a real 16-bit depth PNG
    ds = registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "scale": CASTLE_SCALE,
                                    "split": "all"})
    depth = ds[0]["input"][0].numpy()
    assert depth.shape == (480, 640)
    assert np.array_equal(depth, counts.astype(np.float32) * np.float32(CASTLE_SCALE))
    valid = depth > 0
    assert 0.05 < valid.mean() < 1.0 and 0.01 < depth[valid].min() and depth[valid].max() <= 2.0  # far clip 2 m


def test_disparity_to_depth_and_its_holes():
    d = np.array([[10.0, 0.0, -3.0, np.inf, np.nan, 20.0]])
    depth = disparity_to_depth(d, focal_length=500.0, baseline=0.1)
    assert depth.tolist()[0] == pytest.approx([5.0, 0.0, 0.0, 0.0, 0.0, 2.5])
    assert disparity_to_depth(np.array([10.0]), 500.0, 0.1, doffs=15.0)[0] == pytest.approx(2.0)


def test_disparity_files_need_the_calibration(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((4, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="focal_length"):
        registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "disparity": True})
    ds = registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "disparity": True,
                                    "focal_length": 100.0, "baseline": 0.5, "split": "all"})
    assert torch.allclose(ds[0]["input"], torch.full((1, 4, 4), 50.0))


def test_resizing_never_blends_holes_into_depth():
    depth = np.full((8, 8), 4.0, dtype=np.float32)
    depth[:, :3] = 0.0  # a hole over 3 of 8 columns
    depth[0, 7] = np.nan
    small = masked_resize(depth, (4, 4))
    assert np.all((small == 0.0) | np.isclose(small, 4.0))  # never a mix of 4 and 0
    assert (small[:, 0] == 0).all() and np.isclose(small[:, 1:], 4.0).all()  # half-valid cells stay valid
    big = masked_resize(depth, (16, 16))
    assert np.all((big == 0.0) | (np.abs(big - 4.0) < 1e-5))
    near = masked_resize(depth, (16, 16), mode="nearest")
    assert set(np.unique(near[np.isfinite(near)])) <= {0.0, 4.0}


def test_motorcycle_is_real_depth_with_disjoint_train_and_held_out_crops():
    full = motorcycle_depth(1)
    assert full.shape == (500, 741)
    valid = full > 0
    assert 0.05 < 1 - valid.mean() < 0.1  # Middlebury leaves about 7% without ground truth
    lo = MOTORCYCLE_FOCAL_PX * MOTORCYCLE_BASELINE_M / (60 + MOTORCYCLE_DOFFS_PX)
    assert full[valid].min() >= lo * 0.999 and full[valid].max() < 5.1
    train = registry.build("dataset", {"name": "depth_motorcycle", "split": "train", "train_crops": 64})
    val = registry.build("dataset", {"name": "depth_motorcycle", "split": "val"})
    assert len(train) == 64 and len(val) > 8
    edge = round(motorcycle_depth(2).shape[1] * 0.75)
    for ds, inside in ((train, lambda x: x + 32 <= edge), (val, lambda x: x >= edge)):
        for i in range(len(ds)):
            s = ds[i]
            y, x, _, _ = s["meta"]["box"]
            assert s["input"].shape == (1, 32, 32) and inside(x)
            assert (s["input"] > 0).float().mean() >= 0.5
    keys = [train.key(i) for i in range(len(train))] + [val.key(i) for i in range(len(val))]
    assert len(set(keys)) == len(keys)


def test_a_file_that_is_not_an_array_fails_its_sample_naming_the_file(tmp_path):
    from tokcore.batch import GuardedDataset

    np.save(tmp_path / "a.npy", np.ones((4, 4), np.float32))
    (tmp_path / "b.npy").write_text("depth,1.0\n")
    ds = GuardedDataset(registry.build("dataset", {"name": "depth_files", "path": str(tmp_path), "split": "all"}))
    assert "error" not in ds[0]
    error = ds[1]["error"]
    assert error.startswith(f"b: cannot load: {tmp_path / 'b.npy'} is not a NumPy array file: it holds text")
    assert "pickle" not in error
    np.savez(tmp_path / "c.npz", depth=np.ones((2, 2)))
    with pytest.raises(InputError, match=r"c.npz: .*c.npz has no array 'disparity'; it has depth"):
        read_depth(tmp_path / "c.npz", array="disparity")
