"""Mistakes a user makes on the command line are refused with one line and exit 2 (no
traceback), before any work: a GPU that is not there, an output that is a file, a dataset
smaller than one global batch; a multi-process run that fails says the first failing rank's
error in one line, exiting as that error's kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tokcore import registry
from tokcore.cli import main

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy-run"


def write_config(tmp: Path, samples: int = 24, loss: dict | None = None, **train) -> Path:
    steps = np.random.default_rng(0).normal(scale=0.05, size=(samples, 16, 2))
    np.save(tmp / "walks.npy", (0.5 + np.cumsum(steps, axis=1)).astype(np.float32))
    cfg = {"tokcore": 1, "seed": 3,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                     "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                     "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": str(tmp / "walks.npy"), "val_fraction": 0.25},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1, "eval_batches": 1, **train}}
    if loss is not None:
        cfg["loss"] = loss
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """The legacy run (a copy) and a token store made with it."""
    root = tmp_path_factory.mktemp("cli-errors")
    shutil.copytree(LEGACY, root / "legacy")
    run, tokens = root / "legacy" / "run", root / "tokens"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(tokens), "--quiet", "--workers", "0",
                 f"data.path={root / 'legacy' / 'walks.npy'}"]) == 0
    return run, tokens


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("tokcore: error: ") and "Traceback" not in err, err
    return err


def test_cuda_without_a_gpu_is_refused_before_anything_runs(tmp_path, store, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg, run = write_config(tmp_path, device="cuda"), tmp_path / "run"
    for extra in ([], ["--dry-run"], ["--nproc", "2"]):
        assert main(["train", "--config", str(cfg), "--output", str(run), *extra]) == 2, extra
        err = one_line(capsys.readouterr().err)
        assert f"{cfg}: train.device: 'cuda' was asked for, but no CUDA device is available (" in err
        assert err.endswith("); use auto or cpu\n") and not run.exists()
    checkpoint, tokens = store
    assert main(["tokenize", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "t"), "--device", "cuda"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "--device: 'cuda' was asked for, but no CUDA device is available" in err and "train.device" not in err
    assert main(["decode", "--checkpoint", str(checkpoint), "--tokens", str(tokens), "--output", str(tmp_path / "d"),
                 "--device", "cuda"]) == 2
    assert "--device: 'cuda' was asked for" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "t").exists() and not (tmp_path / "d").exists()


def test_an_output_that_is_a_file_is_refused_in_one_line(tmp_path, store, capsys):
    cfg = write_config(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# not a folder\n")
    assert main(["train", "--config", str(cfg), "--output", str(readme)]) == 2
    assert f"--output {readme} is a file, not a folder; give a folder" in one_line(capsys.readouterr().err)
    assert main(["train", "--config", str(cfg), "--output", str(readme / "run")]) == 2
    assert f"--output {readme / 'run'} is inside {readme}, which is a file" in one_line(capsys.readouterr().err)
    checkpoint, tokens = store
    assert main(["tokenize", "--checkpoint", str(checkpoint), "--output", str(readme), "--quiet"]) == 2
    assert f"--output {readme} is a file, not a folder" in one_line(capsys.readouterr().err)
    assert main(["decode", "--checkpoint", str(checkpoint), "--tokens", str(tokens), "--output", str(readme)]) == 2
    assert f"--output {readme} is a file, not a folder" in one_line(capsys.readouterr().err)
    assert readme.read_text() == "# not a folder\n"


def test_a_dataset_smaller_than_one_global_batch_names_the_split_the_sizes_and_the_fix(tmp_path, capsys):
    cfg = write_config(tmp_path, samples=12, batch_size=8, grad_accum=2)  # 9 train samples, a batch of 16
    want = ("the train split has 9 samples, fewer than one global batch of 16 (train.batch_size 8 x "
            "train.grad_accum 2); lower train.batch_size or train.grad_accum, or give more data\n")
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 2
    assert one_line(capsys.readouterr().err).endswith(want)
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "run")]) == 2
    assert one_line(capsys.readouterr().err).endswith(want)


FAILING_LOSS = """
import os
from tokcore.api import ReconstructionLoss

class FailingLoss(ReconstructionLoss):
    def forward(self, pred, target, mask=None):
        if os.environ.get("RANK") == "1":
            raise RuntimeError("disk on fire")
        return super().forward(pred, target, mask)
"""


def test_a_failing_multi_process_run_says_the_first_failing_ranks_error_in_one_line(tmp_path, capfd, fake_dist):
    # a usage error in every rank: exit 2 with its line (fd-level capture: the ranks' output counts too)
    cfg = write_config(tmp_path, samples=12)  # 9 train samples, a global batch of 2 x 4 x 2 = 16
    assert main(["train", "--config", str(cfg), "--nproc", "2", "train.grad_accum=2",
                 "--output", str(tmp_path / "a")]) == 2
    err = capfd.readouterr().err
    assert err == ("tokcore: error: the train split has 9 samples, fewer than one global batch of 16 (train.batch_size "
                   "4 x train.grad_accum 2 x 2 processes); lower train.batch_size or train.grad_accum, use fewer "
                   "processes, or give more data\n"), err
    # a runtime failure of rank 1 (rank 0 then fails waiting for it): exit 1, rank 1's error
    fake_dist("tok-failing", {"tokcore.losses": {"failing": "tok_failing_mod:FailingLoss"}},
              modules={"tok_failing_mod": FAILING_LOSS})
    cfg = write_config(tmp_path, loss={"name": "failing"})
    with registry.scope(fresh=True):  # the ranks discover it themselves
        assert main(["train", "--config", str(cfg), "--nproc", "2", "--output", str(tmp_path / "b")]) == 1
    err = capfd.readouterr().err
    assert err == ("tokcore: WorkerFailed: rank 1: RuntimeError: disk on fire "
                   "(run with --debug for the traceback)\n"), err


def test_a_removed_report_command_says_what_replaced_it(capsys):
    assert main(["gaze-report", "--run", "runs/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'gaze-report' is now `tokcore eval --checkpoint RUN`" in err
