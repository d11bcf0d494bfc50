"""Depth datasets: a folder of depth or disparity files, and the embedded Middlebury
motorcycle (real stereo disparity, no download). Samples are `(1, H, W)` float32 depth with
holes set to 0."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from tok_depth.readers import clean_depth, disparity_to_depth, read_depth
from tok_depth.resize import center_crop, masked_resize, resize_shorter, valid_depth
from tokcore.api import ConfigError, Dataset, split_indices

SUFFIXES = (".png", ".npy", ".npz")


class DepthFiles(Dataset):
    """One depth (or disparity) map per file under a folder: 16-bit PNGs (counts times
    `scale`), `.npy` or `.npz`. A sample's key is the file's path relative to the folder
    without its suffix. Holes (0, inf, NaN, and zero or negative disparity) become 0.

    Args:
        path: the folder.
        pattern: glob of the files, relative to the folder (only .png, .npy and .npz are read).
        split: "train", "val" or "all"; files are assigned to splits.
        val_fraction: share of files held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
        scale: factor from stored values to the depth unit (0.001 for millimetre PNGs); for
            disparity, to pixels (1/256 for KITTI's disparity PNGs).
        array: the array of an .npz file (default: its first).
        disparity: the files hold disparity, converted to depth `focal_length * baseline /
            (disparity + doffs)`.
        focal_length: focal length in pixels of the disparity map (disparity only).
        baseline: stereo baseline in the depth unit wanted (disparity only).
        doffs: x-difference of the principal points in pixels (Middlebury's `doffs`).
        size: resize so the shorter side has this many pixels (hole-aware), or None.
        crop_size: then cut the central square of this side, or None.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """A few small generated maps (PNG in millimetres, npy and npz in metres)."""
        import tempfile

        from PIL import Image

        root = Path(tempfile.mkdtemp(prefix="tok-depth-files-"))
        rng = np.random.default_rng(0)
        for i in range(4):
            mm = rng.integers(500, 5000, size=(24, 20)).astype(np.uint16)
            mm[:3, :3] = 0
            Image.fromarray(mm).save(root / f"png-{i}.png")
        np.save(root / "array.npy", rng.uniform(0.5, 5.0, size=(24, 20)).astype(np.float32))
        np.savez(root / "arrays.npz", depth=rng.uniform(0.5, 5.0, size=(24, 20)).astype(np.float32))
        return {"path": str(root), "scale": 0.001, "val_fraction": 0.2, "crop_size": 16}

    def __init__(self, path: str, pattern: str = "**/*", split: Literal["train", "val", "all"] = "train",
                 val_fraction: float = 0.1, split_seed: int = 0, scale: float = 1.0, array: str | None = None,
                 disparity: bool = False, focal_length: float | None = None, baseline: float | None = None,
                 doffs: float = 0.0, size: int | None = None, crop_size: int | None = None):
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"no such folder '{path}'", key="path")
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise ConfigError(f"'{path}' has no {', '.join(SUFFIXES)} files matching '{pattern}'", key="pattern")
        if scale <= 0:
            raise ConfigError(f"must be positive, got {scale}", key="scale")
        if disparity and (focal_length is None or baseline is None):
            raise ConfigError("disparity needs focal_length (pixels) and baseline to give depth; set both",
                              key="disparity")
        self.root, self.scale, self.array = root, scale, array
        self.disparity, self.focal_length, self.baseline, self.doffs = disparity, focal_length, baseline, doffs
        self.size, self.crop_size = size, crop_size
        self.files = [files[i] for i in split_indices(len(files), split, val_fraction, split_seed)]

    def __len__(self) -> int:
        return len(self.files)

    def key(self, index: int) -> str:
        return self.files[index].relative_to(self.root).with_suffix("").as_posix()

    def __getitem__(self, index: int) -> dict[str, Any]:
        f = self.files[index]
        values = read_depth(f, self.scale, self.array)
        if self.disparity:
            depth = disparity_to_depth(values, self.focal_length, self.baseline, self.doffs)  # type: ignore[arg-type]
        else:
            depth = clean_depth(values)
        if self.size is not None:
            depth = resize_shorter(depth, self.size)
        if self.crop_size is not None:
            depth = center_crop(depth, self.crop_size)
        meta = {"source": str(f), "scale": self.scale, "disparity": self.disparity,
                "size": self.size, "crop_size": self.crop_size}
        return {"key": self.key(index), "input": torch.from_numpy(np.ascontiguousarray(depth))[None], "meta": meta}


# Middlebury 2014 "Motorcycle" as scikit-image ships it (4x down-sampled): the calibration
# printed in the docstring of `skimage.data.stereo_motorcycle`.
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086


@functools.lru_cache(maxsize=4)
def motorcycle_depth(downsample: int = 1) -> np.ndarray:
    """The motorcycle's ground-truth depth in metres `(H, W)`, holes 0, down-sampled by
    `downsample` with hole-aware area averaging (skimage's map is 500 x 741)."""
    try:
        from skimage.data import stereo_motorcycle
    except ImportError:
        raise ConfigError("the motorcycle data comes from scikit-image: pip install 'tok-depth[data]'") from None
    disparity = stereo_motorcycle()[2]
    depth = disparity_to_depth(disparity, MOTORCYCLE_FOCAL_PX, MOTORCYCLE_BASELINE_M, MOTORCYCLE_DOFFS_PX)
    if downsample > 1:
        h, w = depth.shape
        depth = masked_resize(depth, (h // downsample, w // downsample))
    depth.setflags(write=False)
    return depth


class DepthMotorcycle(Dataset):
    """Real stereo depth, embedded: crops of the Middlebury 2014 motorcycle's ground-truth
    disparity (`skimage.data.stereo_motorcycle`), turned into metres with its calibration
    (depths 2.1-5.0 m; 7% of pixels have no ground truth and are holes).

    The right `held_out_fraction` of the image is held out: "val" crops tile it, "train"
    crops are drawn at random from the rest, so no held-out pixel is ever trained on. Crops
    with fewer than `min_valid` valid pixels are skipped.

    Args:
        split: "train", "val" or "all" (train then val).
        crop_size: side of the square crops, in pixels after down-sampling.
        downsample: hole-aware down-sampling factor of the 500 x 741 map first.
        train_crops: number of training crops.
        held_out_fraction: share of the image's width (its right part) held out.
        min_valid: least share of valid pixels a crop must have.
        seed: seed of the training crops' positions.
    """

    example_config = {"crop_size": 16, "downsample": 4, "train_crops": 8}

    def __init__(self, split: Literal["train", "val", "all"] = "train", crop_size: int = 32, downsample: int = 2,
                 train_crops: int = 512, held_out_fraction: float = 0.25, min_valid: float = 0.5, seed: int = 0):
        if split not in ("train", "val", "all"):
            raise ConfigError(f"unknown split '{split}'; use train, val or all", key="split")
        if not 0 < held_out_fraction < 1:
            raise ConfigError(f"must lie in (0, 1), got {held_out_fraction}", key="held_out_fraction")
        self.depth = motorcycle_depth(downsample)
        h, w = self.depth.shape
        edge = int(round(w * (1 - held_out_fraction)))  # first held-out column
        if crop_size > h or crop_size > min(edge, w - edge):
            raise ConfigError(f"{crop_size}-pixel crops do not fit the {h}x{w} map's train and held-out parts; "
                              "use smaller crops or less down-sampling", key="crop_size")
        self.crop_size, self.downsample = crop_size, downsample
        valid = valid_depth(self.depth)

        def enough(y: int, x: int) -> bool:
            return valid[y:y + crop_size, x:x + crop_size].mean() >= min_valid

        boxes: list[tuple[str, int, int]] = []
        if split in ("train", "all"):
            rng = np.random.default_rng(seed)
            found, tries = 0, 0
            while found < train_crops and tries < 100 * train_crops:
                y, x = int(rng.integers(0, h - crop_size + 1)), int(rng.integers(0, edge - crop_size + 1))
                tries += 1
                if enough(y, x):
                    boxes.append((f"motorcycle/train/{found:05d}", y, x))
                    found += 1
        if split in ("val", "all"):
            boxes += [(f"motorcycle/val/{y}-{x}", y, x) for y in range(0, h - crop_size + 1, crop_size)
                      for x in range(edge, w - crop_size + 1, crop_size) if enough(y, x)]
        self.boxes = boxes

    def __len__(self) -> int:
        return len(self.boxes)

    def key(self, index: int) -> str:
        return self.boxes[index][0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, y, x = self.boxes[index]
        s = self.crop_size
        crop = np.array(self.depth[y:y + s, x:x + s])
        meta = {"source": "skimage.data.stereo_motorcycle", "downsample": self.downsample, "box": [y, x, s, s]}
        return {"key": key, "input": torch.from_numpy(crop)[None], "meta": meta}
