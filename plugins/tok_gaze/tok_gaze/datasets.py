"""Gaze datasets: the embedded generator, and gaze tracks from npy/npz/csv files.

Every dataset yields clips `(frames, 2)` of normalized image coordinates (x right, y down),
NaN on invalid frames, as `{"key", "input", "meta"}` samples; the train/val split is
`tokcore.api.split_indices` over clips (deterministic for a given `split_seed`).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from tok_gaze.synthetic import GazeParams, gaze_clip
from tokcore.api import ConfigError, Dataset, InputError, load_array, split_indices


class GazeSynthetic(Dataset):
    """Generated gaze clips: fixations with drift, main-sequence saccades, smooth pursuit,
    blinks and tracking losses (`tok_gaze.synthetic` documents the model and its numbers).
    Clip i is the same for a given seed whatever `num_clips` is. Key: `gaze-synthetic/<seed>/<i>`.

    Args:
        num_clips: clips in all splits together.
        frames: frames per clip.
        fps: frame rate the clips are sampled at.
        fov: `[horizontal, vertical]` field of view (degrees) used to project visual angles
            to image coordinates.
        seed: seed of the generator.
        split: "train", "val" or "all".
        val_fraction: share of clips held out for "val".
        split_seed: seed of the train/val assignment.
    """

    example_config = {"num_clips": 8, "frames": 16, "val_fraction": 0.25}

    def __init__(self, num_clips: int = 2048, frames: int = 60, fps: float = 30.0,
                 fov: Sequence[float] = (90.0, 70.0), seed: int = 0,
                 split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.1, split_seed: int = 0):
        if num_clips < 1 or frames < 2:
            raise ConfigError(f"need num_clips >= 1 and frames >= 2, got {num_clips} and {frames}", key="num_clips")
        self.params = GazeParams(fps=fps, fov=tuple(fov))
        self.seed, self.frames = seed, frames
        self.indices = split_indices(num_clips, split, val_fraction, split_seed)
        self.clips = np.stack([gaze_clip(frames, np.random.default_rng([seed, int(i)]), self.params)
                               for i in self.indices]) if len(self.indices) else np.zeros((0, frames, 2), np.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return f"gaze-synthetic/{self.seed}/{int(self.indices[index])}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"key": self.key(index), "input": torch.from_numpy(self.clips[index].copy()),
                "meta": {"source": "tok_gaze.synthetic", "seed": self.seed, "clip": int(self.indices[index])}}


def windows(track: np.ndarray, frames: int, stride: int) -> list[int]:
    """Start frames of the windows of `frames` frames, every `stride` frames, inside `track`."""
    return list(range(0, len(track) - frames + 1, stride))


def read_csv_tracks(path: Path, x: str, y: str, valid: str | None, group: str | None, time: str | None,
                    duration: str | None, fps: float, max_gap_ms: float) -> list[tuple[str, np.ndarray]]:
    """Tracks (name, (T, 2) float64 with NaN on invalid frames) from a CSV file, one per
    `group` value in order of appearance. With `time` (ms), samples are put on a regular
    grid at `fps`: a row with a `duration` holds its point for that long (fixation lists),
    otherwise points are interpolated linearly across gaps up to `max_gap_ms`."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = [c for c in (x, y, valid, group, time, duration) if c]
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"'{path}' has no column {', '.join(repr(m) for m in missing)}; it has "
                              f"{', '.join(reader.fieldnames or [])}", key="x_column")
        rows: dict[str, list[list[float]]] = {}
        for r in reader:
            def num(c: str | None) -> float:
                v = (r[c] or "").strip() if c else ""
                try:
                    return float(v) if v else float("nan")
                except ValueError:
                    return float("nan")
            ok = 1.0 if valid is None else float((r[valid] or "").strip().lower() in ("1", "true", "yes", "1.0"))
            rows.setdefault(r[group] if group else path.stem, []).append([num(x), num(y), ok, num(time), num(duration)])
    tracks = []
    for name, vals in rows.items():
        a = np.asarray(vals, dtype=np.float64)
        xy = np.where(a[:, 2:3] > 0, a[:, :2], np.nan)
        if time is None:
            tracks.append((name, xy))
            continue
        order = np.argsort(a[:, 3], kind="stable")
        t, xy, dur = a[order, 3], xy[order], a[order, 4]
        step = 1000.0 / fps
        grid = np.arange(t[0], (t + np.nan_to_num(dur, nan=0.0)).max() + 1e-9, step)
        out = np.full((len(grid), 2), np.nan)
        if duration is not None:
            for (t0, d), p in zip(zip(t, dur), xy):
                out[(grid >= t0) & (grid < t0 + d)] = p
        else:
            j = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 1)
            k = np.minimum(j + 1, len(t) - 1)
            span = t[k] - t[j]
            w = np.where(span > 0, (grid - t[j]) / np.where(span > 0, span, 1.0), 0.0)[:, None]
            out = np.where(w > 0, (1 - w) * xy[j] + w * xy[k], xy[j])  # no 0 * NaN at exact samples
            out[(span > max_gap_ms) & (w[:, 0] > 0)] = np.nan
        tracks.append((name, out))
    return tracks


class GazeFiles(Dataset):
    """Gaze tracks from a file, cut into clips of `frames` frames every `stride` frames.

    * `.npy`: `(N, T, 2)` clips or one `(T, 2)` track; `.npz`: the array `array` (default
      the first) and optionally a boolean validity array `valid_array` (`(N, T)` or `(T,)`);
    * `.csv`: columns `x_column`, `y_column`, optionally `valid_column` (1/true = valid),
      `group_column` (one track per value, e.g. a trial id), `time_column` (ms; samples are
      then resampled to `fps`) and `duration_column` (ms; rows are fixations held that long).

    NaN coordinates, rows marked invalid and gaps mark invalid frames (blinks, tracking
    loss). Pixel coordinates are divided by `image_size`. Clips with fewer than `min_valid`
    valid frames are dropped. Key: `<file stem>/<track>/<start frame>`.

    Args:
        path: the .npy, .npz or .csv file.
        frames: frames per clip.
        stride: frames between the starts of consecutive clips.
        image_size: `[width, height]` in pixels when the coordinates are pixels, else None.
        array: array of an .npz holding the gaze (default: the first).
        valid_array: boolean array of an .npz marking valid frames, or None.
        x_column: CSV column of x.
        y_column: CSV column of y.
        valid_column: CSV column marking valid rows, or None.
        group_column: CSV column separating tracks, or None for one track.
        time_column: CSV column of timestamps in ms, or None when rows are frames.
        duration_column: CSV column of durations in ms (fixation lists), or None.
        fps: frame rate of the clips when resampling by time.
        max_gap_ms: longer gaps between samples become invalid frames.
        min_valid: least share of valid frames a clip must have.
        split: "train", "val" or "all".
        val_fraction: share of clips held out for "val".
        split_seed: seed of the train/val assignment.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A small generated CSV of two trials in pixels, for the contract kit."""
        path = Path(tempfile.mkdtemp(prefix="tok-gaze-")) / "gaze.csv"
        rng = np.random.default_rng(0)
        lines = ["trial,x,y,valid"]
        for trial in ("a", "b"):
            for _ in range(40):
                lines.append(f"{trial},{rng.uniform(0, 640):.1f},{rng.uniform(0, 480):.1f},{int(rng.random() > 0.1)}")
        path.write_text("\n".join(lines) + "\n")
        return {"path": str(path), "frames": 16, "stride": 8, "image_size": [640, 480], "group_column": "trial",
                "valid_column": "valid", "val_fraction": 0.25}

    def __init__(self, path: str, frames: int = 60, stride: int = 60, image_size: Sequence[float] | None = None,
                 array: str | None = None, valid_array: str | None = None,
                 x_column: str = "x", y_column: str = "y", valid_column: str | None = None,
                 group_column: str | None = None, time_column: str | None = None,
                 duration_column: str | None = None, fps: float = 30.0, max_gap_ms: float = 100.0,
                 min_valid: float = 0.5, split: Literal["train", "val", "all"] = "train",
                 val_fraction: float = 0.1, split_seed: int = 0):
        file = Path(path)
        if file.is_dir():
            raise ConfigError(f"'{path}' is a folder; 'gaze_files' reads one gaze file (.npy or .npz of (T, 2) "
                              "or (N, T, 2) tracks, or a .csv of x, y columns): name the file", key="path")
        if not file.is_file():
            raise ConfigError(f"no such file '{path}'", key="path")
        if frames < 1 or stride < 1:
            raise ConfigError(f"frames and stride must be positive, got {frames} and {stride}", key="frames")
        if file.suffix == ".csv":
            tracks = read_csv_tracks(file, x_column, y_column, valid_column, group_column, time_column,
                                     duration_column, fps, max_gap_ms)
        elif file.suffix in (".npy", ".npz"):
            tracks = self._read_arrays(file, array, valid_array)
        else:
            raise ConfigError(f"'{path}': unknown gaze file type '{file.suffix}'; give .npy, .npz or .csv", key="path")
        scale = np.ones(2)
        if image_size is not None:
            if len(image_size) != 2 or min(image_size) <= 0:
                raise ConfigError(f"image_size must be [width, height] in pixels, got {image_size}", key="image_size")
            scale = np.asarray(image_size, dtype=np.float64)
        self.stem, self.path = file.stem, str(file)
        clips, keys = [], []
        for name, track in tracks:
            track = np.asarray(track, dtype=np.float64) / scale
            for start in windows(track, frames, stride):
                clip = track[start:start + frames]
                if np.isfinite(clip).all(-1).mean() >= min_valid:
                    clips.append(clip)
                    keys.append(f"{self.stem}/{name}/{start}")
        all_clips = np.stack(clips).astype(np.float32) if clips else np.zeros((0, frames, 2), np.float32)
        self.indices = split_indices(len(all_clips), split, val_fraction, split_seed)
        self.clips, self.keys = all_clips[self.indices], [keys[i] for i in self.indices]

    @staticmethod
    def _read_arrays(file: Path, array: str | None, valid_array: str | None) -> list[tuple[str, np.ndarray]]:
        try:
            data = load_array(file, array=array).astype(np.float64)  # ConfigError(key="array") if .npz lacks it
            npz = file.suffix == ".npz" and valid_array is not None
            valid = load_array(file, array=valid_array).astype(bool) if npz else None
        except InputError as exc:  # missing, not a numpy file, damaged: named in the message
            raise ConfigError(str(exc), key="path") from None
        if data.ndim == 2:
            data = data[None]
            valid = None if valid is None else valid.reshape(1, -1)
        if data.ndim != 3 or data.shape[-1] != 2:
            raise ConfigError(f"'{file}' holds shape {data.shape}; expected (T, 2) or (N, T, 2) gaze", key="path")
        if valid is not None:
            if valid.shape != data.shape[:2]:
                raise ConfigError(f"'{file}': {valid_array} has shape {valid.shape}, expected {data.shape[:2]}",
                                  key="valid_array")
            data = np.where(valid[..., None], data, np.nan)
        return [(str(i), d) for i, d in enumerate(data)]

    def __len__(self) -> int:
        return len(self.clips)

    def key(self, index: int) -> str:
        return self.keys[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"key": self.keys[index], "input": torch.from_numpy(self.clips[index].copy()),
                "meta": {"source": self.path, "clip": self.keys[index]}}
