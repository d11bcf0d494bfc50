"""The `vqgan` trainer: PatchGAN shapes, the GAN losses, the adaptive weight, the start step,
and training through the real loop (`tokcore train`) with a save and a bit-exact resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tokcore import registry
from tokcore.cli import main
from tokcore.builtins.losses import ReconstructionLoss
from tokcore.train.log import read_metrics
from tok_rgb.discriminator import PatchDiscriminator
from tok_rgb.vqgan import discriminator_loss, generator_loss, last_layer_weight

CONV = {"base_channels": 8, "channel_mult": [1, 2, 2], "num_res_blocks": 1, "mid_attention": False}


def smooth_images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """uint8 pictures of a few soft blobs: learnable, unlike white noise."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, size=(n, 3 * (shape[1] if len(shape) == 4 else 1), 4, 4)))
    fine = torch.nn.functional.interpolate(coarse.float(), size=shape[-2:], mode="bilinear", align_corners=False)
    return fine.reshape(n, *shape).round().clamp(0, 255).numpy().astype(np.uint8)


def write_config(tmp: Path, video: bool = False, quantizer: dict | None = None, **trainer) -> Path:
    data = tmp / "pictures.npy"
    if video:
        np.save(data, smooth_images(12, (3, 5, 32, 32)))
        enc, dec = {"name": "causal3d", **CONV, "temporal_compression": 4, "in_channels": 3}, \
                   {"name": "causal3d", **CONV, "temporal_compression": 4, "out_channels": 3}
    else:
        np.save(data, smooth_images(12, (3, 32, 32)))
        enc, dec = {"name": "conv2d", **CONV, "in_channels": 3}, {"name": "conv2d", **CONV, "out_channels": 3}
    cfg = {
        "tokcore": 1,
        "seed": 1,
        "modality": {"name": "video" if video else "rgb"},
        "model": {"encoder": {**enc, "out_dim": 4},
                  "quantizer": quantizer or {"name": "vq", "dim": 4, "codebook_size": 32, "kmeans_init": True},
                  "decoder": {**dec, "in_dim": 4}},
        "loss": {"name": "reconstruction", "kind": "l1"},
        "trainer": {"name": "vqgan", "disc_channels": 8, "disc_layers": 2, **trainer},
        "data": {"name": "arrays", "path": str(data), "val_fraction": 0.25, "dtype": None},
        "train": {"steps": 4, "batch_size": 3, "lr": 2e-3, "log_every": 1, "save_every": 2, "keep_last": 5},
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_patch_discriminator_scores_patches_of_images_and_clips():
    torch.manual_seed(0)
    assert PatchDiscriminator(3, 8, num_layers=3)(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)
    assert PatchDiscriminator(3, 8, num_layers=2)(torch.randn(2, 3, 32, 32)).shape == (2, 1, 6, 6)
    clip = PatchDiscriminator(3, 8, num_layers=2, dims=3, norm="batch")(torch.randn(2, 3, 5, 32, 32))
    assert clip.shape == (2, 1, 5, 6, 6)
    with pytest.raises(ValueError, match=r"H and W must be at least 24 for num_layers=3, got shape \(1, 3, 16, 16\)"):
        PatchDiscriminator(3, 8, num_layers=3)(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"3D patch discriminator: input must be \(B, C, T, H, W\)"):
        PatchDiscriminator(3, 8, dims=3)(torch.randn(1, 3, 32, 32))


def test_gan_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1]
    assert torch.isclose(discriminator_loss("hinge", real, fake), torch.tensor(0.5 * (0.25 + 0.5)))
    assert torch.isclose(generator_loss("hinge", fake), torch.tensor(1.0))
    sp = torch.nn.functional.softplus
    assert torch.isclose(discriminator_loss("non_saturating", real, fake), 0.5 * (sp(-real).mean() + sp(fake).mean()))
    assert torch.isclose(generator_loss("non_saturating", fake), sp(-fake).mean())


def test_videos_are_scored_frame_by_frame_or_as_clips():
    torch.manual_seed(0)
    frames = registry.build("trainer", {"name": "vqgan", "disc_channels": 8, "disc_layers": 2})
    clips = registry.build("trainer", {"name": "vqgan", "disc_channels": 8, "disc_layers": 2, "discriminator": "3d"})
    video = torch.randn(2, 3, 5, 32, 32)
    assert frames.score(video).shape == (10, 1, 6, 6)
    assert torch.equal(frames.score(video)[1], frames.score(video[:, :, 1])[0])  # frame 1 of clip 0
    assert clips.score(video).shape == (2, 1, 5, 6, 6)


def tiny_tokenizer():
    import tokcore

    return tokcore.build_tokenizer({"encoder": {"name": "conv2d", **CONV, "out_dim": 4},
                                    "quantizer": {"name": "vq", "dim": 4, "codebook_size": 16, "kmeans_init": False},
                                    "decoder": {"name": "conv2d", **CONV, "in_dim": 4}})


def test_adaptive_weight_balances_the_gradients_at_the_decoders_last_layer():
    torch.manual_seed(0)
    model = tiny_tokenizer().eval()  # eval: the codebook stays put, so a copy reconstructs the same
    trainer = registry.build("trainer", {"name": "vqgan", "disc_channels": 8, "disc_layers": 2, "disc_weight": 0.5})
    trainer.loss = ReconstructionLoss("l1")
    assert last_layer_weight(model.decoder) is model.decoder.body.conv_out.weight
    x = torch.randn(2, 3, 32, 32)
    out = trainer.training_step(model, {"input": x}, step=0)
    # by hand: |d rec / d W| / |d gen / d W| at the output conv, times disc_weight
    torch.manual_seed(0)
    again = tiny_tokenizer()
    again.load_state_dict(model.state_dict())
    again.eval()
    recon = again(x).recon
    rec = ReconstructionLoss("l1")(recon, x).loss
    gen = -trainer.discriminator(recon).mean()
    w = again.decoder.body.conv_out.weight
    ratio = torch.autograd.grad(rec, w, retain_graph=True)[0].norm() / (torch.autograd.grad(gen, w)[0].norm() + 1e-4)
    assert torch.isclose(torch.as_tensor(out.metrics["gan/weight"]), 0.5 * ratio, rtol=1e-4)
    # the generator term sends no gradient into the discriminator, only through it
    out.loss.backward()
    assert all(p.grad is None for p in trainer.discriminator.parameters())
    assert model.decoder.body.conv_out.weight.grad is not None


def test_the_adaptive_weight_is_measured_on_each_core_decoders_output_layer():
    vit = registry.build("decoder", {"name": "vit", "in_dim": 4, "image_size": 16, "patch_size": 4, "width": 16,
                                     "depth": 1, "num_heads": 2})
    video = registry.build("decoder", {"name": "causal3d", "in_dim": 4, **CONV, "temporal_compression": 2})
    assert last_layer_weight(vit) is vit.to_pixels.weight
    assert last_layer_weight(video) is video.body.conv_out.conv.weight


def test_the_discriminator_sits_out_before_its_start_step():
    torch.manual_seed(0)
    model = tiny_tokenizer()
    trainer = registry.build("trainer", {"name": "vqgan", "disc_channels": 8, "disc_layers": 2, "disc_start": 5})
    trainer.loss = ReconstructionLoss("l1")
    batch = {"input": torch.randn(2, 3, 32, 32)}
    early = trainer.training_step(model, batch, step=4)
    assert "gan/generator" not in early.metrics
    assert not trainer.training_step(model, batch, step=4, optimizer="discriminator").loss.requires_grad
    trainer.training_step(model, batch, step=5)
    late = trainer.training_step(model, batch, step=5, optimizer="discriminator")
    assert late.loss.requires_grad and "gan/logits_fake" in late.metrics
    with pytest.raises(RuntimeError, match="step 6: the discriminator step needs the reconstructions"):
        trainer.training_step(model, batch, step=6, optimizer="discriminator")


def optimizer_state(run: Path, step: int, name: str) -> dict:
    from tokcore.run.checkpoint import load_training_state

    state, _ = load_training_state(run / f"checkpoints/step-{step}", 0)
    return state["optimizers"][name]["state"]


def test_trains_through_the_loop_saves_and_resumes_bit_exactly(tmp_path):
    cfg = write_config(tmp_path, disc_start=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run)]) == 0
    rows = [r for r in read_metrics(run) if "loss/model" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all("gan/generator" not in r for r in rows[:2]) and all("gan/generator" in r for r in rows[2:])
    assert all(r["loss/discriminator"] == 0.0 for r in rows[:2]) and all(r["loss/discriminator"] > 0 for r in rows[2:])
    # the discriminator's optimizer took no step before disc_start (no Adam moments yet), then did
    assert optimizer_state(run, 2, "discriminator") == {} and optimizer_state(run, 2, "model")
    assert all(int(s["step"]) == 2 for s in optimizer_state(run, 4, "discriminator").values())
    disc = load_file(str(run / "checkpoints/step-4/trainer.safetensors"))
    assert any(k.startswith("discriminator.") for k in disc)

    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints/step-4")
    (resumed / "checkpoints/latest").write_text("step-2\n")
    assert main(["train", "--config", str(cfg), "--output", str(resumed), "--resume"]) == 0
    for name in ("model.safetensors", "trainer.safetensors"):
        a = load_file(str(run / "checkpoints/step-4" / name))
        b = load_file(str(resumed / "checkpoints/step-4" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    def logged(path):  # every figure but the wall time
        return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(path) if "loss/model" in r]

    assert logged(run) == logged(resumed)


def test_a_causal_video_tokenizer_trains_with_a_3d_discriminator(tmp_path):
    cfg = write_config(tmp_path, video=True, discriminator="3d", disc_start=0)
    run = tmp_path / "video"
    assert main(["train", "--config", str(cfg), "train.steps=2", "--output", str(run)]) == 0
    rows = [r for r in read_metrics(run) if "loss/model" in r]
    assert len(rows) == 2 and all(np.isfinite(r["gan/generator"]) and r["loss/discriminator"] > 0 for r in rows)
    meta = json.loads((run / "checkpoints/step-2/tokenizer.json").read_text())
    assert meta["input_shape"] == [3, 5, 32, 32] and meta["token_grid"] == [2, 8, 8]


def test_two_processes_train_the_discriminator_like_one_process_with_accumulation(tmp_path):
    """The discriminator is the trainer's, outside DDP: the loop averages its gradients over
    ranks, so 2 processes equal 1 process with grad_accum 2 (GroupNorm: no batch statistics;
    FSQ: no codebook that the first micro-batch would update before the second)."""
    import os
    import subprocess
    import sys

    cfg = write_config(tmp_path, quantizer={"name": "fsq", "levels": [5, 5, 5, 5]}, disc_start=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(out: str, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "tokcore", "train", "--config", str(cfg), "train.steps=2",
                               "train.batch_size=2", *args, "--output", str(tmp_path / out)],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr

    train("two", "--nproc", "2")
    train("one", "train.grad_accum=2")
    for name in ("trainer.safetensors", "model.safetensors"):
        a = load_file(str(tmp_path / "two/checkpoints/step-2" / name))
        b = load_file(str(tmp_path / "one/checkpoints/step-2" / name))
        for k in a:
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6), (name, k)
    disc_before = registry.build("trainer", {"name": "vqgan", "disc_channels": 8, "disc_layers": 2}).state_dict()
    assert not all(torch.equal(disc_before[k], load_file(str(tmp_path / "one/checkpoints/step-2/trainer.safetensors"))[k])
                   for k in disc_before if k.endswith("weight"))
