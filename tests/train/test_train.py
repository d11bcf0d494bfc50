"""The shared training loop: equivalence across process counts, bit-exact resumption,
the NaN guard, checkpoints that rebuild the tokenizer alone, staged training."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import tokcore
from tokcore.cli import main
from tokcore.builtins.losses import ReconstructionLoss
from tokcore.train.log import read_metrics

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def walks(n: int = 48, t: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth 2D random walks, like gaze or camera tracks."""
    steps = np.random.default_rng(seed).normal(scale=0.05, size=(n, t, 2))
    return (0.5 + np.cumsum(steps, axis=1)).astype(np.float32)


def write_config(tmp: Path, quantizer: dict | None = None, **train) -> Path:
    data = tmp / "walks.npy"
    np.save(data, walks())
    cfg = {
        "tokcore": 1,
        "seed": 3,
        "model": {
            "encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
            "quantizer": quantizer or {"name": "fsq", "levels": [5, 5, 5]},
            "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV},
        },
        "data": {"name": "arrays", "path": str(data), "val_fraction": 0.25},
        "train": {"steps": 6, "batch_size": 4, "lr": 3e-3, "log_every": 1, "warmup_steps": 2, **train},
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def tokcore_cmd(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tokcore", *args], capture_output=True, text=True, env=env, **kw)


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run) if "loss" in r]


def weights(run: Path, step: int, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step}" / name))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_dry_run_prints_the_plan(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "data      arrays: 36 train / 12 val samples of shape (16, 2)" in out
    assert "quantizer fsq" in out and "codebook 125" in out
    assert "tokens    grid (8,) = 8 per sample, 4.0 input values per token" in out
    assert "bits      56 per sample (7.0 per token); compression 18.4x against 32-bit input" in out
    assert not (tmp_path / "runs").exists()


def test_two_processes_match_one_process_with_twice_the_accumulation(tmp_path):
    cfg = write_config(tmp_path, batch_size=4)
    two = tokcore_cmd("train", "--config", str(cfg), "--nproc", "2", "--output", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = tokcore_cmd("train", "--config", str(cfg), "train.grad_accum=2", "--output", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    a, b = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert len(a) == len(b) == 6
    assert np.allclose(a, b, rtol=1e-5, atol=1e-7), (a, b)
    wa, wb = weights(tmp_path / "two", 6), weights(tmp_path / "one", 6)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6), k
    assert (tmp_path / "two/checkpoints/step-6/rng-rank1.json").is_file()


VQ = {"name": "vq", "dim": 3, "codebook_size": 16, "kmeans_init": True, "dead_after_steps": 2}


CRASH_HOOK = """
import os
import tokcore

@tokcore.hookimpl
def tokcore_train_step_end(run, step, metrics):
    if step == int(os.environ.get("TOKCORE_TEST_CRASH_AT", "-1")):
        raise RuntimeError("simulated crash")
"""


@pytest.mark.parametrize("crash_at", [3, 6])
def test_resume_continues_bit_exactly(tmp_path, crash_at, tokcore_registry, monkeypatch):
    """A run that crashes after `crash_at` steps (checkpoints every 2) and is resumed ends with
    the weights, EMA and codebooks of an uninterrupted run: EMA codebooks, k-means init and
    dead-code restarts included, which draw on the random generators."""
    (tmp_path / "tokcore_test_crash.py").write_text(CRASH_HOOK)
    monkeypatch.syspath_prepend(str(tmp_path))
    tokcore_registry.register_hooks("tokcore_test_crash")
    cfg = write_config(tmp_path, quantizer=VQ, steps=8, save_every=2, ema_decay=0.9, keep_last=10)
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "full")]) == 0
    monkeypatch.setenv("TOKCORE_TEST_CRASH_AT", str(crash_at))
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "cut")]) == 1
    assert not (tmp_path / "cut/checkpoints/step-8").exists()
    monkeypatch.delenv("TOKCORE_TEST_CRASH_AT")
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "cut"), "--resume"]) == 0
    for name in ("model.safetensors", "model_ema.safetensors"):
        assert_same_weights(weights(tmp_path / "full", 8, name), weights(tmp_path / "cut", 8, name))
    assert losses(tmp_path / "full") == losses(tmp_path / "cut")


def test_killed_at_a_random_moment_and_resumed_equals_uninterrupted(tmp_path):
    cfg = write_config(tmp_path, quantizer=VQ, steps=40, save_every=3, batch_size=4)
    full = tokcore_cmd("train", "--config", str(cfg), "--output", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "tokcore", "train", "--config", str(cfg), "--output", str(cut)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (cut / "checkpoints/latest").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = tokcore_cmd("train", "--config", str(cfg), "--output", str(cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(weights(tmp_path / "full", 40), weights(cut, 40))


def test_an_existing_run_needs_resume(tmp_path, capsys):
    cfg = write_config(tmp_path, steps=1)
    out = str(tmp_path / "run")
    assert main(["train", "--config", str(cfg), "--output", out]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(cfg), "--output", out]) == 2
    assert "already has checkpoints; pass --resume to continue it" in capsys.readouterr().err


class NaNAfter(ReconstructionLoss):
    """A loss that turns NaN on its fourth call."""

    calls = 0

    def forward(self, pred, target, mask=None):
        NaNAfter.calls += 1
        out = super().forward(pred, target, mask)
        if NaNAfter.calls >= 4:
            out.loss = out.loss * float("nan")
        return out


def test_nan_guard_stops_before_the_update_and_names_the_last_good_checkpoint(tmp_path, capsys, tokcore_registry):
    tokcore_registry.register("loss", "nan_after", NaNAfter)
    NaNAfter.calls = 0
    cfg = write_config(tmp_path, steps=6, save_every=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "loss.name=nan_after", "--output", str(run)]) == 1
    err = capsys.readouterr().err
    assert "TrainingDiverged: step 3: the loss is nan" in err
    assert f"Last good checkpoint: {run / 'checkpoints/step-2'}" in err


def test_load_tokenizer_in_a_fresh_process_reproduces_the_training_reconstructions(tmp_path):
    """The reconstructions the training process wrote (samples/, from its EMA weights) are
    reproduced bit for bit by load_tokenizer in a new process, from the checkpoint alone."""
    cfg = write_config(tmp_path, steps=4, ema_decay=0.5)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run)]) == 0
    (run / "config.yaml").unlink()  # the checkpoint alone must do
    samples = run / "samples/step-4.npz"
    code = (f"import tokcore, torch, numpy as np\n"
            f"s = np.load({str(samples)!r})\n"
            f"tok = tokcore.load_tokenizer({str(run)!r})\n"
            f"recon = tok.decode(tok.encode(torch.from_numpy(s['target']))).numpy()\n"
            f"assert np.array_equal(recon, s['recon']), abs(recon - s['recon']).max()\n")
    # same intra-op thread count as this process: CPU reductions may split differently otherwise
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    tok = tokcore.load_tokenizer(run)
    assert tok.info()["token_grid"] == [8] and tok.info()["codebook_size"] == 125
    raw = tokcore.load_tokenizer(run, ema=False)
    assert any(not torch.equal(a, b) for a, b in zip(raw.parameters(), tok.parameters()))


def test_staged_training_freezes_the_encoder_and_trains_a_new_decoder(tmp_path):
    cfg = write_config(tmp_path, steps=3)
    assert main(["train", "--config", str(cfg), "--output", str(tmp_path / "stage1")]) == 0
    stage2 = ["train", "--config", str(cfg), f"train.init_from={tmp_path / 'stage1'}", "train.freeze=[encoder]",
              "model.decoder.base_channels=16", "--output", str(tmp_path / "stage2")]
    assert main(stage2) == 0
    a, b = weights(tmp_path / "stage1", 3), weights(tmp_path / "stage2", 3)
    enc = [k for k in a if k.startswith("encoder.")]
    assert enc and all(torch.equal(a[k], b[k]) for k in enc)
    assert any(a[k].shape != b[k].shape for k in a if k.startswith("decoder."))  # a wider, new decoder


def test_keep_last_and_keep_best(tmp_path):
    cfg = write_config(tmp_path, steps=8, save_every=1, eval_every=1, keep_last=2, keep_best="val/loss")
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run)]) == 0
    kept = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    evals = {r["step"]: r["val/loss"] for r in read_metrics(run) if "val/loss" in r}
    best = min(evals, key=evals.get)
    assert set(kept) == {7, 8, best}
    assert (run / "checkpoints/latest").read_text().strip() == "step-8"


def test_bf16_autocast_and_multiresolution_images(tmp_path):
    images = np.random.default_rng(0).uniform(size=(24, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "img.npy", images)
    tiny = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
    cfg = {"tokcore": 1,
           "model": {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, **tiny},
                     "quantizer": {"name": "fsq", "levels": [4, 4, 4, 4]},
                     "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 3, **tiny}},
           "data": {"name": "arrays", "path": str(tmp_path / "img.npy")},
           "train": {"steps": 4, "batch_size": 4, "precision": "bf16", "multires": [16, 32, 16], "log_every": 1}}
    path = tmp_path / "img.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "run")]) == 0
    assert all(np.isfinite(losses(tmp_path / "run")))


def test_ranks_come_from_torchrun_or_slurm(monkeypatch):
    from tokcore.runtime.distributed import from_environment

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert from_environment("cpu")[:3] == (5, 8, 1)
    monkeypatch.setenv("RANK", "2")  # torchrun's variables win
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert from_environment("cpu")[:3] == (2, 4, 0)


class WithCritic(tokcore.Trainer):
    """A two-optimizer trainer: the model reconstructs, a small critic learns to score
    reconstructions (the shape of a GAN trainer, without the adversarial term)."""

    def __init__(self, critic_lr_scale: float = 1.0):
        super().__init__()
        self.critic = torch.nn.Linear(2, 1)

    def optimizer_params(self, model):
        return {"model": [p for p in model.parameters() if p.requires_grad], "critic": list(self.critic.parameters())}

    def training_step(self, model, batch, step, optimizer="model"):
        out = model(batch["input"])
        if optimizer == "model":
            return tokcore.StepOutput(self.loss(out.recon, batch["input"]).loss)
        score = self.critic(out.recon.detach()).mean()
        return tokcore.StepOutput((score - 1.0).square(), {"critic/score": score.detach()})


def test_a_trainer_with_two_optimizers_steps_both_and_resumes_them(tmp_path, tokcore_registry):
    tokcore_registry.register("trainer", "with_critic", WithCritic)
    cfg = write_config(tmp_path, steps=4, save_every=2, lr=0.05, warmup_steps=0, schedule="constant")
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "trainer.name=with_critic", "--output", str(run)]) == 0
    rows = [r for r in read_metrics(run) if "loss/critic" in r]
    assert len(rows) == 4 and rows[-1]["loss/critic"] < rows[0]["loss/critic"]
    state = json.loads((run / "checkpoints/step-4/state.json").read_text())
    assert "critic" in json.dumps(state) and "model" in json.dumps(state)
    critic = load_file(str(run / "checkpoints/step-4/trainer.safetensors"))
    assert "critic.weight" in critic
    resumed = tmp_path / "resumed"
    import shutil

    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints/step-4")
    (resumed / "checkpoints/latest").write_text("step-2\n")
    assert main(["train", "--config", str(cfg), "trainer.name=with_critic", "--output", str(resumed), "--resume"]) == 0
    assert_same_weights(load_file(str(resumed / "checkpoints/step-4/trainer.safetensors")), critic)
    assert_same_weights(weights(resumed, 4), weights(run, 4))


def test_a_corrupt_training_file_is_recorded_and_skipped(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, walk in enumerate(walks(24)):
        np.save(folder / f"{i:02d}.npy", walk)
    (folder / "07.npy").write_bytes(b"\x93NUMPY truncated")
    cfg = yaml.safe_load(write_config(tmp_path, steps=6, batch_size=4).read_text())
    cfg["data"] = {"name": "npy_folder", "path": str(folder), "val_fraction": 0.25}
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--output", str(run)]) == 0
    failed = [json.loads(line) for line in (run / "failed_samples.rank0.jsonl").read_text().splitlines()]
    assert {f["key"] for f in failed} == {"07"}
    assert "cannot load" in failed[0]["error"]
