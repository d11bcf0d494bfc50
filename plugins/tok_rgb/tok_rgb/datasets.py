"""RGB datasets: image folders, WebDataset tar shards, and video files (PyAV).

Each yields `{"key", "input", "meta"}` samples: images `(3, H, W)`, video clips
`(3, T, H, W)`, uint8 (float32 for float .npy pictures), in the view chosen by
`tok_rgb.views` (shorter side resized, cropped top/center/bottom/random, optionally
flipped) and recorded in `meta`. The view of sample i depends only on `seed` and i. Files,
not clips, are assigned to the train/val split (`tokcore.api.split_indices`), so no
video is in both. A file that cannot be read fails when its sample is loaded, not when the
dataset is built, so `tokcore tokenize` records it and goes on.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from tok_rgb.images import IMAGE_SUFFIXES, decode_image, read_image
from tok_rgb.video import (
    VIDEO_SUFFIXES,
    VideoInfo,
    import_decord,
    probe,
    read_frames,
    read_frames_decord,
)
from tok_rgb.views import Crop, Flip, ViewSpec, apply_view
from tokcore.api import ConfigError, Dataset, InputError, split_indices

Split = Literal["train", "val", "all"]


def _files(root: Path, suffixes: Sequence[str], what: str) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"no such file or folder '{root}'", key="path")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ConfigError(f"'{root}' has no {what} ({', '.join(suffixes)})", key="path")
    return files


def _unique_keys(keys: list[str], sources: list[str]) -> None:
    seen: dict[str, str] = {}
    for k, src in zip(keys, sources):
        if k in seen:
            raise ConfigError(f"'{seen[k]}' and '{src}' would both have sample key '{k}'; rename one",
                              key="path")
        seen[k] = src


def _stem_key(rel: str) -> str:
    """A file's key: its path relative to the dataset root, without the suffix."""
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def _example_images(root: Path, n: int = 6) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        (root / "part").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "part" / f"{i:03d}.png")


class _Pictures(Dataset):
    """What the image datasets share: the view parameters and turning a picture into a sample."""

    def __init__(self, size: int | None, crop_size: int | Sequence[int] | None, crop: str, flip: str, seed: int,
                 background: Sequence[int] | None):
        self.views = ViewSpec(size, crop_size, crop, flip)
        self.seed = seed
        self.background = list(background) if background is not None else None

    def _sample(self, index: int, picture: np.ndarray, source: str) -> dict[str, Any]:
        key = self.key(index)
        view = self.views.choose(picture.shape[0], picture.shape[1], self.seed, index, key)
        return {"key": key, "input": apply_view(picture[None], view)[0], "meta": {"source": source, **view.meta()}}


class ImageFolder(_Pictures):
    """Pictures under a folder, searched recursively: jpg, png, webp (through Pillow) and .npy
    arrays. A sample's key is the file's path relative to the folder without its suffix
    (`birds/0007`). Grayscale is repeated to RGB, 16-bit is scaled to 8 bits, an alpha channel
    is dropped when fully opaque and otherwise composited onto `background` (or rejected);
    other kinds of picture are rejected naming the file (see `tok_rgb.images`).

    Args:
        path: the folder (or one picture file).
        split: "train", "val" or "all".
        val_fraction: share of files held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        size: resize so that the shorter side has this length (aspect kept); null keeps the size.
        crop_size: crop to `side` or `[height, width]` after resizing; null for no crop.
        crop: where the crop sits along an axis that is cut: "top" (or left), "center",
            "bottom" (or right), or "random" (drawn from `seed` and the sample index).
        flip: "none", "horizontal" (every picture mirrored) or "random" (half of them).
        seed: seed of the random crops and flips.
        background: `[r, g, b]` (0-255) to composite transparent pictures onto; null rejects them.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A few small generated PNGs, for the contract kit."""
        root = Path(tempfile.mkdtemp(prefix="tok-rgb-images-"))
        _example_images(root)
        return {"path": str(root), "val_fraction": 0.2, "size": 16, "crop_size": 16}

    def __init__(self, path: str, split: Split = "train", val_fraction: float = 0.1, split_seed: int = 0,
                 size: int | None = None, crop_size: int | list[int] | None = None, crop: Crop = "center",
                 flip: Flip = "none", seed: int = 0, background: list[int] | None = None):
        super().__init__(size, crop_size, crop, flip, seed, background)
        root = Path(path)
        files = _files(root, IMAGE_SUFFIXES, "pictures")
        base = root if root.is_dir() else root.parent
        keys = [_stem_key(f.relative_to(base).as_posix()) for f in files]
        _unique_keys(keys, [str(f) for f in files])
        chosen = split_indices(len(files), split, val_fraction, split_seed)
        self.files = [files[i] for i in chosen]
        self.keys = [keys[i] for i in chosen]

    def __len__(self) -> int:
        return len(self.files)

    def key(self, index: int) -> str:
        return self.keys[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        f = self.files[index]
        return self._sample(index, read_image(f, str(f), self.background), str(f))


class ImageShards(_Pictures):
    """Pictures inside WebDataset tar shards. Members are grouped into samples the WebDataset
    way (`dir/name.ext`: key `dir/name`, extension `ext`); each sample's picture is the member
    with extension `ext`, or the first of jpg, jpeg, png, webp, npy it has. A sample's key is
    `<shard name>/<member key>`. Shards are indexed once (tar headers only); a sample is read
    by seeking to its member, so shards are streamed, never extracted or loaded whole.
    Compressed shards (.tar.gz) cannot be seeked into; decompress them first.

    Args:
        path: a shard, or a folder whose `*.tar` files (recursively) are the shards.
        ext: the member extension that holds the picture (e.g. "jpg", "depth.png"), or null for
            the first found.
        split: "train", "val" or "all".
        val_fraction: share of samples held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        size: resize so that the shorter side has this length (aspect kept); null keeps the size.
        crop_size: crop to `side` or `[height, width]` after resizing; null for no crop.
        crop: where the crop sits along an axis that is cut: "top" (or left), "center",
            "bottom" (or right), or "random".
        flip: "none", "horizontal" or "random".
        seed: seed of the random crops and flips.
        background: `[r, g, b]` (0-255) to composite transparent pictures onto; null rejects them.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A small generated shard, for the contract kit."""
        root = Path(tempfile.mkdtemp(prefix="tok-rgb-shards-"))
        _example_images(root / "images")
        with tarfile.open(root / "shard-000.tar", "w") as tar:
            for f in sorted((root / "images" / "part").iterdir()):
                tar.add(f, arcname=f"part/{f.name}")
        return {"path": str(root / "shard-000.tar"), "val_fraction": 0.2, "size": 16, "crop_size": 16}

    def __init__(self, path: str, ext: str | None = None, split: Split = "train", val_fraction: float = 0.1,
                 split_seed: int = 0, size: int | None = None, crop_size: int | list[int] | None = None,
                 crop: Crop = "center", flip: Flip = "none", seed: int = 0, background: list[int] | None = None):
        super().__init__(size, crop_size, crop, flip, seed, background)
        if ext is not None and "." + ext.lower().rsplit(".", 1)[-1] not in IMAGE_SUFFIXES:
            raise ConfigError(f"'{ext}' is not a picture extension; use one of "
                              f"{', '.join(s[1:] for s in IMAGE_SUFFIXES)}", key="ext")
        shards = _files(Path(path), (".tar",), "tar shards")
        # (shard, member name, data offset, size) of each sample's picture
        members: list[tuple[Path, str, int, int]] = []
        keys: list[str] = []
        for shard in shards:
            for name, member in self._index(shard, ext).items():
                keys.append(f"{shard.name[:-len('.tar')]}/{name}")
                members.append((shard, member.name, member.offset_data, member.size))
        if not members:
            raise ConfigError(f"'{path}' holds no pictures ({ext or ', '.join(IMAGE_SUFFIXES)})", key="path")
        _unique_keys(keys, [f"{s}:{m}" for s, m, _, _ in members])
        chosen = split_indices(len(members), split, val_fraction, split_seed)
        self.members = [members[i] for i in chosen]
        self.keys = [keys[i] for i in chosen]

    @staticmethod
    def _index(shard: Path, ext: str | None) -> dict[str, tarfile.TarInfo]:
        """Sample key -> the member holding its picture, in shard order."""
        try:
            with tarfile.open(shard, "r:") as tar:
                found: dict[str, dict[str, tarfile.TarInfo]] = {}
                for m in tar:
                    if not m.isfile():
                        continue
                    folder, _, base = m.name.rpartition("/")
                    stem, dot, suffix = base.partition(".")  # WebDataset: extension after the first dot
                    if dot:
                        found.setdefault(f"{folder}/{stem}" if folder else stem, {})[suffix.lower()] = m
        except tarfile.ReadError as err:
            raise ConfigError(f"cannot read shard '{shard}' as an uncompressed tar ({err}); decompress "
                              ".tar.gz shards first", key="path") from None
        order = [ext.lower().lstrip(".")] if ext else [s[1:] for s in IMAGE_SUFFIXES]
        picked = {}
        for key, by_ext in found.items():
            hit = next((by_ext[e] for e in order if e in by_ext), None)
            if hit is not None:
                picked[key] = hit
        return picked

    def __len__(self) -> int:
        return len(self.members)

    def key(self, index: int) -> str:
        return self.keys[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, name, offset, size = self.members[index]
        with open(shard, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise InputError(f"{shard}:{name}: the shard ends inside this member; it is truncated")
        picture = decode_image(data, Path(name).suffix.lower(), f"{shard}:{name}", self.background)
        return self._sample(index, picture, f"{shard}:{name}")


class VideoFiles(Dataset):
    """Clips of video files, decoded with PyAV: frames sampled at `fps`, shorter side resized,
    cropped and flipped alike in every frame, `clip_length` frames per clip, a clip every
    `clip_stride` frames (both counted at `fps`). Clips are indexed from the container's
    metadata; loading a clip seeks to the keyframe before it and decodes only up to its last
    frame, so a long video is never decoded or held whole. A video shorter than one clip is one
    shorter clip. A sample's key is `<file path relative to the folder, no suffix>/<start>-<end>`
    (frames at `fps`); its metadata records the source, the source frames, the view and the
    clip's `fps`, which `tokcore decode` uses to write the video back at the same rate. Frame
    k of a video is the k-th frame PyAV decodes from its start; an AVI's frames are its chunks
    (the header's count includes dropped frames, which are not frames), and an AVI with
    dropped frames is sampled at `fps` by each frame's time (`tok_rgb.video`).

    Args:
        path: a video file, or a folder searched recursively for videos (mp4, avi, mkv, mov,
            webm, m4v, mpg, mpeg, ogv).
        clip_length: frames per clip; null makes each whole video one sample, keyed by its
            name alone (VIMPAC's video2token keys: the path without its suffix).
        clip_stride: frames between the starts of consecutive clips (default: clip_length).
        fps: frames per second to sample at (nearest earlier source frame); null keeps each
            video's own rate.
        split: "train", "val" or "all"; videos, not clips, are assigned to splits.
        val_fraction: share of videos held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        size: resize so that the shorter side has this length (aspect kept); null keeps the size.
        crop_size: crop to `side` or `[height, width]` after resizing; null for no crop.
        crop: where the crop sits along an axis that is cut: "top" (or left), "center",
            "bottom" (or right), or "random" (one draw per clip).
        flip: "none", "horizontal" (every clip mirrored) or "random" (half of the clips).
        seed: seed of the random crops and flips.
        max_clips_per_video: keep at most this many clips of each video, spread evenly over it
            (null keeps all).
        backend: "pyav" (seek to the keyframe before a clip, decode to its end) or "decord"
            (random access through decord's frame index; pip install decord).
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """Two small generated videos, for the contract kit."""
        from tok_rgb.video import write_mp4

        root = Path(tempfile.mkdtemp(prefix="tok-rgb-videos-"))
        rng = np.random.default_rng(0)
        for i in range(2):
            write_mp4(root / f"clip{i}.mp4", rng.integers(0, 256, (12, 24, 32, 3), dtype=np.uint8), 10.0)
        return {"path": str(root), "clip_length": 4, "val_fraction": 0.5, "size": 16, "crop_size": 16}

    def __init__(self, path: str, clip_length: int | None = 16, clip_stride: int | None = None, fps: float | None = None,
                 split: Split = "train", val_fraction: float = 0.1, split_seed: int = 0, size: int | None = None,
                 crop_size: int | list[int] | None = None, crop: Crop = "center", flip: Flip = "none",
                 seed: int = 0, max_clips_per_video: int | None = None,
                 backend: Literal["pyav", "decord"] = "pyav"):
        for name, value in (("clip_length", clip_length), ("clip_stride", clip_stride),
                            ("max_clips_per_video", max_clips_per_video)):
            if value is not None and value < 1:
                raise ConfigError(f"must be at least 1, got {value}", key=name)
        if fps is not None and not fps > 0:
            raise ConfigError(f"must be positive or null, got {fps}", key="fps")
        self.views = ViewSpec(size, crop_size, crop, flip)
        self.seed, self.fps, self.whole = seed, fps, clip_length is None
        if backend == "decord":
            import_decord()  # fail at build time, not at the first clip
        self.read = read_frames_decord if backend == "decord" else read_frames
        root = Path(path)
        files = _files(root, VIDEO_SUFFIXES, "videos")
        base = root if root.is_dir() else root.parent
        names = [_stem_key(f.relative_to(base).as_posix()) for f in files]
        _unique_keys(names, [str(f) for f in files])
        # one entry per clip: (file, its key, its info or None when unreadable, first and end frame at fps)
        self.clips: list[tuple[Path, str, VideoInfo | None, int, int]] = []
        for i in split_indices(len(files), split, val_fraction, split_seed):
            self.clips += self._index(files[i], names[i], clip_length, clip_stride or clip_length,
                                      max_clips_per_video)

    def _index(self, file: Path, name: str, length: int | None, stride: int | None,
               most: int | None) -> list[tuple[Path, str, VideoInfo | None, int, int]]:
        try:
            info = probe(file)
        except Exception:  # unreadable: one sample, which fails when loaded
            return [(file, name, None, 0, 0)]
        total = info.count_at(self.fps)
        if length is None or total <= length:
            return [(file, name, info, 0, total)]
        starts = list(range(0, total - length + 1, stride))
        if most is not None and len(starts) > most:
            starts = [starts[round(j * (len(starts) - 1) / max(most - 1, 1))] for j in range(most)]
        return [(file, name, info, s, s + length) for s in starts]

    def __len__(self) -> int:
        return len(self.clips)

    def key(self, index: int) -> str:
        _, name, info, start, end = self.clips[index]
        return name if info is None or self.whole else f"{name}/{start}-{end}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        file, _, info, start, end = self.clips[index]
        key = self.key(index)
        if info is None:
            probe(file)  # raises why the file cannot be read
            raise InputError(f"{file}: changed since the dataset was built; build it again")
        if end == 0:
            raise InputError(f"{file}: the container holds no frames")
        fps = self.fps or info.fps
        frames = [info.frame_at(k, self.fps) for k in range(start, end)]
        view = self.views.choose(info.height, info.width, self.seed, index, key)
        clip = self.read(file, frames, info, lambda image: apply_view(image[None], view)[0])
        return {"key": key, "input": torch.stack(clip, dim=1),
                "meta": {"source": str(file), "frames": [start, end], "fps": fps,
                         "source_frames": [frames[0], frames[-1] + 1], "source_fps": info.fps, **view.meta()}}
