"""TiTok-Video's GAN in the `vqgan` trainer: the relativistic pairing loss, approximated R1/R2
penalties against exact input gradients, LeCam, the warmup ramp, and a discriminator with its
own learning rate and betas, through the real loop with a bit-exact resume."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))  # the tiny run of the vqgan tests (tests run in importlib mode)
from test_vqgan import optimizer_state, write_config
from tok_rgb.discriminator import PatchDiscriminator
from tok_rgb.vqgan import (
    VQGANTrainer,
    approx_gradient_penalty,
    discriminator_loss,
    generator_loss,
    lecam_loss,
)

from tokcore.cli import main
from tokcore.errors import ConfigError
from tokcore.train.log import read_metrics


def test_relativistic_pairing_losses():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5])
    d = discriminator_loss("relativistic", real, fake)
    assert math.isclose(float(d), (math.log1p(math.exp(-1.5)) + math.log1p(math.exp(1.5))) / 2, rel_tol=1e-6)
    g = generator_loss("relativistic", fake, real)
    assert math.isclose(float(g), (math.log1p(math.exp(1.5)) + math.log1p(math.exp(-1.5))) / 2, rel_tol=1e-6)
    assert math.isclose(float(discriminator_loss("relativistic", fake, fake)), math.log(2), rel_tol=1e-6)
    # only the difference counts: shifting both sides changes nothing
    assert torch.equal(discriminator_loss("relativistic", real + 3, fake + 3), d)


def test_the_approximated_penalty_matches_the_exact_squared_input_gradient():
    torch.manual_seed(0)
    disc = PatchDiscriminator(3, 8, 2, dims=2, norm="none").double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    logits = disc(x)
    # per sample, the sum over its patch logits p of ||grad_x logit_p||^2, exactly (autograd)
    per_patch = torch.stack([torch.autograd.grad(logits[:, :, i, j].sum(), x, retain_graph=True)[0].square()
                             .flatten(1).sum(1) for i in range(logits.shape[2]) for j in range(logits.shape[3])])
    want = per_patch.sum(0).mean()
    with torch.no_grad():
        draws = [approx_gradient_penalty(disc, x.detach(), logits.detach(), 1e-3) for _ in range(200)]
    got = torch.stack(draws).mean()
    assert float(want) > 0
    assert abs(float(got) / float(want) - 1) < 0.1  # a Monte-Carlo estimate: 200 draws


def test_lecam_and_the_warmup_ramp():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    # means 2 and -0.5 against EMAs of 0: relu(2 - 0)^2 + relu(0 - -0.5)^2
    assert float(lecam_loss(real, fake, torch.tensor(0.0), torch.tensor(0.0))) == 4.25
    assert float(lecam_loss(real, fake, torch.tensor(3.0), torch.tensor(2.5))) == 12.25  # 0 + relu(3 + 0.5)^2
    t = VQGANTrainer(disc_start=10, disc_warmup_steps=4, disc_channels=8, disc_layers=2)
    assert [t.warmup(s) for s in (9, 10, 11, 13, 20)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert VQGANTrainer(disc_channels=8, disc_layers=2).warmup(0) == 1.0
    with pytest.raises(ConfigError, match="beta1, beta2"):
        VQGANTrainer(disc_betas=[0.9])


def test_relativistic_gan_with_its_own_optimizer_trains_and_resumes_bit_exactly(tmp_path):
    cfg = write_config(tmp_path, disc_start=1, disc_loss="relativistic", r1_weight=0.1, r2_weight=0.1,
                       lecam_weight=0.01, disc_warmup_steps=2, disc_lr=1e-4, disc_betas=[0.5, 0.9])
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run)]) == 0
    rows = [r for r in read_metrics(run) if "loss/model" in r]
    assert all(k in rows[-1] for k in ("gan/r1", "gan/r2", "gan/lecam", "gan/generator"))
    assert rows[0]["lr/discriminator"] == pytest.approx(1e-4 / 2e-3 * rows[0]["lr"])  # same schedule, own peak
    state = optimizer_state(run, 4, "discriminator")
    assert state and all(int(s["step"]) == 3 for s in state.values())
    from tokcore.run.checkpoint import load_training_state

    optimizers = load_training_state(run / "checkpoints/step-4", 0)[0]["optimizers"]
    assert [list(g["betas"]) for g in optimizers["discriminator"]["param_groups"]] == [[0.5, 0.9]] * len(
        optimizers["discriminator"]["param_groups"])
    assert list(optimizers["model"]["param_groups"][0]["betas"]) == [0.9, 0.99]  # train.betas
    ema = load_file(str(run / "checkpoints/step-4/trainer.safetensors"))["lecam_ema"]
    assert bool((ema != 0).any())  # the LeCam EMAs moved and were saved

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints/step-4")
    (resumed / "checkpoints/latest").write_text("step-2\n")
    assert main(["train", "--config", str(cfg), "--output", str(resumed), "--resume"]) == 0
    for name in ("model.safetensors", "trainer.safetensors"):
        a = load_file(str(run / "checkpoints/step-4" / name))
        b = load_file(str(resumed / "checkpoints/step-4" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
