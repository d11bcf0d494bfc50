"""Camera trajectory datasets: the embedded generator, and poses read from files.

Every dataset yields clips of camera-to-world poses `(frames, 4, 4)` in the OpenCV camera
convention as `{"key", "input", "meta"}` samples; the train/val split is
`tokcore.api.split_indices` over clips (deterministic for a given `split_seed`).
"""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tok_camera.geometry import CONVENTIONS, euler_zyx_to_matrix, quaternion_to_matrix
from tok_camera.synthetic import CameraParams, camera_clip
from tokcore.api import ConfigError, Dataset, InputError, load_array, split_indices


class CameraSynthetic(Dataset):
    """Generated head-mounted camera trajectories of a walking or seated wearer
    (`tok_camera.synthetic` documents the motion model and its numbers). Clip i is the same
    for a given seed whatever `num_clips` is. Key: `camera-synthetic/<seed>/<i>`.

    Args:
        num_clips: clips in all splits together.
        frames: frames per clip.
        fps: frame rate the clips are sampled at.
        walk_fraction: share of clips in which the wearer walks (the others: seated).
        seed: seed of the generator.
        split: "train", "val" or "all".
        val_fraction: share of clips held out for "val".
        split_seed: seed of the train/val assignment.
    """

    example_config = {"num_clips": 8, "frames": 16, "val_fraction": 0.25}

    def __init__(self, num_clips: int = 2048, frames: int = 60, fps: float = 30.0, walk_fraction: float = 0.6,
                 seed: int = 0, split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.1,
                 split_seed: int = 0):
        if num_clips < 1 or frames < 2:
            raise ConfigError(f"need num_clips >= 1 and frames >= 2, got {num_clips} and {frames}", key="num_clips")
        self.params = CameraParams(fps=fps, walk_fraction=walk_fraction)
        self.seed = seed
        self.indices = split_indices(num_clips, split, val_fraction, split_seed)
        clips = [camera_clip(frames, np.random.default_rng([seed, int(i)]), self.params) for i in self.indices]
        self.clips = np.stack(clips).astype(np.float32) if clips else np.zeros((0, frames, 4, 4), np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return f"camera-synthetic/{self.seed}/{int(self.indices[index])}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"key": self.key(index), "input": torch.from_numpy(self.clips[index].copy()),
                "meta": {"source": "tok_camera.synthetic", "seed": self.seed, "clip": int(self.indices[index])}}


def _rows(path: Path) -> np.ndarray:
    """Numbers of a whitespace- or comma-separated text file, skipping # and % comments."""
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#")[0].split("%")[0].replace(",", " ").strip()
        if line:
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError:
                raise ConfigError(f"'{path}': cannot read '{line[:60]}' as numbers", key="path") from None
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ConfigError(f"'{path}': rows have different numbers of values ({sorted(widths)})", key="path")
    return np.asarray(rows, dtype=np.float64)


def _to_4x4(m: np.ndarray, source: str) -> np.ndarray:
    if m.shape[-2:] == (3, 4):
        last = np.zeros((*m.shape[:-2], 1, 4))
        last[..., 0, 3] = 1.0
        m = np.concatenate([m, last], -2)
    if m.shape[-2:] != (4, 4):
        raise ConfigError(f"'{source}' holds poses of shape {m.shape}; expected (N, 4, 4) or (N, 3, 4)", key="path")
    return m


def read_poses(path: Path, fmt: str) -> np.ndarray:
    """One trajectory `(N, 4, 4)` (float64) from `path` in format `fmt`:

    * `npy`/`npz`: `(N, 4, 4)` or `(N, 3, 4)`, or `(M, N, ...)` (then M trajectories: `(M, N, 4, 4)`);
    * `tum`: lines `timestamp tx ty tz qx qy qz qw` (TUM RGB-D benchmark);
    * `xyzypr`: lines `x y z yaw pitch roll` (radians, R = Rz(yaw) Ry(pitch) Rx(roll); MRPT paths);
    * `kitti`: lines of 12 numbers, a row-major 3x4 matrix;
    * `matrix`: a directory of text files (sorted by name), each one 4x4 or 3x4 matrix (ViSP).
    """
    if fmt in ("npy", "npz"):
        try:
            data = load_array(path)  # an .npz: its first array
        except InputError as exc:  # missing, not a numpy file, damaged: named in the message
            raise ConfigError(str(exc), key="path") from None
        return _to_4x4(np.asarray(data, dtype=np.float64), str(path))
    if fmt == "matrix":
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ConfigError(f"'{path}' holds no matrix files", key="path")
        return np.stack([_to_4x4(_rows(f), str(f)) for f in files])
    a = _rows(path)
    want = {"tum": 8, "xyzypr": 6, "kitti": 12}[fmt]
    if a.shape[1] != want:
        raise ConfigError(f"'{path}': {fmt} rows have {want} values, these have {a.shape[1]}", key="format")
    poses = np.tile(np.eye(4), (len(a), 1, 1))
    if fmt == "tum":
        poses[:, :3, 3] = a[:, 1:4]
        poses[:, :3, :3] = quaternion_to_matrix(torch.from_numpy(a[:, 4:8])).numpy()
    elif fmt == "xyzypr":
        poses[:, :3, 3] = a[:, :3]
        yaw, pitch, roll = torch.from_numpy(a[:, 3:6]).unbind(-1)
        poses[:, :3, :3] = euler_zyx_to_matrix(yaw, pitch, roll).numpy()
    else:
        poses[:, :3, :] = a.reshape(-1, 3, 4)
    return poses


def _format(path: Path) -> str:
    if path.is_dir():
        return "matrix"
    return {".npy": "npy", ".npz": "npz"}.get(path.suffix, "tum")


class CameraFiles(Dataset):
    """Camera trajectories from files, cut into clips of `frames` poses every `stride` frames.

    `path` is a file, a directory (format `matrix`: one matrix file per frame) or a glob
    pattern matching several trajectory files. Formats (see `read_poses`): `npy`, `npz`,
    `tum`, `xyzypr`, `kitti`, `matrix`; `auto` picks by suffix (.npy, .npz, a directory,
    else tum). Poses are converted to camera-to-world in the OpenCV camera convention:
    `direction: world_to_camera` inverts them first, and `convention` names the source's
    camera axes (`opengl`: x right, y up, z back; `robot`: x forward, y left, z up).
    Key: `<file stem>/<start frame>` (or `<stem>/<trajectory>/<start>` for stacked arrays).

    Args:
        path: a file, a directory of matrix files, or a glob pattern.
        format: auto, npy, npz, tum, xyzypr, kitti or matrix.
        frames: poses per clip.
        stride: frames between the starts of consecutive clips.
        direction: "camera_to_world" or "world_to_camera" (the poses in the files).
        convention: "opencv", "opengl" or "robot" (the camera axes of the poses in the files).
        every: keep every n-th pose (to lower a high frame rate).
        split: "train", "val" or "all".
        val_fraction: share of clips held out for "val".
        split_seed: seed of the train/val assignment.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A small generated TUM file, for the contract kit."""
        from tok_camera.synthetic import camera_clip

        poses = camera_clip(40, np.random.default_rng(0))
        q = _matrix_to_quaternion(poses[:, :3, :3])
        lines = ["# timestamp tx ty tz qx qy qz qw"] + [
            f"{i / 30:.4f} " + " ".join(f"{v:.9f}" for v in (*poses[i, :3, 3], *q[i])) for i in range(len(poses))]
        path = Path(tempfile.mkdtemp(prefix="tok-camera-")) / "walk.txt"
        path.write_text("\n".join(lines) + "\n")
        return {"path": str(path), "format": "tum", "frames": 16, "stride": 8, "val_fraction": 0.25}

    def __init__(self, path: str, format: Literal["auto", "npy", "npz", "tum", "xyzypr", "kitti", "matrix"] = "auto",
                 frames: int = 60, stride: int = 30,
                 direction: Literal["camera_to_world", "world_to_camera"] = "camera_to_world",
                 convention: Literal["opencv", "opengl", "robot"] = "opencv", every: int = 1,
                 split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.1, split_seed: int = 0):
        if frames < 2 or stride < 1 or every < 1:
            raise ConfigError(f"need frames >= 2, stride >= 1 and every >= 1, got {frames}, {stride}, {every}", key="frames")
        if convention not in CONVENTIONS:
            raise ConfigError(f"unknown convention '{convention}'; use {', '.join(CONVENTIONS)}", key="convention")
        p = Path(path)
        files = [p] if p.exists() else [Path(f) for f in sorted(glob.glob(path))]
        if not files:
            raise ConfigError(f"no such file, directory or matching files: '{path}'", key="path")
        axes = CONVENTIONS[convention].numpy()
        self.path = path
        clips, keys, metas = [], [], []
        for f in files:
            poses = read_poses(f, _format(f) if format == "auto" else format)
            stacks = poses if poses.ndim == 4 else poses[None]
            for m, traj in enumerate(stacks):
                if direction == "world_to_camera":
                    traj = np.linalg.inv(traj)
                traj = traj.copy()
                traj[:, :3, :3] = traj[:, :3, :3] @ axes
                traj = traj[::every]
                name = f"{f.stem}/{m}" if poses.ndim == 4 else f.stem
                for start in range(0, len(traj) - frames + 1, stride):
                    clips.append(traj[start:start + frames])
                    keys.append(f"{name}/{start}")
                    metas.append({"source": str(f), "start": start * every, "every": every})
        all_clips = np.stack(clips).astype(np.float32) if clips else np.zeros((0, frames, 4, 4), np.float32)
        self.indices = split_indices(len(all_clips), split, val_fraction, split_seed)
        self.clips = all_clips[self.indices]
        self.keys = [keys[i] for i in self.indices]
        self.metas = [metas[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.clips)

    def key(self, index: int) -> str:
        return self.keys[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"key": self.keys[index], "input": torch.from_numpy(self.clips[index].copy()), "meta": self.metas[index]}


def _matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """(N, 3, 3) -> (N, 4) unit quaternions (x, y, z, w), for writing TUM files."""
    from tok_camera.geometry import matrix_to_rotvec

    v = matrix_to_rotvec(torch.from_numpy(r)).numpy()
    angle = np.linalg.norm(v, axis=-1, keepdims=True)
    axis = v / np.maximum(angle, 1e-12)
    return np.concatenate([axis * np.sin(angle / 2), np.cos(angle / 2)], -1)
