"""Real photos with no download: the colour pictures bundled in the scikit-image wheel, cut
into small crops, with whole photos held out for validation."""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch

from tokcore.api import ConfigError, Dataset


def _gray_to_rgb(image: np.ndarray) -> np.ndarray:
    """A grayscale (H, W) picture as (H, W, 3), the same value in every channel."""
    return np.repeat(image[..., None], 3, axis=-1)


# name -> loader of an (H, W, 3) uint8 photo; only pictures shipped inside the wheel
# (grayscale ones repeated to three channels).
PHOTOS: dict[str, Callable[[Any], np.ndarray]] = {
    "astronaut": lambda d: d.astronaut(),  # Eileen Collins, NASA (512 x 512)
    "chelsea": lambda d: d.chelsea(),  # a cat (300 x 451)
    "coffee": lambda d: d.coffee(),  # a cup of coffee (400 x 600)
    "rocket": lambda d: d.rocket(),  # SpaceX Falcon 9 on the pad (427 x 640)
    "motorcycle": lambda d: d.stereo_motorcycle()[0],  # Middlebury 2014, left view (500 x 741)
    "immunohistochemistry": lambda d: d.immunohistochemistry(),  # stained tissue (512 x 512)
    "hubble_deep_field": lambda d: d.hubble_deep_field(),  # galaxies (872 x 1000)
    "retina": lambda d: d.retina(),  # human retina fundus (1411 x 1411)
    "camera": lambda d: _gray_to_rgb(d.camera()),  # cameraman (512 x 512)
    "brick": lambda d: _gray_to_rgb(d.brick()),  # brick wall texture (512 x 512)
    "grass": lambda d: _gray_to_rgb(d.grass()),  # grass texture (512 x 512)
    "gravel": lambda d: _gray_to_rgb(d.gravel()),  # gravel texture (512 x 512)
    "coins": lambda d: _gray_to_rgb(d.coins()),  # Greek coins (303 x 384)
    "moon": lambda d: _gray_to_rgb(d.moon()),  # lunar surface (512 x 512)
    "page": lambda d: _gray_to_rgb(d.page()),  # scanned text page (191 x 384)
}
TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle", "immunohistochemistry", "hubble_deep_field")
VAL_PHOTOS = ("chelsea", "coffee")


def load_photo(name: str, scale: float) -> np.ndarray:
    """Photo `name` as (H, W, 3) uint8, resized by `scale` (Lanczos) so that small crops hold
    whole objects rather than texture."""
    from PIL import Image
    from skimage import data

    image = np.ascontiguousarray(PHOTOS[name](data)[..., :3])
    if scale != 1.0:
        h, w = image.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    return image


class SkimagePhotos(Dataset):
    """Square crops of the pictures bundled in scikit-image, `(3, size, size)` uint8 in [0, 255]
    (grayscale pictures as three equal channels).

    The split holds out whole photos: "train" crops `train_photos`, "val" crops `val_photos`
    (by default the cat and the coffee cup, which no training crop has seen), "all" both.
    Crop positions are drawn uniformly with a generator seeded by (`seed`, photo), so crop i
    of a photo is the same crop for a given seed, whatever else changes. Key:
    `skimage/<photo>/<i>` (two crops may land on the same place); `meta["crop"]` is
    `[y, x, height, width]` in the resized photo.

    Args:
        size: crop side in pixels.
        crops_per_photo: crops taken from each photo.
        scale: resize factor applied to each photo before cropping.
        split: "train", "val" or "all".
        train_photos: photos of the training split (names in `tok_rgb.photos.PHOTOS`).
        val_photos: photos held out for "val"; must not overlap `train_photos`.
        seed: seed of the crop positions.
    """

    example_config = {"size": 32, "crops_per_photo": 4}

    def __init__(self, size: int = 32, crops_per_photo: int = 256, scale: float = 0.5,
                 split: Literal["train", "val", "all"] = "train", train_photos: Sequence[str] = TRAIN_PHOTOS,
                 val_photos: Sequence[str] = VAL_PHOTOS, seed: int = 0):
        for key, names in (("train_photos", train_photos), ("val_photos", val_photos)):
            unknown = [n for n in names if n not in PHOTOS]
            if unknown:
                raise ConfigError(f"unknown photo {', '.join(map(repr, unknown))}; choose from {', '.join(PHOTOS)}",
                                  key=key)
        if set(train_photos) & set(val_photos):
            raise ConfigError(f"photos {sorted(set(train_photos) & set(val_photos))} are in both splits; "
                              f"hold out whole photos", key="val_photos")
        if size < 1 or crops_per_photo < 1 or scale <= 0:
            raise ConfigError(f"need size >= 1, crops_per_photo >= 1 and scale > 0, got {size}, "
                              f"{crops_per_photo} and {scale}", key="size")
        names = {"train": list(train_photos), "val": list(val_photos),
                 "all": list(train_photos) + list(val_photos)}.get(split)
        if names is None:
            raise ConfigError(f"unknown split '{split}'; use train, val or all", key="split")
        self.size, self.scale, self.seed = size, scale, seed
        self.photos: dict[str, np.ndarray] = {}
        self.crops: list[tuple[str, int, int, int]] = []
        for name in names:
            photo = load_photo(name, scale)
            h, w = photo.shape[:2]
            if h < size or w < size:
                raise ConfigError(f"photo '{name}' is {h}x{w} after scale {scale}, smaller than crops of {size}; "
                                  f"raise scale or lower size", key="size")
            self.photos[name] = photo
            rng = np.random.default_rng([seed, list(PHOTOS).index(name)])
            ys = rng.integers(0, h - size + 1, crops_per_photo)
            xs = rng.integers(0, w - size + 1, crops_per_photo)
            self.crops += [(name, i, int(y), int(x)) for i, (y, x) in enumerate(zip(ys, xs))]

    def __len__(self) -> int:
        return len(self.crops)

    def key(self, index: int) -> str:
        name, i, _, _ = self.crops[index]
        return f"skimage/{name}/{i}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, _, y, x = self.crops[index]
        crop = self.photos[name][y:y + self.size, x:x + self.size]
        return {"key": self.key(index), "input": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
                "meta": {"source": f"skimage.data:{name}", "scale": self.scale, "crop": [y, x, self.size, self.size]}}
