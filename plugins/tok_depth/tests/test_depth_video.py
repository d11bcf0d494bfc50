"""Depth video: the `depth_video` modality (per-clip normalization, 3-channel model space,
per-frame metrics that add up), the `depth_video_files` dataset (arrays and frame folders,
EgoM2P's 30 -> 8 fps sampling, crop then resize), and the motorcycle camera pan."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tokcore import registry
from tokcore.errors import ConfigError, InputError


def modality(**kw):
    return registry.build("modality", {"name": "depth_video", **kw})


def test_minmax_maps_each_samples_valid_range_onto_minus_one_one():
    depth = registry.build("modality", {"name": "depth", "normalization": "minmax"})
    x = torch.tensor([[[[2.0, 4.0, 6.0, 0.0]]], [[[10.0, 30.0, float("nan"), 20.0]]]])
    side = depth.side_info(x)
    assert side["shift"].tolist() == [4.0, 20.0] and side["scale"].tolist() == [2.0, 10.0]  # holes do not count
    n = depth.normalize(x)
    assert n[0, 0, 0].tolist() == [-1.0, 0.0, 1.0, 0.0] and n[1, 0, 0].tolist() == [-1.0, 1.0, 0.0, 0.0]
    back = depth.denormalize(n, side=side)
    valid = depth.valid_mask(x)
    assert torch.allclose(back[valid], x[valid])
    # a decoder's overshoot is clamped to the sample's range, as Cosmos's 0-255 output is
    assert depth.denormalize(torch.full_like(n, 1.5), side=side)[:, 0, 0, 0].tolist() == [6.0, 30.0]
    with pytest.raises(InputError, match="minmax normalization is per image"):
        depth.denormalize(n)


def test_model_channels_repeat_the_map_and_decoding_averages_them():
    depth = registry.build("modality", {"name": "depth", "normalization": "metric", "depth_range": [1, 5],
                                        "model_channels": 3})
    x = torch.tensor([[[[1.0, 3.0], [5.0, 0.0]]]])
    n = depth.normalize(x)
    assert n.shape == (1, 3, 2, 2) and all(torch.equal(n[:, c], n[:, 0]) for c in range(3))
    assert n[0, 0].tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    y = torch.stack([n[:, 0] - 0.2, n[:, 0], n[:, 0] + 0.2], dim=1)  # a decoder's channels disagree
    assert torch.allclose(depth.denormalize(y), depth.denormalize(n[:, :1]))
    with pytest.raises(InputError, match="model_channels"):
        registry.build("modality", {"name": "depth", "model_channels": 0})


def test_depth_video_takes_clips_and_normalizes_each_clip_as_a_whole():
    m = modality(normalization="minmax")
    x = m.validate(m.example(2))
    assert x.shape == (2, 1, 5, 16, 16)
    with pytest.raises(InputError, match=r"shape \(B, C, T, H, W\)"):
        m.validate(x[:, :, 0], sample="clip")  # a depth map is not a clip
    side = m.side_info(x)
    valid = m.valid_mask(x)
    for b in range(2):  # one min and max over all frames of the clip
        v = x[b][valid[b]]
        assert side["shift"][b] == (v.min() + v.max()) / 2 and side["scale"][b] == (v.max() - v.min()) / 2
    n = m.normalize(x)
    assert n[valid].min() == -1 and n[valid].max() == 1
    assert (n[:, :, 0][valid[:, :, 0]] > -1).all()  # a frame alone does not reach both ends: scale is per clip
    assert torch.allclose(m.denormalize(n, side=side)[valid], x[valid], rtol=1e-6)


def abs_rel_by_hand(pred: np.ndarray, target: np.ndarray) -> list[float]:
    """Per frame, mean |pred - target| / target over the frame's valid pixels (frames without any skipped)."""
    out = []
    for p, t in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
        ok = np.isfinite(t) & (t > 0)
        if ok.any():
            out.append(float(np.mean(np.abs(p[ok] - t[ok]) / t[ok])))
    return out


def test_metrics_are_per_frame_and_their_totals_add_up():
    m = modality(normalization="log")
    g = torch.Generator().manual_seed(0)
    target = 1 + 4 * torch.rand(3, 1, 4, 8, 8, generator=g)
    target[0, 0, 2] = 0.0  # a frame without any valid pixel does not count
    target[1, 0, 1, :4] = float("nan")
    pred = target.nan_to_num(2.0) * (1 + 0.1 * torch.rand(target.shape, generator=g))
    per_frame = abs_rel_by_hand(pred.double().numpy(), target.double().numpy())
    assert len(per_frame) == 11
    assert math.isclose(m.metrics(pred, target)["abs_rel"], np.mean(per_frame), rel_tol=1e-9)
    whole = m.metric_totals(pred, target)
    parts = [m.metric_totals(pred[:1], target[:1]), m.metric_totals(pred[1:], target[1:])]
    assert whole["_samples"] == 11
    for k in whole:
        assert math.isclose(whole[k], parts[0][k] + parts[1][k], rel_tol=1e-9)
    assert m.metrics_from_totals(whole)["abs_rel"] == pytest.approx(np.mean(per_frame))
    assert m.rate_units(target[0]) == {"pixel": 4 * 8 * 8, "frame": 4}


def test_pictures_show_first_middle_and_last_frames(tmp_path):
    m = modality()
    x = m.example(2)
    files = m.write_samples(x, x.nan_to_num(1.0), tmp_path / "s")
    assert [f.name for f in files] == ["s.png", "s.npz"]
    assert np.load(files[1])["target"].shape == (2, 1, 5, 16, 16)  # the whole clips
    pics = m.eval_pictures(x, {"tokenizer": x.nan_to_num(1.0)}, tmp_path / "eval")
    assert [p.name for p in pics] == ["eval-tokenizer.png"] and pics[0].stat().st_size > 0


def test_resampling_picks_the_nearest_source_frame():
    from tok_depth.video import resample_indices

    # EgoM2P: 2 seconds at 30 fps -> 16 frames at 8 fps, ffmpeg's fps filter (nearest frame)
    assert resample_indices(60, 30.0, 8.0) == [0, 4, 8, 11, 15, 19, 23, 26, 30, 34, 38, 41, 45, 49, 53, 56]
    assert resample_indices(5, 10.0, 10.0) == [0, 1, 2, 3, 4]
    assert resample_indices(3, 30.0, 8.0) == [0]


def test_the_motorcycle_pan_moves_the_real_depth_sideways():
    from tok_depth.video import motorcycle_pan

    clip = motorcycle_pan(frames=6, size=24, step=3)
    assert clip.shape == (6, 24, 24) and 2.0 < clip[clip > 0].min() and clip.max() < 5.1
    for t in range(5):
        assert np.array_equal(clip[t + 1][:, :-3], clip[t][:, 3:])
    assert (clip == 0).any()  # its holes (no ground truth) come along
    with pytest.raises(ConfigError, match="leaves the"):
        motorcycle_pan(frames=100, step=10)


@pytest.fixture
def clips(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", arr_0=rng.uniform(1, 5, (60, 30, 40)).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.uniform(1, 5, (60, 1, 30, 40)).astype(np.float32))
    (tmp_path / "frames" / "c").mkdir(parents=True)
    for t in range(6):
        mm = np.full((30, 40), 1000 * (t + 1), dtype=np.uint16)
        mm[0, 0] = 0
        Image.fromarray(mm).save(tmp_path / "frames" / "c" / f"{t:04d}.png")
    return tmp_path


def test_array_clips_are_sampled_cropped_then_resized(clips):
    ds = registry.build("dataset", {"name": "depth_video_files", "path": str(clips), "pattern": "*.np*",
                                    "split": "all", "source_fps": 30.0, "fps": 8.0, "crop_size": 24, "size": 12})
    assert [ds.key(i) for i in range(len(ds))] == ["a", "b"]
    s = ds[0]
    assert s["input"].shape == (1, 16, 12, 12) and s["input"].dtype == torch.float32
    raw = np.load(clips / "a.npz")["arr_0"]
    kept = s["meta"]["source_frames"]
    assert kept[:4] == [0, 4, 8, 11] and s["meta"]["fps"] == 8.0
    # the central 24x24 of frame 4, area-averaged 2x2 down to 12x12
    centre = raw[4, 3:27, 8:32]
    expected = centre.reshape(12, 2, 12, 2).mean(axis=(1, 3))
    assert np.allclose(s["input"][0, 1].numpy(), expected, rtol=1e-5)
    assert ds[1]["input"].shape == (1, 16, 12, 12)  # (T, 1, H, W) is read as (T, H, W)


def test_frame_folders_are_clips_in_name_order(clips):
    ds = registry.build("dataset", {"name": "depth_video_files", "path": str(clips / "frames"), "clips": "folders",
                                    "split": "all", "scale": 0.001})
    assert len(ds) == 1 and ds.key(0) == "c"
    x = ds[0]["input"]
    assert x.shape == (1, 6, 30, 40)
    assert x[0, :, 5, 5].tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert (x[0, :, 0, 0] == 0).all()  # 0 counts are holes


def test_bad_clips_and_settings_are_one_line_errors(clips):
    np.save(clips / "flat.npy", np.ones((4, 5), dtype=np.float32))
    ds = registry.build("dataset", {"name": "depth_video_files", "path": str(clips), "pattern": "flat.npy",
                                    "split": "all"})
    with pytest.raises(InputError, match=r"flat.npy: a depth clip must have shape \(T, H, W\), got \(4, 5\)"):
        ds[0]
    with pytest.raises(ConfigError, match="source_fps"):
        registry.build("dataset", {"name": "depth_video_files", "path": str(clips), "fps": 8.0})
    with pytest.raises(ConfigError, match="no .npy/.npz files"):
        registry.build("dataset", {"name": "depth_video_files", "path": str(clips), "pattern": "*.txt"})
