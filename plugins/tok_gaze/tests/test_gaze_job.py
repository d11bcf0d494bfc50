"""The main job in miniature: train the quick config a few steps, then tokenize the held-out
split, decode it, compare with the DCT codec and write the plot."""

import json

import pytest

from tokcore.cli import main



# quick spends EgoM2P's 240 bits as 1 token x 30 residual stages of 256 codes
@pytest.mark.parametrize("name, tokens", [("tok-gaze:quick", 1), ("tok-gaze:egom2p", 30)])
def test_configs_resolve(name, tokens, capsys):
    assert main(["train", "--config", name, "data.num_clips=40", "data.val_fraction=0.1", "train.batch_size=8",
                 "--dry-run"]) == 0  # 4 held out: keep_best needs some
    out = capsys.readouterr().out
    assert f"tokens    grid ({tokens},) = {tokens} per sample" in out and "codebook 256" in out
    assert "bits      240 per sample" in out


def test_train_then_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tok-gaze:quick", "--output", str(run), "data.num_clips=24",
                 "train.steps=2", "train.batch_size=8", "train.log_every=1"]) == 0
    assert (run / "samples" / "step-2.png").is_file()
    assert main(["gaze-report", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "error (normalized units)" in out and "error (deg visual angle)" in out and "codebook usage" in out
    result = json.loads((run / "report" / "metrics.json").read_text())
    assert result["bits_per_clip"] == 240 and result["dct"]["bits_per_clip"] <= 240
    assert set(result["metrics"]) == {"tokenizer", "dct"}
    assert (run / "report" / "gaze_val.png").read_bytes()[:4] == b"\x89PNG"
