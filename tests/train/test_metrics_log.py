"""metrics.jsonl and the console lines of training: time continues across a resume, and
figures read as a person writes them (a vocabulary size is 16000, not 1.6e+04)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from tokcore.cli import main
from tokcore.train.log import MetricsLog, format_metrics, read_metrics

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def test_time_continues_from_the_last_recorded_row(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 3, "time": 1234.5, "loss": 1.0}) + "\n")
    log = MetricsLog(tmp_path, total_steps=6, start_step=3, enabled=True)
    try:
        log.write(4, {"loss": 0.5})
    finally:
        log.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [3, 4]
    assert 1234.5 <= rows[1]["time"] < 1234.5 + 60


def test_a_resumed_run_logs_time_on_from_where_it_stopped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("walks.npy", (0.5 + np.cumsum(rng.normal(scale=0.05, size=(24, 16, 2)), 1)).astype("float32"))
    cfg = {"tokcore": 1, "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                                   "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                                   "decoder": {"name": "conv1d", "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": "walks.npy", "val_fraction": 0.25},
           "train": {"steps": 6, "batch_size": 4, "log_every": 1, "save_every": 3, "keep_last": 5}}
    Path("cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", "cfg.yaml", "--output", "run"]) == 0
    # as if the run had been killed after its step-3 checkpoint, an hour in
    shutil.rmtree("run/checkpoints/step-6")
    rows = [{**r, "time": r["time"] + 3600} for r in read_metrics(Path("run"))]
    Path("run/metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["train", "--config", "cfg.yaml", "--output", "run", "--resume"]) == 0
    rows = read_metrics(Path("run"))
    times = [r["time"] for r in rows]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert times == sorted(times) and all(t >= 3600 for t in times), times


def test_figures_read_as_numbers():
    metrics = {"vocab_size": 16000.0, "words": 3, "loss": 0.0123456, "tokens_per_word": 1.23456,
               "unk_share": 0.0, "fit_seconds": 12345.678, "tiny": 1.5e-7, "ok": True}
    assert format_metrics(metrics) == ("vocab_size 16000, words 3, loss 0.01235, tokens_per_word 1.235, unk_share 0, "
                                       "fit_seconds 12345.7, tiny 1.5e-07, ok True")
