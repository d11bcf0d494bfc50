"""The main job in miniature: train the quick config a few steps, then `tokcore eval` on the
held-out split beside the DCT codec, with the plot."""

import json

import pytest

from tokcore.cli import main



# quick spends EgoM2P's 240 bits as one token x 30 residual stages of 256 codes, egom2p as
# 30 tokens x 1 code
@pytest.mark.parametrize("name, tokens", [("tok-camera:quick", 1), ("tok-camera:egom2p", 30)])
def test_configs_resolve(name, tokens, capsys):
    assert main(["train", "--config", name, "data.num_clips=40", "data.val_fraction=0.1", "train.batch_size=8",
                 "--dry-run"]) == 0  # 4 held out: keep_best needs some
    out = capsys.readouterr().out
    assert f"tokens    grid ({tokens},) = {tokens} per sample" in out and "codebook 256" in out
    assert "bits      240 per sample" in out


def test_train_then_eval(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tok-camera:quick", "--output", str(run), "data.num_clips=24",
                 "train.steps=2", "train.batch_size=8", "train.log_every=1"]) == 0
    assert (run / "samples" / "step-2.png").is_file()
    assert main(["eval", "--checkpoint", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "rre_deg" in out and "DCT (" in out and "x 6 ch" in out and "codebook usage" in out
    cols = json.loads((run / "eval-val" / "metrics.json").read_text())["columns"]
    assert cols["tokenizer"]["bits_per_sample"] == 240 and cols["dct"]["bits_per_sample"] <= 240
    assert {"ate", "rte", "rre_deg", "rot_deg"} == set(cols["tokenizer"]["metrics"]) == set(cols["dct"]["metrics"])
    assert (run / "eval-val" / "samples.png").read_bytes()[:4] == b"\x89PNG"
