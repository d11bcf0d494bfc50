"""Video files through PyAV: what a file holds (from its container metadata), the frames one
clip needs (seek to the keyframe before it, decode until its last frame, never the whole
video), and writing frames as an mp4 at a given frame rate. decord, when installed, can read
the frames instead (`read_frames_decord`: random access through its frame index).

Frame numbers are positions at the stream's average frame rate, computed from each frame's
timestamp, so a seek lands on the right frame even when the decoder starts at a keyframe.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tokcore.api import ConfigError, atomic_write_bytes

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv")


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # number of frames (from the container; estimated from the duration if absent)
    fps: float
    height: int
    width: int


def probe(path: Path) -> VideoInfo:
    """The first video stream's frame count, rate and size, from headers only."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        if not rate:
            raise ValueError(f"{path}: the container records no frame rate")
        frames = s.frames
        if not frames:  # some containers (webm, avi) do not count frames: use the duration
            seconds = float(s.duration * s.time_base) if s.duration else (container.duration or 0) / av.time_base
            frames = int(math.floor(seconds * float(rate) + 1e-6))
        return VideoInfo(int(frames), float(rate), s.codec_context.height, s.codec_context.width)


def sample_indices(frames: int, source_fps: float, fps: float) -> int:
    """How many frames the video has when sampled at `fps` (frame k shows source frame
    floor(k * source_fps / fps))."""
    return max(0, math.ceil(frames * fps / source_fps - 1e-9))


def source_frame(k: int, source_fps: float, fps: float) -> int:
    """The source frame shown at output frame k when sampling at `fps`."""
    return int(math.floor(k * source_fps / fps + 1e-6))


def read_frames(path: Path, indices: list[int], info: VideoInfo,
                transform: Callable[[np.ndarray], torch.Tensor]) -> list[torch.Tensor]:
    """`transform(frame)` for each source frame number in `indices` (ascending, repeats
    allowed), each frame an `(H, W, 3)` uint8 array. Decodes from the keyframe before the
    first index to the last index only."""
    import av

    wanted = sorted(set(indices))
    got: dict[int, torch.Tensor] = {}
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        s.thread_type = "AUTO"
        start = s.start_time or 0
        per_frame = 1.0 / (float(s.time_base) * info.fps)  # stream ticks per frame
        container.seek(start + int(wanted[0] * per_frame), stream=s, backward=True, any_frame=False)
        last = None
        for frame in container.decode(s):
            if frame.pts is None:
                continue
            i = round((frame.pts - start) / per_frame)
            if i in got or i < wanted[0]:
                continue
            if i > wanted[-1]:
                break
            if i in wanted:
                got[i] = transform(frame.to_ndarray(format="rgb24"))
            last = i
    missing = [i for i in wanted if i not in got]
    if missing:
        ended = f"the last decoded frame is {last}" if last is not None else "no frame decoded"
        raise ValueError(f"{path}: frames {missing[0]}-{missing[-1]} could not be decoded ({ended}; the "
                         f"container says {info.frames} frames); the file may be truncated")
    return [got[i] for i in indices]


def import_decord():
    """The decord module, or a config error saying how to get it."""
    try:
        import decord
    except ImportError:
        raise ConfigError("video backend 'decord' needs decord: pip install decord, or use backend 'pyav'",
                          key="backend") from None
    return decord


def read_frames_decord(path: Path, indices: list[int], info: VideoInfo,
                       transform: Callable[[np.ndarray], torch.Tensor]) -> list[torch.Tensor]:
    """`read_frames` through decord: the same frames (both decode with FFmpeg; the tests
    compare them), fetched in one `get_batch` call of the distinct indices."""
    decord = import_decord()
    wanted = sorted(set(indices))
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        if wanted[-1] >= len(reader):
            raise ValueError(f"frame {wanted[-1]} asked, decord indexes {len(reader)} (the container says "
                             f"{info.frames})")
        batch = reader.get_batch(wanted).asnumpy()
    except Exception as err:  # decord raises its own error types, some of them for sizes it cannot copy
        raise ValueError(f"{path}: decord could not read frames {wanted[0]}-{wanted[-1]} "
                         f"({type(err).__name__}: {str(err).splitlines()[0]}); try backend 'pyav'") from None
    got = {i: transform(frame) for i, frame in zip(wanted, batch)}
    return [got[i] for i in indices]


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """`frames` `(T, H, W, 3)` uint8 as mp4 bytes (H.264 when PyAV has it, else MPEG-4 part 2)
    at exactly `fps` (a rational close to it: 29.97 is stored as 30000/1001)."""
    import av

    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w, h
        # 4:2:0 halves the chroma planes, so it needs even sides; 4:4:4 takes any size (H.264 only).
        stream.pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) or codec != "libx264" else "yuv444p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "medium"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> Path:
    atomic_write_bytes(path, encode_mp4(frames, fps))
    return path
