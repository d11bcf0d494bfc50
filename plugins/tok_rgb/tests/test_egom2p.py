"""EgoM2P's video pipeline: the Cosmos fixture (fixtures/cosmos) imported with
`--config tok-rgb:egom2p-depth` / `egom2p-rgb`, a depth clip (a camera pan over the
Middlebury motorcycle, tok-depth) and an RGB clip tokenized and decoded end to end with
EgoM2P's sampling (30 -> 8 fps, center crop, resize); each decoded clip has exactly the
frames it was tokenized with (the store records the count, decode passes `frames=`)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tokcore
from tokcore.cli import main
from tokcore.tokens.store import TokenStore

ARCHIVE = Path(__file__).parent / "fixtures" / "cosmos" / "Cosmos-Tokenizer-DV4x8x8"
pytest.importorskip("tok_depth")
pytest.importorskip("skimage")


def import_cosmos(out: Path, config: str) -> Path:
    assert main(["import", "cosmos", str(ARCHIVE), "--output", str(out), "--config", config, "input_size=32"]) == 0
    return out


@pytest.fixture(scope="module")
def depth_run(tmp_path_factory):
    return import_cosmos(tmp_path_factory.mktemp("egom2p") / "depth", "tok-rgb:egom2p-depth")


@pytest.fixture(scope="module")
def depth_clips(tmp_path_factory):
    """Two 1-second pans at 30 fps, stored as EgoM2P stores depth: .npz with arr_0 (T, H, W)."""
    from tok_depth.video import motorcycle_pan

    root = tmp_path_factory.mktemp("depth")
    (root / "seq").mkdir()
    np.savez(root / "seq" / "a.npz", arr_0=motorcycle_pan(frames=30, size=40, step=1))
    np.savez(root / "seq" / "b.npz", arr_0=motorcycle_pan(frames=30, size=40, step=1, top=60, left=10) * 2)
    return root


def tokenize_and_decode(run: Path, data: list[str], tmp: Path) -> tuple[TokenStore, Path]:
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(tmp / "tokens"), *data,
                 "--workers", "0", "--batch-size", "2"]) == 0
    assert main(["decode", "--checkpoint", str(run), "--tokens", str(tmp / "tokens"), "--output", str(tmp / "out")]) == 0
    return TokenStore(tmp / "tokens"), tmp / "out"


def test_depth_video_through_cosmos_at_egom2ps_settings(depth_run, depth_clips, tmp_path, capsys):
    tok = tokcore.load_tokenizer(depth_run)
    assert tok.info()["modality"]["name"] == "depth_video" and tok.codebook_size == 64000
    data = [f"data.path={depth_clips}", "data.crop_size=40", "data.size=32"]  # EgoM2P: 480 then 256
    store, out = tokenize_and_decode(depth_run, data, tmp_path)

    # 30 frames at 30 fps -> 8 at 8 fps, padded to 9 by Cosmos: 3 latent frames of 4 x 4
    assert sorted(store) == ["seq/a", "seq/b"]
    meta = store.meta("seq/a")
    assert meta["num_frames"] == 8 and meta["source_frames"] == [0, 4, 8, 11, 15, 19, 23, 26]
    assert store.shape("seq/a") == (3, 4, 4)

    # the tokens are Cosmos's on EgoM2P's mapping, computed here independently: the clip's
    # min-max onto [-1, 1], the same on 3 channels
    from tok_depth.video import DepthVideoFiles

    clip = DepthVideoFiles(str(depth_clips), split="all", val_fraction=0.0, source_fps=30.0, fps=8.0,
                           crop_size=40, size=32)[0]["input"]
    valid = clip > 0  # the motorcycle's holes (EgoM2P's RollingDepth has none) take the middle, 0
    assert 0 < valid.float().mean() < 1
    lo, hi = clip[valid].min(), clip[valid].max()
    by_hand = torch.where(valid, 2 * (clip - lo) / (hi - lo) - 1, 0.0).expand(3, -1, -1, -1)[None]
    assert np.array_equal(tok.encode_normalized(by_hand).indices[0].numpy(), store["seq/a"])

    rows = [json.loads(line) for line in (out / "decoded.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == ["seq/a", "seq/b"]
    decoded = np.load(out / "seq" / "a.npy")
    assert decoded.shape == (1, 8, 32, 32)  # exactly the tokenized frames, not Cosmos's 9
    # the clip's own range comes back (kept with the tokens): decoded depths lie in [min, max]
    assert decoded.min() >= float(lo) * (1 - 1e-6) and decoded.max() <= float(hi) * (1 + 1e-6)
    b = np.load(out / "seq" / "b.npy")
    assert b.max() > decoded.max()  # clip b is twice as far: its scale is its own
    m = tok.modality.metrics(torch.from_numpy(decoded)[None], clip[None])
    assert set(m) >= {"abs_rel", "rmse", "delta1"} and 0 <= m["delta1"] <= 1
    with capsys.disabled():
        print(f"\negom2p depth: 30 frames at 30 fps -> {meta['num_frames']} frames, tokens {store.shape('seq/a')} "
              f"equal to Cosmos on the hand-made min-max input; decoded {decoded.shape} within the clip's "
              f"[{float(lo):.3f}, {float(hi):.3f}] m (random weights: abs_rel {m['abs_rel']:.3f})")


def test_rgb_video_through_cosmos_at_egom2ps_settings(tmp_path, capsys):
    from tok_rgb.video import write_mp4

    run = import_cosmos(tmp_path / "rgb", "tok-rgb:egom2p-rgb")
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(48, 80, 3))
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(45)]).astype(np.uint8)  # 1.5 s at 30 fps
    write_mp4(videos / "pan.mp4", frames, 30.0)
    data = [f"data.path={videos}", "data.clip_length=6", "data.clip_stride=6", "data.size=34", "data.crop_size=32"]
    store, out = tokenize_and_decode(run, data, tmp_path)
    keys = list(store)
    assert len(keys) == 2  # 12 frames at 8 fps: two clips of 6
    assert all(store.meta(k)["num_frames"] == 6 and store.shape(k) == (3, 4, 4) for k in keys)
    for k in keys:
        assert np.load(out / f"{k}.npy").shape == (3, 6, 32, 32)  # 6 frames, not Cosmos's padded 9
    with capsys.disabled():
        print(f"\negom2p rgb: 45 frames at 30 fps -> {len(keys)} clips of 6 frames at 8 fps, tokens "
              f"{store.shape(keys[0])}, decoded {np.load(out / f'{keys[0]}.npy').shape}")


def test_frames_reach_only_decoders_that_take_them():
    from tokcore.tokenizer import build_tokenizer

    net = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
    model = {"framewise": True, "encoder": {"name": "conv2d", "in_channels": 1, "out_dim": 4, **net},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
             "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 1, **net}}
    tok = build_tokenizer(model, {"name": "depth_video", "normalization": "minmax"})
    clip = tok.modality.example(1)
    tokens = tok.encode(clip)
    # a decoder without `frames` gives back what the tokens code; the argument is not forced on it
    assert tok.decode(tokens, frames=3).shape == tok.decode(tokens).shape == clip.shape


def test_tokcore_eval_measures_depth_clips_per_frame(depth_run, depth_clips, tmp_path):
    data = [f"data.path={depth_clips}", "data.crop_size=40", "data.size=32"]
    assert main(["eval", "--checkpoint", str(depth_run), "--split", "all", "--output", str(tmp_path / "ev"),
                 "--baselines", "none", "--quiet", *data]) == 0
    column = json.loads((tmp_path / "ev" / "metrics.json").read_text())["columns"]["tokenizer"]
    # decoded with the clips' 8 frames (not Cosmos's 9): 48 tokens over 8 frames
    assert column["samples"] == 2 and column["tokens_per_frame"] == 48 / 8
    assert set(column["metrics"]) == {"abs_rel", "rmse", "log_rmse", "mae", "delta1", "delta2", "delta3"}
