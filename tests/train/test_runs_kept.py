"""A finished or interrupted run is never thrown away, and a resumed run is the run that was
saved: runs without held-out data, `--resume` with changes, incomplete checkpoints, samples
that fail to load (issue 13, "data lost or a run thrown away")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tokcore
from tokcore.cli import main
from tokcore.train.log import read_metrics

from .test_train import write_config


def train(cfg: Path, run: Path, *args: str) -> int:
    return main(["train", "--config", str(cfg), "--output", str(run), *args])


def test_no_held_out_data_trains_and_saves_without_evaluation(tmp_path, capsys):
    cfg = write_config(tmp_path, steps=3)
    assert train(cfg, tmp_path / "run", "data.val_fraction=0") == 0
    assert "the run trains and saves without evaluation" in capsys.readouterr().out
    assert (tmp_path / "run" / "checkpoints" / "step-3" / "model.safetensors").is_file()
    assert not any(k.startswith("val") for r in read_metrics(tmp_path / "run") for k in r)


def test_keep_best_without_held_out_data_is_refused_before_training(tmp_path, capsys):
    cfg = write_config(tmp_path, steps=3)
    assert train(cfg, tmp_path / "run", "data.val_fraction=0", "train.keep_best=val/loss") == 2
    err = capsys.readouterr().err
    assert "train.keep_best: 'val/loss' is measured on held-out data, but the val split of data 'arrays' is empty" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert train(cfg, tmp_path / "other", "train.keep_best=loss") == 2
    assert "'loss' is not an evaluation metric: they are val/..." in capsys.readouterr().err


def test_resume_keeps_the_model_and_applies_schedule_changes_visibly(tmp_path, capsys):
    cfg, run = write_config(tmp_path, steps=6), tmp_path / "run"
    assert train(cfg, run, "train.steps=4") == 0
    capsys.readouterr()
    # a changed model is refused, naming the key; nothing is written
    assert train(cfg, run, "--resume", "model.quantizer.levels=[8,8,8,8]") == 2
    err = capsys.readouterr().err
    assert "command line: model.quantizer.levels: the run was trained with [5, 5, 5]" in err
    # the run's own steps (4) are the base, not the file's 6: nothing left to train
    assert train(cfg, run, "--resume") == 2
    err = capsys.readouterr().err
    assert "train.steps: 4 is not beyond the run's step 4, so there is nothing to train" in err
    assert "cfg.yaml says 6, but a resume takes the run's own config: give train.steps=6" in err
    assert train(cfg, run, "--resume", "train.steps=3") == 2
    # a longer schedule is applied and said
    assert train(cfg, run, "--resume", "train.steps=5") == 0
    assert "resume: train.steps 4 -> 5 (command line)" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir()) == ["step-4", "step-5"]
    # an edited config file cannot change the model of a saved run either
    edited = Path(str(cfg).replace("cfg.yaml", "edited.yaml"))
    edited.write_text(cfg.read_text().replace("out_dim: 3", "out_dim: 4").replace("in_dim: 3", "in_dim: 4"))
    assert train(edited, run, "--resume", "train.steps=7") == 2
    assert "model.decoder.in_dim: is 4 here but the run" in capsys.readouterr().err


def test_incomplete_checkpoints_name_the_file_and_resume_falls_back(tmp_path, capsys):
    cfg, run = write_config(tmp_path, steps=4, save_every=2, keep_last=3, ema_decay=0.9), tmp_path / "run"
    assert train(cfg, run) == 0
    newest = run / "checkpoints" / "step-4"
    (newest / "model_ema.safetensors").unlink()  # the run kept an EMA: its absence is an error, not a switch
    with pytest.raises(tokcore.TokcoreError, match=r"step-4/model_ema.safetensors: missing, though the run kept EMA"):
        tokcore.load_tokenizer(run)
    data = (newest / "model.safetensors").read_bytes()
    (newest / "model.safetensors").write_bytes(data[:20])  # truncated
    with pytest.raises(tokcore.TokcoreError, match=r"step-4/model.safetensors: not a readable safetensors file"):
        tokcore.load_tokenizer(run, ema=False)
    capsys.readouterr()
    assert train(cfg, run, "--resume", "train.steps=5") == 0
    err = capsys.readouterr().err
    assert "step-4: model.safetensors is unreadable" in err  # said, then step-2 is resumed
    assert json.loads((run / "checkpoints" / "step-5" / "tokenizer.json").read_text())["step"] == 5
    assert [r["step"] for r in read_metrics(run) if "loss" in r][-3:] == [3, 4, 5]


def test_a_sample_that_fails_to_load_is_recorded_announced_and_skipped(tmp_path, capsys):
    folder = tmp_path / "walks"
    folder.mkdir()
    rng = np.random.default_rng(0)
    (folder / "a-broken.npy").write_bytes(b"not an array")  # sorts first: the input spec comes from the next one
    for i in range(12):
        np.save(folder / f"w{i:02d}.npy", (0.5 + np.cumsum(rng.normal(scale=0.05, size=(16, 2)), 0)).astype(np.float32))
    cfg = write_config(tmp_path, steps=3, batch_size=13)
    over = ["data.name=npy_folder", f"data.path={folder}", "data.val_fraction=0"]
    assert train(cfg, tmp_path / "plan", "--dry-run", *over) == 0
    assert "skipped   a-broken" in capsys.readouterr().out
    assert train(cfg, tmp_path / "run", "train.batch_size=4", *over) == 0
    out = capsys.readouterr().out
    assert "skipped a-broken" in out
    failed = [json.loads(line) for line in (tmp_path / "run" / "failed_samples.rank0.jsonl").read_text().splitlines()]
    assert failed and all(f["key"].startswith("a-broken") for f in failed)


def test_a_resumed_run_computes_with_the_threads_it_was_trained_with(tmp_path, monkeypatch):
    from tokcore.config.spec import RunSpec
    from tokcore.train.launch import threads_for

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cfg, run = write_config(tmp_path, steps=2), tmp_path / "run"
    assert train(cfg, run, "train.threads=3") == 0  # recorded in the checkpoint's state
    spec = RunSpec.load(cfg)
    chosen = threads_for(spec, 1, run, resume=True)
    assert chosen.threads == 3 and "as step-2 was trained" in chosen.line()
    assert threads_for(spec, 1, run, resume=False).why.startswith("chosen from")
    with monkeypatch.context() as m:
        m.setenv("OMP_NUM_THREADS", "1")  # the user's word wins
        assert threads_for(spec, 1, run, resume=True).threads == 1


def test_held_out_samples_that_all_fail_are_announced_not_measured_as_empty(tmp_path, capsys):
    from tokcore.api import split_indices

    folder = tmp_path / "walks"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"w{i:02d}" for i in range(12)]
    val = set(split_indices(12, "val", 0.25, 0).tolist())
    for i, name in enumerate(names):
        if i in val:  # every held-out file is broken
            (folder / f"{name}.npy").write_bytes(b"broken")
        else:
            np.save(folder / f"{name}.npy", (0.5 + np.cumsum(rng.normal(scale=0.05, size=(16, 2)), 0)).astype(np.float32))
    cfg = write_config(tmp_path, steps=2)
    assert train(cfg, tmp_path / "run", "data.name=npy_folder", f"data.path={folder}", "data.val_fraction=0.25") == 0
    out = capsys.readouterr().out
    assert "evaluation skipped 3 held-out sample(s) that failed" in out
    assert "step 2: no held-out sample could be evaluated" in out
    assert not any(k.startswith("val") for r in read_metrics(tmp_path / "run") for k in r)  # no invented figures
