"""AVI files in `video_files` (issue 13): frame k of a clip is the k-th frame of PyAV's
sequential decode, pixel for pixel, for every clip, with both backends.

AVI stores no presentation times. With B-frames FFmpeg guesses pts that are off by one from
the chunk slots (and, in opencv-doc's `Megamind.avi`, swap two frames' labels); with dropped
frames (empty chunks) the header counts slots, not frames (`tree.avi`: 444 slots, 68 frames).
Reading clips by pts on a constant-rate grid failed on both ("frames 0-0 could not be
decoded ... the file may be truncated") or returned other frames than asked. The fixtures
below are small AVIs with those properties, written with PyAV.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import tok_rgb.video as video
from tok_rgb.datasets import VideoFiles
from tok_rgb.video import probe
from tok_rgb.views import apply_view

# slots (at 20 fps) that hold a frame in the fixtures with dropped frames: 40 frames in 47 slots
DROPPED = [0, 1, 3, 4, 7, 8, 9, 12, 13, 16] + list(range(17, 47))
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")


def avi(path, codec="mpeg4", slots=None, b_frames=0, closed_gop=False, fps=20, h=24, w=64, gop=6, n=40):
    """An AVI whose frame i shows i in binary (six 8-px stripes, black or white, which MPEG-4
    keeps exactly) after a white column at the left, put at `slots[i]` (default: one frame
    every slot). 64 px wide: decord copies frames only at some widths."""
    slots = slots or list(range(n))
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p" if codec == "mpeg4" else "rgb24"
        s.gop_size = gop
        s.codec_context.max_b_frames = b_frames
        options = {"qscale": "2"} if codec == "mpeg4" else {}
        if closed_gop:  # FFmpeg's mpeg4 closes GOPs only without scene-cut keyframes
            options.update(flags="+cgop", sc_threshold="1000000000")
        s.options = options
        for i, slot in enumerate(slots):
            image = np.full((h, w, 3), 128, np.uint8)
            image[:, :4] = 255
            for bit in range(6):
                image[:, 16 + 8 * bit:24 + 8 * bit] = 255 * (i >> bit & 1)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = slot, Fraction(1, fps)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


def sequential(path):
    """Every frame PyAV decodes from the start, in order: what frame k of the file is."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def frame_numbers(clip):
    """The frame number each frame of a (3, T, H, W) clip of `avi` shows."""
    bits = clip[:, :, :, 16:64].float().mean(dim=(0, 2)).reshape(clip.shape[1], 6, 8).mean(dim=2) > 128
    return [sum(int(b) << k for k, b in enumerate(row)) for row in bits.tolist()]


def backends():
    try:
        import decord  # noqa: F401
    except ImportError:
        return ["pyav", pytest.param("decord", marks=pytest.mark.skip("decord is not installed"))]
    return ["pyav", "decord"]


def check_every_clip(ds, frames, fps=None):
    """Every clip of `ds` decodes and equals PyAV's sequential decode of its source frames, in
    the clip's view; returns the source frames the clips reach."""
    reached = set()
    for i in range(len(ds)):
        sample = ds[i]
        file, _, info, start, end = ds.clips[i]
        source = list(range(start, end)) if fps is None else [info.frame_at(k, fps) for k in range(start, end)]
        view = ds.views.choose(info.height, info.width, ds.seed, i, ds.key(i))
        expected = torch.stack([apply_view(frames[j][None], view)[0] for j in source], dim=1)
        assert torch.equal(sample["input"], expected), (ds.key(i), source)
        assert sample["meta"]["source_frames"] == [source[0], source[-1] + 1]
        reached.update(source)
    return reached


@pytest.fixture
def seeks(monkeypatch):
    """The (frame number, chunk timestamp) of each keyframe an AVI read started from (None:
    from the start of the file), and whether the read could count from there."""
    calls = []
    decode = video._decode

    def spy(path, wanted, transform, seek=None, pts_offset=None):
        found = decode(path, wanted, transform, seek, pts_offset)
        calls.append((seek, found is not None))
        return found

    monkeypatch.setattr(video, "_decode", spy)
    return calls


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("closed_gop", [True, False], ids=["closed-gop", "open-gop"])
def test_avi_with_b_frames_every_clip_is_the_sequential_decode(tmp_path, backend, closed_gop, seeks):
    path = avi(tmp_path / "b.avi", b_frames=2, closed_gop=closed_gop)
    frames = sequential(path)
    ds = VideoFiles(str(path), clip_length=8, clip_stride=1, split="all", backend=backend)
    assert len(ds) == 33
    assert check_every_clip(ds, frames) == set(range(40))  # every frame is in some clip
    assert frame_numbers(ds[32]["input"]) == list(range(32, 40))
    info = probe(path)
    assert (info.frames, info.fps, info.times) == (40, 20.0, None) and len(frames) == 40
    if backend == "pyav":
        late = [seek for seek, counted in seeks if counted and seek is not None and seek[0] > 20]
        if closed_gop:  # a keyframe whose pts sits on its slot: later clips seek to it
            assert late and all(seek is not None for seek, counted in seeks[-8:] if counted)
        else:  # the leading B-frames of an open GOP would shift the count: from the start
            assert not late


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("codec", ["mpeg4", "cinepak"])
def test_avi_with_dropped_frames_every_clip_is_the_sequential_decode(tmp_path, backend, codec, seeks):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    path = avi(tmp_path / "d.avi", codec=codec, slots=DROPPED)
    frames = sequential(path)
    ds = VideoFiles(str(path), clip_length=8, clip_stride=1, split="all", backend=backend)
    assert len(ds) == 33 and check_every_clip(ds, frames) == set(range(40))  # 40 frames, not 47 slots
    assert frame_numbers(ds[10]["input"]) == list(range(10, 18))
    info = probe(path)
    assert len(frames) == info.frames == 40
    assert info.fps == pytest.approx(40 / (47 / 20)) and info.times == pytest.approx([s / 20 for s in DROPPED])
    if backend == "pyav":
        assert any(seek is not None and counted for seek, counted in seeks)  # it still seeks
    # At 20 fps (the slot rate) a dropped frame's slot shows the frame before it, as a player does.
    at_slots = VideoFiles(str(path), clip_length=8, clip_stride=3, fps=20.0, split="all", size=16, crop_size=12,
                          crop="random", flip="random", backend=backend)
    assert len(at_slots) == 14  # 47 slots
    assert check_every_clip(at_slots, frames, fps=20.0) == set(range(40))
    plain = VideoFiles(str(path), clip_length=8, fps=20.0, split="all", backend=backend)
    assert frame_numbers(plain[0]["input"]) == [0, 1, 1, 2, 3, 3, 3, 4]
    assert at_slots[0]["meta"]["fps"] == 20.0 and at_slots[0]["meta"]["source_fps"] == info.fps


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("name, count", [("Megamind.avi", 270), ("tree.avi", 68)])
def test_opencv_doc_avis_every_clip_is_the_sequential_decode(backend, name, count):
    """The files of the report (Debian's opencv-doc): MPEG-4 with B-frames and FFmpeg pts off
    by one and swapped (Megamind), Cinepak with 376 dropped frames (tree)."""
    path = OPENCV_DOC / name
    if not path.exists():
        pytest.skip(f"{path} is not installed (apt-get install opencv-doc)")
    frames = sequential(path)
    ds = VideoFiles(str(path), clip_length=16, split="all", backend=backend)
    assert len(frames) == count and len(ds) == count // 16
    if backend == "pyav":
        assert check_every_clip(ds, frames) == set(range(count // 16 * 16))
    else:  # decord decodes Megamind from its first frame for every clip: a few clips, spread over it
        few = VideoFiles(str(path), clip_length=16, split="all", backend=backend, max_clips_per_video=4)
        assert len(check_every_clip(few, frames)) == 64
    assert probe(path).frames == count
