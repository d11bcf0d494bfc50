"""`tokcore eval`: figures against independent computations, resumption, ranks, comparisons,
reports and errors.

Two tiny conv1d tokenizers (FSQ, different rates) are trained for two steps on 16-frame 2D
walks once per module; a uniform scalar quantizer, registered in-process, is the baseline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore import registry
from tokcore.cli import main
from tokcore.errors import TokcoreError
from tokcore.eval import EvalOptions, evaluate
from tokcore.interfaces import Tokens
from tokcore.interfaces.evaluation import Baseline, BudgetTooSmall, Coded
from tokcore.metrics.codebook import codebook_usage
from tokcore.run import Checkpoint
from tokcore.tokens.store import TokenStore

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
QUIET = EvalOptions(batch_size=64, chunk_samples=64, progress=False)


class UniformQuantizer(Baseline):
    """Every element quantized uniformly over [0, 1] with as many bits as the budget allows."""

    label = "uniform"

    def applies_to(self, modality):
        return modality.name == "array"

    def code(self, x, bits, modality):
        per = int(bits // x[0].numel())
        if per < 1:
            raise BudgetTooSmall(f"{bits} bits")
        levels = 2**per - 1
        recon = torch.round(x.clamp(0, 1) * levels) / levels
        return Coded(recon, torch.full((len(x),), float(per * x[0].numel())), f"{per} bit")


def walks(n: int, t: int = 16, seed: int = 0) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(scale=0.05, size=(n, t, 2))
    return (0.5 + np.cumsum(steps, axis=1)).astype(np.float32)


def train(root: Path, name: str, levels: list[int]) -> Path:
    cfg = {"tokcore": 1, "seed": 3,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": len(levels), **CONV},
                     "quantizer": {"name": "fsq", "levels": levels},
                     "decoder": {"name": "conv1d", "in_dim": len(levels), "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": str(root / "walks.npy"), "val_fraction": 0.5},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1, "eval_batches": 1}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--output", str(root / name)]) == 0
    return root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    np.save(root / "walks.npy", walks(48))
    torch.set_num_threads(1)
    return {"root": root, "fsq": train(root, "fsq", [5, 5, 5]), "small": train(root, "small", [3, 3])}


@pytest.fixture(autouse=True)
def uniform_baseline():
    """Registered in this process only: spawned ranks and subprocesses run without baselines."""
    with registry.scope() as reg:
        reg.register("baseline", "uniform", UniformQuantizer)
        yield


def test_figures_equal_an_independent_computation(runs, tmp_path):
    """The tokenizer's metrics equal the modality's metrics of the decoded store over the
    whole split; its rate is tokens x log2(codebook); codebook figures equal codebook_usage."""
    result = evaluate(runs["fsq"], tmp_path / "ev", options=QUIET)
    tok = tokcore.load_tokenizer(runs["fsq"])
    store = TokenStore(tmp_path / "ev" / "tokens")
    keys = list(store)
    ds = Checkpoint(runs["fsq"]).spec().dataset("val")
    by_key = {ds[i]["key"]: torch.as_tensor(ds[i]["input"]).float() for i in range(len(ds))}
    x = torch.stack([by_key[k] for k in keys])
    indices = torch.from_numpy(np.stack([store[k] for k in keys]).astype(np.int64))
    recon = tok.decode(Tokens(indices=indices))
    want = tok.modality.metrics(recon, x)
    got = result["columns"]["tokenizer"]["metrics"]
    assert result["samples"] == len(ds) == 24
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-5), k
    info = tok.info()
    assert result["columns"]["tokenizer"]["bits_per_sample"] == pytest.approx(info["bits_per_sample"])
    usage = codebook_usage(indices, tok.codebook_size)
    cb = result["columns"]["tokenizer"]["codebook"]
    assert cb["usage"] == pytest.approx(usage["usage"]) and cb["perplexity"] == pytest.approx(usage["perplexity"])
    assert cb["used"] == usage["used"]
    # the baseline at the tokenizer's rate spends at most it, and more bits do better
    uni = result["columns"]["uniform"]
    assert uni["bits_per_sample"] <= info["bits_per_sample"]
    assert result["columns"]["uniform@4x"]["metrics"]["rmse"] < uni["metrics"]["rmse"]
    for name in ("metrics.json", "report.md", "report.html", "rate_distortion.png"):
        assert (tmp_path / "ev" / name).is_file(), name
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "data:image/png;base64," in html and "uniform" in html
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["versions"]["tokcore"] == tokcore.__version__ and saved["split"] == "val"
    assert len(saved["weights_sha256"]) == 64


def test_a_finished_evaluation_is_not_redone(runs, tmp_path, capsys):
    out = tmp_path / "ev"
    first = evaluate(runs["fsq"], out, options=QUIET)
    stamp = (out / "metrics.json").stat().st_mtime_ns
    again = evaluate(runs["fsq"], out, options=QUIET)
    assert again == first and (out / "metrics.json").stat().st_mtime_ns == stamp
    with pytest.raises(TokcoreError, match="holds another evaluation"):
        evaluate(runs["fsq"], out, options=EvalOptions(chunk_samples=5, progress=False))


def test_two_processes_equal_one(runs, tmp_path):
    opts = EvalOptions(chunk_samples=4, progress=False)
    one = evaluate(runs["fsq"], tmp_path / "one", baselines=["none"], options=opts)
    two = evaluate(runs["fsq"], tmp_path / "two", baselines=["none"], nproc=2, options=opts)
    for name, col in one["columns"].items():
        for k, v in col["metrics"].items():
            assert two["columns"][name]["metrics"][k] == pytest.approx(v, rel=1e-9), (name, k)
        assert two["columns"][name]["bits_per_sample"] == pytest.approx(col["bits_per_sample"], rel=1e-12)
    assert two["samples"] == one["samples"]


def test_killed_and_run_again_gives_the_same_result(runs, tmp_path):
    reference = evaluate(runs["fsq"], tmp_path / "ref", baselines=["none"],
                         options=EvalOptions(chunk_samples=1, batch_size=1, progress=False))
    out = tmp_path / "cut"
    cmd = [sys.executable, "-m", "tokcore", "eval", "--checkpoint", str(runs["fsq"]), "--output", str(out),
           "--baselines", "none", "--chunk-samples", "1", "--batch-size", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    part = out / "parts" / "rank0-of1.json"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if part.is_file() and len(json.loads(part.read_text() or "{}").get("chunks", [])) >= 3:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists(), "the evaluation finished before it was killed"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "metrics.json").read_text())
    assert result["columns"]["tokenizer"]["metrics"] == reference["columns"]["tokenizer"]["metrics"]
    assert result["samples"] == reference["samples"]


def test_compare_puts_runs_in_one_table(runs, tmp_path, capsys):
    result = evaluate(runs["fsq"], tmp_path / "ev", compare=[runs["small"]], options=QUIET)
    small = result["columns"]["small"]
    assert small["kind"] == "compare" and small["samples"] == result["samples"]
    assert small["bits_per_sample"] < result["columns"]["tokenizer"]["bits_per_sample"]
    # the compared run measured independently: its own encode/decode of the same inputs
    tok = tokcore.load_tokenizer(runs["small"])
    ds = Checkpoint(runs["fsq"]).spec().dataset("val")
    x = torch.stack([torch.as_tensor(ds[i]["input"]).float() for i in range(len(ds))])
    want = tok.modality.metrics(tok.decode(tok.encode(x)), x)
    assert small["metrics"]["rmse"] == pytest.approx(want["rmse"], rel=1e-3)
    out = capsys.readouterr().out
    assert "small" in out and "tokenizer" in out


def test_bad_input_is_one_line_exit_2(runs, tmp_path, capsys):
    def fails(*argv: str, match: str) -> None:
        assert main(["eval", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err

    fails("--checkpoint", str(tmp_path), match="is not a tokcore run")
    fails("--checkpoint", str(runs["fsq"]), "--output", str(tmp_path / "a"), "--features",
          f"fid={tmp_path / 'missing.pth'}", match="missing.pth")
    fails("--checkpoint", str(runs["fsq"]), "--output", str(tmp_path / "b"), "--baselines", "dct",
          match="cannot code 'array'")
    fails("--checkpoint", str(runs["fsq"]), "--output", str(tmp_path / "c"), "--features", "fid=", match="NAME=FILE")
    np.save(tmp_path / "empty.npy", walks(0))
    fails("--checkpoint", str(runs["fsq"]), "--output", str(tmp_path / "d"), f"data.path={tmp_path / 'empty.npy'}",
          match="no samples")


def test_overrides_after_a_list_option_are_overrides(runs, tmp_path, capsys):
    """`--baselines none data.val_fraction=0.25`: the override is not taken for a baseline name."""
    assert main(["eval", "--checkpoint", str(runs["fsq"]), "--output", str(tmp_path / "ev"), "--quiet",
                 "--baselines", "none", "data.val_fraction=0.25"]) == 0
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert result["baselines"] == [] and result["data"]["val_fraction"] == 0.25 and result["samples"] == 12
