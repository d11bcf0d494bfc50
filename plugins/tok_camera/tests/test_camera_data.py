"""Camera datasets: the generator, the file loaders (npy/npz, TUM, matrix files, x y z yaw
pitch roll), conventions and windowing; real offline data when it is installed."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tok_camera.datasets import CameraFiles, CameraSynthetic, _matrix_to_quaternion
from tok_camera.synthetic import camera_clip, camera_clips
from tokcore import registry
from tokcore.errors import ConfigError
from tokcore.batch import Collate

VISP = Path("/usr/share/visp-images-data/ViSP-images/mbt-depth/Castle-simu/CameraPose")
MRPT = Path("/usr/share/mrpt/datasets/kf-slam_6D_demo_ground_truth_robot_path.txt")


def test_generator_is_deterministic_and_valid():
    a = CameraSynthetic(num_clips=20, frames=30, split="all")
    b = CameraSynthetic(num_clips=40, frames=30, split="all")
    assert torch.equal(a[7]["input"], b[7]["input"]) and a.key(7) == "camera-synthetic/0/7"
    cam = registry.build("modality", {"name": "camera"})
    clips = torch.stack([a[i]["input"] for i in range(len(a))])
    cam.validate(clips)
    train, val = CameraSynthetic(num_clips=20, split="train"), CameraSynthetic(num_clips=20, split="val")
    assert len(train) == 18 and len(val) == 2 and not {train.key(i) for i in range(18)} & {val.key(0), val.key(1)}


def test_generated_motion_is_plausible():
    clips = camera_clips(200, 60, seed=3)
    speed = np.linalg.norm(np.diff(clips[:, :, :3, 3], axis=1), axis=-1).mean(1) * 30  # m/s
    assert 0.0 < speed.min() and speed.max() < 2.5
    walking = speed > 0.6
    assert 0.4 < walking.mean() < 0.8  # walk_fraction 0.6
    height = -clips[:, :, 1, 3]
    assert np.all((height > 1.3) & (height < 1.9))
    step_angle = np.degrees(np.arccos(np.clip((np.trace(
        np.transpose(clips[:, :-1, :3, :3], (0, 1, 3, 2)) @ clips[:, 1:, :3, :3], axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert step_angle.max() < 15  # below 450 deg/s at 30 fps


def test_the_camera_mask_is_none_and_batches_have_9_channels():
    cam = registry.build("modality", {"name": "camera"})
    batch = Collate(cam)([CameraSynthetic(num_clips=4, frames=8, split="all")[i] for i in range(4)])
    assert batch["input"].shape == (4, 8, 9) and batch["mask"] is None


def _write_tum(path: Path, poses: np.ndarray) -> None:
    q = _matrix_to_quaternion(poses[:, :3, :3])
    path.write_text("# timestamp tx ty tz qx qy qz qw\n" + "".join(
        f"{i * 0.1:.2f} " + " ".join(f"{v:.12f}" for v in (*poses[i, :3, 3], *q[i])) + "\n" for i in range(len(poses))))


def test_tum_npy_npz_and_windowing(tmp_path):
    poses = camera_clip(50, np.random.default_rng(0))
    _write_tum(tmp_path / "walk.txt", poses)
    tum = CameraFiles(str(tmp_path / "walk.txt"), frames=20, stride=10, split="all")
    assert len(tum) == 4 and tum.key(1) == "walk/10"
    assert np.allclose(tum[1]["input"].numpy(), poses[10:30], atol=1e-5)
    np.save(tmp_path / "walk34.npy", poses[:, :3, :])
    npy = CameraFiles(str(tmp_path / "walk34.npy"), frames=20, stride=15, split="all")
    assert len(npy) == 3 and np.allclose(npy[2]["input"].numpy(), poses[30:50], atol=1e-6)
    np.savez(tmp_path / "two.npz", poses=np.stack([poses, poses]))
    npz = CameraFiles(str(tmp_path / "two.npz"), frames=50, split="all")
    assert [npz.key(i) for i in range(2)] == ["two/0/0", "two/1/0"]
    both = CameraFiles(str(tmp_path / "walk*"), frames=20, stride=10, split="all")
    assert len(both) == 4 + 4


def test_direction_and_conventions(tmp_path):
    poses = camera_clip(10, np.random.default_rng(1))
    np.save(tmp_path / "w2c.npy", np.linalg.inv(poses))
    inv = CameraFiles(str(tmp_path / "w2c.npy"), frames=10, direction="world_to_camera", split="all")
    assert np.allclose(inv[0]["input"].numpy(), poses, atol=1e-5)
    gl = poses.copy()
    gl[:, :3, :3] = gl[:, :3, :3] @ np.diag([1.0, -1.0, -1.0])  # the same cameras, OpenGL axes
    np.save(tmp_path / "gl.npy", gl)
    back = CameraFiles(str(tmp_path / "gl.npy"), frames=10, convention="opengl", split="all")
    assert np.allclose(back[0]["input"].numpy(), poses, atol=1e-5)


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "bad.txt").write_text("0 1 2 3\n")
    with pytest.raises(ConfigError, match="tum rows have 8 values, these have 4"):
        CameraFiles(str(tmp_path / "bad.txt"))
    with pytest.raises(ConfigError, match="no such file"):
        CameraFiles(str(tmp_path / "missing.txt"))
    np.save(tmp_path / "flat.npy", np.zeros((10, 16)))
    with pytest.raises(ConfigError, match=r"expected \(N, 4, 4\) or \(N, 3, 4\)"):
        CameraFiles(str(tmp_path / "flat.npy"))


@pytest.mark.skipif(not VISP.is_dir(), reason="Debian visp-images-data is not installed")
def test_visp_castle_simu_poses_load_and_validate():
    ds = CameraFiles(str(VISP), format="matrix", direction="world_to_camera", frames=20, stride=10, split="all")
    assert len(ds) == 3
    registry.build("modality", {"name": "camera"}).validate(ds[0]["input"], sample=ds.key(0), batched=False)


@pytest.mark.skipif(not MRPT.is_file(), reason="Debian mrpt-common is not installed")
def test_mrpt_robot_path_loads_and_validates():
    ds = CameraFiles(str(MRPT), format="xyzypr", convention="robot", frames=60, stride=60, split="all")
    assert len(ds) >= 9
    cam = registry.build("modality", {"name": "camera"})
    cam.validate(torch.stack([ds[i]["input"] for i in range(len(ds))]), sample="mrpt")


def test_a_file_that_is_not_an_array_is_named(tmp_path):
    (tmp_path / "poses.npy").write_bytes(np.random.default_rng(0).bytes(64))
    with pytest.raises(ConfigError, match=r"poses.npy is not a NumPy array file: it does not begin with the "
                                          r"\.npy or \.npz signature") as err:
        CameraFiles(str(tmp_path / "poses.npy"))
    assert err.value.key == "path" and "pickle" not in str(err.value)
