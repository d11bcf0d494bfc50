"""Video files: clip indexing from metadata, fps sampling, seeking, views, failures, writing."""

import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from tok_rgb.datasets import VideoFiles
from tok_rgb.video import encode_mp4, probe
from tokcore import registry
from tokcore.batch import GuardedDataset
from tokcore.errors import ConfigError


def numbered_video(path, frames=40, fps=20, h=24, w=32, gop=6):
    """Frame i is flat gray at level 5 * i + 20 (frame numbers survive H.264 within +-2), with a
    white column at the left so flips show; keyframes every `gop` frames, so reading a later
    clip must seek."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.gop_size = gop
        s.options = {"crf": "10"}
        for i in range(frames):
            img = np.full((h, w, 3), 5 * i + 20, np.uint8)
            img[:, :4] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode())
    return path


def frame_numbers(clip):
    """The source frame number of each frame of a (3, T, H, W) clip of a numbered video."""
    level = clip[:, :, :, clip.shape[-1] // 2:].float().mean(dim=(0, 2, 3))
    return [round((v - 20) / 5) for v in level.tolist()]


def test_metadata_and_clips_at_the_source_rate(tmp_path):
    numbered_video(tmp_path / "v.mp4")
    info = probe(tmp_path / "v.mp4")
    assert (info.frames, info.fps, info.height, info.width) == (40, 20.0, 24, 32)
    ds = registry.build("dataset", {"name": "video_files", "path": str(tmp_path), "clip_length": 8,
                                    "clip_stride": 12, "split": "all"})
    assert [ds.key(i) for i in range(len(ds))] == ["v/0-8", "v/12-20", "v/24-32"]
    for i, start in enumerate((0, 12, 24)):
        s = ds[i]
        assert s["input"].shape == (3, 8, 24, 32) and s["input"].dtype == torch.uint8
        assert frame_numbers(s["input"]) == list(range(start, start + 8))
        assert s["meta"]["fps"] == 20.0 and s["meta"]["frames"] == [start, start + 8]


def test_sampling_at_a_lower_and_a_higher_fps(tmp_path):
    numbered_video(tmp_path / "v.mp4", frames=40, fps=20)
    half = VideoFiles(str(tmp_path), clip_length=5, fps=10.0, split="all")
    assert len(half) == 4  # 20 frames at 10 fps, 4 clips of 5
    assert frame_numbers(half[1]["input"]) == [10, 12, 14, 16, 18]
    assert half[1]["meta"]["fps"] == 10.0 and half[1]["meta"]["source_frames"] == [10, 19]
    odd = VideoFiles(str(tmp_path), clip_length=4, fps=8.0, split="all")  # every 2.5 source frames
    assert frame_numbers(odd[0]["input"]) == [0, 2, 5, 7]
    double = VideoFiles(str(tmp_path), clip_length=6, fps=40.0, split="all", max_clips_per_video=2)
    assert [double.key(i) for i in range(len(double))] == ["v/0-6", "v/72-78"]  # spread over 80 frames
    assert frame_numbers(double[1]["input"]) == [36, 36, 37, 37, 38, 38]


def test_views_apply_to_every_frame_alike(tmp_path):
    numbered_video(tmp_path / "v.mp4", frames=16, h=24, w=32)
    plain = VideoFiles(str(tmp_path), clip_length=8, split="all")[1]["input"]
    flipped = VideoFiles(str(tmp_path), clip_length=8, split="all", flip="horizontal")[1]["input"]
    assert torch.equal(flipped, plain.flip(-1))
    small = VideoFiles(str(tmp_path), clip_length=8, split="all", size=12, crop_size=12, crop="bottom")[1]
    assert small["input"].shape == (3, 8, 12, 12) and small["meta"]["crop"] == [0, 4, 12, 12]
    assert frame_numbers(small["input"]) == list(range(8, 16))
    randomly = VideoFiles(str(tmp_path), clip_length=2, split="all", flip="random", seed=3)
    for i in range(len(randomly)):  # one draw per clip: all frames flipped or none
        s = randomly[i]
        left_white = bool((s["input"][:, :, :, :3] > 240).all())
        assert left_white != s["meta"]["flip"]


def test_short_videos_splits_and_corrupt_files(tmp_path):
    (tmp_path / "a").mkdir()
    numbered_video(tmp_path / "a" / "long.mp4", frames=20)
    numbered_video(tmp_path / "short.mp4", frames=5)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    full = (tmp_path / "a" / "long.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(full[: len(full) // 2])
    ds = VideoFiles(str(tmp_path), clip_length=8, split="all")
    keys = [ds.key(i) for i in range(len(ds))]
    assert keys == ["a/long/0-8", "a/long/8-16", "broken", *[k for k in keys if k.startswith("cut")], "short/0-5"]
    guarded = GuardedDataset(ds)
    results = {guarded[i]["key"]: guarded[i] for i in range(len(ds))}
    assert "broken: cannot load" in results["broken"]["error"]
    assert results["short/0-5"]["input"].shape == (3, 5, 24, 32)
    assert results["a/long/8-16"]["input"].shape == (3, 8, 24, 32)
    assert any("error" in r for k, r in results.items() if k.startswith("cut"))
    train, val = (VideoFiles(str(tmp_path), clip_length=8, split=s, val_fraction=0.5) for s in ("train", "val"))
    files = lambda d: {d.clips[i][0] for i in range(len(d))}
    assert not files(train) & files(val) and len(files(train) | files(val)) == 4


def test_mp4_written_at_the_exact_rate(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (9, 16, 20, 3), dtype=np.uint8)
    for fps in (12.0, 29.97, 25.0):
        (tmp_path / "o.mp4").write_bytes(encode_mp4(frames, fps))
        info = probe(tmp_path / "o.mp4")
        assert info.frames == 9 and (info.height, info.width) == (16, 20)
        assert abs(info.fps - fps) < 1e-3, (fps, info.fps)
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(25)
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert decoded.shape == frames.shape


def test_video_modality_writes_mp4_at_the_recorded_fps_and_raw_frames(tmp_path):
    video = registry.build("modality", {"name": "video"})
    clip = torch.linspace(0, 255, 6)[None, :, None, None].expand(3, 6, 8, 12).contiguous()
    files = video.write_decoded(clip, tmp_path / "clips" / "x", meta={"fps": 7.5})
    assert [f.name for f in files] == ["x.mp4", "x.npy"]
    info = probe(files[0])
    assert (info.frames, info.fps, info.height, info.width) == (6, 7.5, 8, 12)
    assert np.array_equal(np.load(files[1]), clip.numpy())
    rgb = registry.build("modality", {"name": "rgb"})
    png = rgb.write_decoded(clip[:, 0], tmp_path / "img")
    from PIL import Image
    assert png[0].name == "img.png" and np.asarray(Image.open(png[0])).shape == (8, 12, 3)
    grid = video.write_samples(clip[None], clip[None], tmp_path / "samples" / "step")
    assert np.asarray(Image.open(grid[0])).shape == (16, 72, 3)  # 2 rows of 6 frames



def test_decord_backend_reads_the_same_frames(tmp_path):
    pytest.importorskip("decord")
    numbered_video(tmp_path / "v.mp4", w=64)  # decord copies frames only at some widths (64 is one)
    options = {"path": str(tmp_path), "clip_length": 5, "fps": 10.0, "split": "all", "crop_size": 16}
    pyav, decord = VideoFiles(**options), VideoFiles(**options, backend="decord")
    assert len(pyav) == len(decord) == 4
    for i in range(len(pyav)):
        a, b = pyav[i], decord[i]
        assert a["key"] == b["key"] and a["meta"] == b["meta"]
        assert torch.equal(a["input"], b["input"])  # both decode with FFmpeg: the same pixels
    assert frame_numbers(decord[3]["input"]) == [30, 32, 34, 36, 38]


def test_decord_backend_failures_are_per_sample_and_its_absence_a_config_error(tmp_path, monkeypatch):
    numbered_video(tmp_path / "v.mp4", frames=8, w=64)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    try:
        import decord  # noqa: F401
    except ImportError:
        pass
    else:
        guarded = GuardedDataset(VideoFiles(str(tmp_path), clip_length=8, split="all", backend="decord"))
        results = {guarded[i]["key"]: guarded[i] for i in range(len(guarded))}
        assert "broken: cannot load" in results["broken"]["error"]
        assert results["v/0-8"]["input"].shape == (3, 8, 24, 64)
    monkeypatch.setitem(sys.modules, "decord", None)  # as if it were not installed
    with pytest.raises(ConfigError, match="pip install decord"):
        VideoFiles(str(tmp_path), clip_length=8, split="all", backend="decord")


def mpeg4_mp4(path, slots, b_frames=0, fps=20, h=24, w=64):
    """An mp4 of MPEG-4 part 2 (FFmpeg's encoder: open GOPs when it writes B-frames), frame i
    put at slot `slots[i]` of `fps`."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt, s.gop_size = w, h, "yuv420p", 6
        s.codec_context.max_b_frames = b_frames
        for i, slot in enumerate(slots):
            image = np.full((h, w, 3), 5 * i + 20, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = slot, Fraction(1, fps)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path


def test_open_gop_seeks_again_before_the_keyframe(tmp_path):
    """A seek to a clip's time can land on a keyframe after its first frame (the B-frames shown
    before an open GOP's keyframe are dropped after a seek); the read seeks again, earlier."""
    path = mpeg4_mp4(tmp_path / "b.mp4", range(40), b_frames=2)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    ds = VideoFiles(str(path), clip_length=4, clip_stride=2, split="all")
    assert len(ds) == 19
    for i in range(len(ds)):
        start, end = ds[i]["meta"]["source_frames"]
        assert np.array_equal(ds[i]["input"].permute(1, 2, 3, 0).numpy(), np.stack(frames[start:end])), ds.key(i)


def test_a_variable_frame_rate_outside_avi_is_reported_as_such(tmp_path):
    path = mpeg4_mp4(tmp_path / "vfr.mp4", [0, 1, 3, 4] + list(range(6, 20)))
    ds = GuardedDataset(VideoFiles(str(path), clip_length=4, split="all"))
    assert "variable frame rate" in ds[0]["error"] and "truncated" not in ds[0]["error"]
