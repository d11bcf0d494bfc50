"""Video files through PyAV: what a file holds (from its container metadata), the frames one
clip needs (seek to a keyframe before it, decode until its last frame, never the whole
video), and writing frames as an mp4 at a given frame rate. decord, when installed, can read
the frames instead (`read_frames_decord`).

Frame k of a video is the k-th frame that PyAV gives when it decodes the file from the start
(decord's frame index counts the same frames), whatever the file's timestamps say. The
readers below reach frame k without decoding frames 0..k-1 wherever the container lets them,
and decode from the start where it does not:

- AVI stores no presentation time: each chunk of the stream is one frame (an empty chunk, a
  dropped frame, is not in the index at all), its timestamp is the chunk's slot at the
  header's rate, and the pts FFmpeg reports are guesses, wrong for B-frames (off by one, or two
  frames' labels swapped, in `Megamind.avi` of opencv-doc). So an AVI is indexed by its chunks:
  frame k is the k-th chunk, a seek lands on a keyframe chunk whose frame number is its
  position in the index, and frames are counted from there, never mapped from pts.
- Other containers (mp4, mkv, webm, ...) carry real presentation times: frame k is the one at
  `start + k / fps`, which is the k-th decoded frame when the rate is constant. A seek that
  lands on a keyframe after the clip (an open GOP) seeks again, earlier. Frames that skip a
  position of that grid (a variable frame rate) are an error that says so, since which frame
  is "frame k" would then depend on where the read started.

decord seeks by the frame timestamps it reads from the packets; where those are not valid (an
AVI with B-frames) it decodes from the start instead (`read_frames_decord`).
"""

from __future__ import annotations

import bisect
import io
import math
import re
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
    fps: float  # the stream's frame rate; the average rate when `times` is set
    height: int
    width: int
    # Each frame's time in seconds from the first, only when frames are not 1/fps apart (an AVI
    # with dropped frames); None for a constant rate.
    times: tuple[float, ...] | None = None
    # AVI only: (frame number, chunk timestamp) of each keyframe chunk after the first, the
    # places a read may seek to; None for other containers.
    keyframes: tuple[tuple[int, int], ...] | None = None
    # AVI only: the first chunk's pts minus its timestamp (the shift FFmpeg's guessed pts carry:
    # 1 with B-frames); a keyframe whose pts is off its slot by anything else shows at another
    # position than its chunk's (an open GOP). None when FFmpeg guesses no pts: then AVI reads
    # never seek.
    pts_offset: int | None = None

    def count_at(self, fps: float | None = None) -> int:
        """How many frames the video has when sampled at `fps` (None: every frame)."""
        if fps is None:
            return self.frames
        return sample_indices(self.frames, self.fps, fps)

    def frame_at(self, k: int, fps: float | None = None) -> int:
        """The source frame shown at output frame k when sampling at `fps` (None: frame k):
        the last frame that starts at or before k / fps seconds."""
        if fps is None:
            return k
        if self.times is None:
            return source_frame(k, self.fps, fps)
        return max(0, min(self.frames - 1, bisect.bisect_right(self.times, k / fps + 1e-6) - 1))


def probe(path: Path) -> VideoInfo:
    """The first video stream's frame count, rate and size, from headers (and, for AVI, the
    chunk index that FFmpeg reads when it opens the file)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        s = container.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        if not rate:
            raise ValueError(f"{path}: the container records no frame rate")
        height, width = s.codec_context.height, s.codec_context.width
        if container.format.name == "avi":
            return _probe_avi(container, s, float(rate), height, width)
        frames = s.frames
        if not frames:  # some containers (webm) do not count frames: use the duration
            seconds = float(s.duration * s.time_base) if s.duration else (container.duration or 0) / av.time_base
            frames = int(math.floor(seconds * float(rate) + 1e-6))
        return VideoInfo(int(frames), float(rate), height, width)


def _probe_avi(container, s, rate: float, height: int, width: int) -> VideoInfo:
    """An AVI's frames are its non-empty chunks. The header's frame count (`s.frames`) counts
    empty chunks too (dropped frames: 444 in opencv-doc's `tree.avi`, which holds 68 frames),
    and its rate is the rate of chunk slots, not of frames, when some are empty."""
    entries = getattr(s, "index_entries", None)  # FFmpeg's copy of the AVI index (newer PyAV only)
    chunks = [(e.timestamp, bool(e.is_keyframe)) for e in entries if e.size > 0] if entries else []
    if not chunks:  # no index (or an old PyAV): read the packets, without decoding them
        chunks = [(p.dts, bool(p.is_keyframe)) for p in container.demux(s) if p.size and p.dts is not None]
        container.seek(0)
    chunks.sort()
    pts_offset = None
    for packet in container.demux(s):
        if packet.size:
            pts_offset = None if packet.pts is None or packet.dts is None else packet.pts - packet.dts
            break
    if not chunks:
        return VideoInfo(0, rate, height, width, None, (), None)
    first, tb = chunks[0][0], float(s.time_base)
    keyframes = tuple((i, ts) for i, (ts, key) in enumerate(chunks) if key and i > 0)
    if all(b[0] - a[0] == 1 for a, b in zip(chunks, chunks[1:])):  # a frame in every slot
        return VideoInfo(len(chunks), rate, height, width, None, keyframes, pts_offset)
    # Dropped frames: a variable frame rate. Its rate is the average over the stream's length
    # (the header's, which counts the empty chunks at the end too, when it has one).
    slots = max(chunks[-1][0] - first + 1, s.duration or 0)
    times = tuple((ts - first) * tb for ts, _ in chunks)
    return VideoInfo(len(chunks), len(chunks) / (slots * tb), height, width, times, keyframes, pts_offset)


def sample_indices(frames: int, source_fps: float, fps: float) -> int:
    """How many frames a constant-rate video has when sampled at `fps` (frame k shows source
    frame floor(k * source_fps / fps))."""
    return max(0, math.ceil(frames * fps / source_fps - 1e-9))


def source_frame(k: int, source_fps: float, fps: float) -> int:
    """The source frame shown at output frame k when sampling a constant-rate video at `fps`."""
    return int(math.floor(k * source_fps / fps + 1e-6))


Transform = Callable[[np.ndarray], torch.Tensor]


def read_frames(path: Path, indices: list[int], info: VideoInfo, transform: Transform) -> list[torch.Tensor]:
    """`transform(frame)` for each source frame number in `indices` (ascending, repeats
    allowed), each frame an `(H, W, 3)` uint8 array. Decodes from a keyframe before the first
    index to the last index only, or from the start of the file where the container's
    timestamps cannot say which frame a keyframe is (see the module's docstring)."""
    wanted = sorted(set(indices))
    if info.keyframes is not None:
        got, last = _read_avi(path, wanted, info, transform) or _decode(path, wanted, transform)
    else:
        got, last = _read_by_time(path, wanted, info, transform)
    missing = [i for i in wanted if i not in got]
    if missing:
        ended = f"the last decoded frame is {last}" if last is not None else "no frame decoded"
        raise ValueError(f"{path}: frames {missing[0]}-{missing[-1]} could not be decoded ({ended}; the "
                         f"container says {info.frames} frames); the file may be truncated")
    return [got[i] for i in indices]


Found = tuple[dict[int, torch.Tensor], "int | None"]  # the frames read, the last frame number decoded


def _decode(path: Path, wanted: list[int], transform: Transform, seek: tuple[int, int] | None = None,
            pts_offset: int | None = None) -> Found | None:
    """Decode and count frames: from the start of the file (frame 0), or, with `seek` =
    (frame number, chunk timestamp) of an AVI keyframe, from that keyframe. A keyframe is only
    a place to start counting when no frame decoded after it shows before it (a closed GOP):
    its pts must sit on its own slot, every later chunk's pts after its, and the decoder's
    first frame must be a keyframe. Otherwise (an open GOP: its leading B-frames, which the
    decoder drops after a seek, would shift every later frame number) this returns None and
    the caller starts earlier."""
    import av

    got: dict[int, torch.Tensor] = {}
    keep, number, last = set(wanted), (0 if seek is None else seek[0]), None
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        s.thread_type = "AUTO"
        if seek is not None:
            container.seek(seek[1], stream=s, backward=True, any_frame=False)
        key_pts = None
        for packet in container.demux(s):
            if seek is not None and packet.size:
                if key_pts is None:  # the chunk the seek landed on
                    if (packet.dts != seek[1] or not packet.is_keyframe or packet.pts is None
                            or pts_offset is None or packet.pts - packet.dts != pts_offset):
                        return None
                    key_pts = packet.pts
                elif packet.pts is None or packet.pts <= key_pts:
                    return None
            for frame in s.decode(packet):
                if seek is not None and last is None and not frame.key_frame:
                    return None
                if number in keep:
                    got[number] = transform(frame.to_ndarray(format="rgb24"))
                last, number = number, number + 1
                if number > wanted[-1]:
                    return got, last
    return got, last


def _read_avi(path: Path, wanted: list[int], info: VideoInfo, transform: Transform) -> Found | None:
    """From the nearest keyframe chunk before the clip that passes `_decode`'s checks (three
    tried, nearest first); None sends the read to the start of the file."""
    if info.pts_offset is None:  # no pts to check a keyframe's position with
        return None
    before = [k for k in info.keyframes if k[0] <= wanted[0]]
    for seek in reversed(before[-3:]):
        found = _decode(path, wanted, transform, seek, info.pts_offset)
        if found is not None:
            return found
    return None


def _read_by_time(path: Path, wanted: list[int], info: VideoInfo, transform: Transform) -> Found:
    """Frames numbered by their pts on the grid `start + k / fps`: from the keyframe that a
    seek to `wanted[0]`'s time lands on, or from the start for a clip at frame 0. A seek can
    land on a keyframe after that frame (an open GOP: the B-frames that show before the
    keyframe are dropped after a seek); then the read seeks again to just before that
    keyframe, three times at most, and then decodes from the start. A frame without a pts is
    numbered by counting from the start."""
    import av

    with av.open(str(path)) as container:
        s = container.streams.video[0]
        start = s.start_time or 0
        per_frame = 1.0 / (float(s.time_base) * info.fps)  # stream ticks per frame
    seek = start + int(wanted[0] * per_frame) if wanted[0] > 0 else None
    for _ in range(4):
        found = _decode_on_grid(path, wanted, transform, start, per_frame, seek)
        if found is None:  # a frame has no pts
            return _decode(path, wanted, transform)
        if isinstance(found, tuple):
            return found
        seek = found - 1 if seek is not None and found - 1 > start else None
    return _decode_on_grid(path, wanted, transform, start, per_frame, None) or _decode(path, wanted, transform)


def _decode_on_grid(path: Path, wanted: list[int], transform: Transform, start: int, per_frame: float,
                    seek: int | None) -> Found | int | None:
    """`_read_by_time`'s pass from `seek` (a stream timestamp; None: the start of the file):
    the frames read, or the timestamp of the keyframe the seek landed on when it is after
    `wanted[0]`, or None when a frame has no pts. Frames must follow one another on the grid:
    a skipped or repeated position (a variable frame rate) would make frame numbers depend on
    where the read started, so it is an error that says so."""
    import av

    got: dict[int, torch.Tensor] = {}
    keep, last, landed = set(wanted), None, None
    with av.open(str(path)) as container:
        s = container.streams.video[0]
        s.thread_type = "AUTO"
        if seek is not None:
            container.seek(seek, stream=s, backward=True, any_frame=False)
        for packet in container.demux(s):
            if landed is None and packet.dts is not None:
                landed = packet.dts
            for frame in s.decode(packet):
                if frame.pts is None:
                    return None
                i = round((frame.pts - start) / per_frame)
                if last is None and seek is not None and i > wanted[0] and landed is not None:
                    return landed
                if last is not None and i != last + 1:
                    raise ValueError(
                        f"{path}: frame timestamps skip from frame {last} to {i} at the stream's "
                        f"{1 / per_frame / float(s.time_base):g} fps: a variable frame rate, which video_files "
                        "reads only from AVI files; convert it to a constant rate, e.g. ffmpeg -i IN -fps_mode cfr OUT")
                if i in keep:
                    got[i] = transform(frame.to_ndarray(format="rgb24"))
                last = i
                if i >= wanted[-1]:
                    return got, last
    return got, last


def import_decord():
    """The decord module, or a config error saying how to get it."""
    try:
        import decord
    except ImportError:
        raise ConfigError("video backend 'decord' needs decord: pip install decord, or use backend 'pyav'",
                          key="backend") from None
    return decord


def read_frames_decord(path: Path, indices: list[int], info: VideoInfo, transform: Transform) -> list[torch.Tensor]:
    """`read_frames` through decord: the same frames (both decode with FFmpeg; the tests
    compare them). decord fetches the distinct indices in one `get_batch` call, seeking by the
    frame timestamps it reads from the packets. Where those are not valid (an AVI with
    B-frames: decord then records no pts, and its seeks return other frames than asked, e.g.
    frames 0-2 for 98-100 of `Megamind.avi`), it decodes from the first frame with `next()`."""
    decord = import_decord()
    wanted = sorted(set(indices))
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        if wanted[-1] >= len(reader):
            raise ValueError(f"frame {wanted[-1]} asked, decord indexes {len(reader)} (the container says "
                             f"{info.frames})")
        if not _decord_seeks(reader):
            # (decord's skip_frames would copy less, but it lands on other frames here too)
            frames, keep = [], set(wanted)
            for i in range(wanted[-1] + 1):
                frame = reader.next()
                if i in keep:
                    frames.append(frame.asnumpy())
            batch = np.stack(frames)
        else:
            batch = reader.get_batch(wanted).asnumpy()
    except Exception as err:  # decord raises its own error types, some of them for sizes it cannot copy
        raise ValueError(f"{path}: decord could not read frames {wanted[0]}-{wanted[-1]} "
                         f"({type(err).__name__}: {str(err).splitlines()[0]}); try backend 'pyav'") from None
    got = {i: transform(frame) for i, frame in zip(wanted, batch)}
    return [got[i] for i in indices]


def _decord_seeks(reader) -> bool:
    """Whether decord's frame timestamps are valid (finite, not negative, increasing), which
    its seeks rely on."""
    times = reader.get_frame_timestamp(list(range(len(reader))))[:, 0]
    return bool(np.isfinite(times).all() and (times >= 0).all() and (np.diff(times) > 0).all())


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """`frames` `(T, H, W, 3)` uint8 as mp4 bytes (`encode_mp4_packets` at its defaults)."""
    return encode_mp4_packets(frames, fps)[0]


def encode_mp4_packets(frames: np.ndarray, fps: float, options: dict[str, str] | None = None) -> tuple[bytes, list[bytes]]:
    """`frames` `(T, H, W, 3)` uint8 as mp4 bytes (H.264 when PyAV has libx264, else MPEG-4
    part 2) at exactly `fps` (a rational close to it: 29.97 is stored as 30000/1001), and the
    encoder's packets as they went into the file. `options` are libx264's (CRF 18, preset
    medium by default)."""
    import av

    t, h, w, _ = frames.shape
    buf, packets = io.BytesIO(), []
    with av.open(buf, mode="w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w, h
        # 4:2:0 halves the chroma planes, so it needs even sides; 4:4:4 takes any size (H.264 only).
        stream.pix_fmt = "yuv420p" if (h % 2 == 0 and w % 2 == 0) or codec != "libx264" else "yuv444p"
        if codec == "libx264":
            stream.options = options or {"crf": "18", "preset": "medium"}
        for image in [*frames, None]:  # None flushes the encoder
            for packet in stream.encode(None if image is None else
                                        av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                packets.append(bytes(packet))
                container.mux(packet)
    return buf.getvalue(), packets


def decode_mp4(data: bytes) -> np.ndarray:
    """Every frame of an mp4 in memory as `(T, H, W, 3)` uint8."""
    import av

    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def slice_bytes(packet: bytes) -> int:
    """Bytes of the coded slices (NAL unit types 1-5) in an H.264 Annex B packet: the picture
    data, without start codes, parameter sets or SEI messages (x264 writes its version and
    options into an SEI of the first packet)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", packet)]
    total = 0
    for i, begin in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(packet)
        nal = packet[begin:end].rstrip(b"\x00")  # a NAL unit never ends in a zero byte
        if nal and 1 <= nal[0] & 0x1F <= 5:
            total += len(nal)
    return total


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> Path:
    atomic_write_bytes(path, encode_mp4(frames, fps))
    return path
