"""Depth video: clips of depth maps as `(1, T, H, W)` float32 samples (holes 0), read from
arrays `(T, H, W)` or from folders of per-frame maps, and a synthetic camera pan over the
Middlebury motorcycle for tests and quick runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tok_depth.datasets import SUFFIXES, motorcycle_depth
from tok_depth.readers import clean_depth, read_depth
from tok_depth.resize import center_crop, resize_shorter
from tokcore.api import ConfigError, Dataset, InputError, load_array, split_indices


def resample_indices(frames: int, source_fps: float, fps: float) -> list[int]:
    """The source frames a clip of `frames` frames at `source_fps` keeps at `fps`: frame k
    of the result is the source frame nearest to time k / fps (what ffmpeg's `fps` filter
    picks for a stream starting at 0; EgoM2P samples its 30 fps depth to 8 fps this way)."""
    step = source_fps / fps
    count = math.ceil(frames / step - 1e-9)  # the frames at times before the clip ends
    return [min(frames - 1, math.floor(k * step + 0.5)) for k in range(count)]


def motorcycle_pan(frames: int = 8, size: int = 32, step: int = 4, downsample: int = 4, top: int = 20,
                   left: int = 40) -> np.ndarray:
    """A synthetic depth clip `(T, size, size)` in metres: a camera panning right over the
    Middlebury motorcycle's real depth (`motorcycle_depth`), `step` pixels per frame from
    the window at (`top`, `left`); its holes (0) move with the scene."""
    depth = motorcycle_depth(downsample)
    h, w = depth.shape
    if top + size > h or left + (frames - 1) * step + size > w:
        raise ConfigError(f"a {frames}-frame pan of {size}-pixel windows, {step} pixels a frame, from ({top}, {left}) "
                          f"leaves the {h}x{w} map; use fewer frames, a smaller step or more down-sampling",
                          key="frames")
    return np.stack([depth[top:top + size, left + t * step:left + t * step + size] for t in range(frames)])


class DepthVideoFiles(Dataset):
    """Depth clips under a folder, one sample per clip, keyed by its path relative to the
    folder without suffix.

    A clip is either an array file `(T, H, W)` (`clips: arrays`; `.npy`, or an `.npz`'s
    array, as EgoM2P keeps RollingDepth's output per 2-second clip: `.npz`, array `arr_0`),
    or a folder of per-frame depth maps in name order (`clips: folders`; 16-bit PNGs times
    `scale`, `.npy`, `.npz`). Holes (0, inf, NaN, negative) become 0. Frames are then
    sampled from `source_fps` to `fps`, each frame center-cropped to a `crop_size` square,
    then resized so its shorter side is `size` (hole-aware), in that order: EgoM2P cuts the
    central 480 x 480 of its 896 x 504 frames, then scales to 256.

    Args:
        path: the folder.
        pattern: glob, relative to the folder, of the clip files (`arrays`) or of the frame
            files (`folders`; the clips are their folders).
        clips: "arrays" or "folders" (see above).
        split: "train", "val" or "all"; clips are assigned to splits.
        val_fraction: share of clips held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        scale: factor from stored values to the depth unit (0.001 for millimetre PNGs).
        array: the array of an `.npz` file (default: its first).
        source_fps: the clips' frame rate; needed with `fps`.
        fps: frames per second to sample at (nearest source frame), or None for every frame.
        crop_size: cut the central square of this side first (source pixels), or None.
        size: then resize so that the shorter side has this length, or None.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """Two small generated clips, one array and one folder of millimetre PNGs."""
        import tempfile

        from PIL import Image

        root = Path(tempfile.mkdtemp(prefix="tok-depth-video-"))
        rng = np.random.default_rng(0)
        np.save(root / "clip.npy", rng.uniform(0.5, 5.0, size=(6, 20, 24)).astype(np.float32))
        (root / "frames").mkdir()
        for t in range(6):
            Image.fromarray(rng.integers(500, 5000, size=(20, 24)).astype(np.uint16)).save(root / "frames" / f"{t:03d}.png")
        return {"path": str(root), "clips": "arrays", "pattern": "*.npy", "val_fraction": 0.0, "crop_size": 16}

    def __init__(self, path: str, pattern: str = "**/*", clips: Literal["arrays", "folders"] = "arrays",
                 split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.1, split_seed: int = 0,
                 scale: float = 1.0, array: str | None = None, source_fps: float | None = None,
                 fps: float | None = None, crop_size: int | None = None, size: int | None = None):
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"no such folder '{path}'", key="path")
        if clips not in ("arrays", "folders"):
            raise ConfigError(f"must be 'arrays' or 'folders', got '{clips}'", key="clips")
        if scale <= 0:
            raise ConfigError(f"must be positive, got {scale}", key="scale")
        if fps is not None and (source_fps is None or fps <= 0 or source_fps <= 0):
            raise ConfigError(f"sampling at {fps} fps needs the clips' own rate: set source_fps (positive)",
                              key="source_fps")
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in SUFFIXES)
        if clips == "arrays":
            items = [p for p in files if p.suffix.lower() != ".png"]
        else:
            items = sorted({p.parent for p in files})
        if not items:
            what = ".npy/.npz files" if clips == "arrays" else "folders of .png/.npy/.npz frames"
            raise ConfigError(f"'{path}' has no {what} matching '{pattern}'", key="pattern")
        self.root, self.pattern, self.clips, self.scale, self.array = root, pattern, clips, scale, array
        self.source_fps, self.fps, self.crop_size, self.size = source_fps, fps, crop_size, size
        self.items = [items[i] for i in split_indices(len(items), split, val_fraction, split_seed)]

    def __len__(self) -> int:
        return len(self.items)

    def key(self, index: int) -> str:
        item = self.items[index]
        rel = item.relative_to(self.root)
        return (rel.with_suffix("") if self.clips == "arrays" else rel).as_posix()

    def _frames(self, item: Path) -> list[np.ndarray]:
        if self.clips == "folders":
            names = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
            return [read_depth(p, self.scale, self.array) for p in names]
        try:
            a = load_array(item, array=self.array)
        except ConfigError as err:  # an .npz without that array: a fault of this sample's file
            raise InputError(f"{item}: {err.message}") from None
        if a.ndim == 4 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 3:
            raise InputError(f"{item}: a depth clip must have shape (T, H, W), got {a.shape}; "
                             "use clips: folders for one map per file")
        return list(a.astype(np.float32) * np.float32(self.scale))

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        frames = self._frames(item)
        kept = list(range(len(frames)))
        if self.fps is not None:
            kept = resample_indices(len(frames), self.source_fps, self.fps)  # type: ignore[arg-type]
        out = []
        for i in kept:
            depth = clean_depth(frames[i])
            if self.crop_size is not None:
                depth = center_crop(depth, self.crop_size)
            if self.size is not None:
                depth = resize_shorter(depth, self.size)
            out.append(depth)
        if len({d.shape for d in out}) > 1:
            raise InputError(f"{item}: the frames of a clip differ in size ({sorted({d.shape for d in out})}); "
                             "give each clip one frame size")
        meta = {"source": str(item), "source_frames": kept, "fps": self.fps or self.source_fps,
                "scale": self.scale, "crop_size": self.crop_size, "size": self.size}
        return {"key": self.key(index), "input": torch.from_numpy(np.stack(out))[None], "meta": meta}
