"""4M's DiVAE in tok-rgb: the diffusion math against diffusers, DDIM with a perfect model, the
denoising loss of each prediction type, deterministic decoding, and training through
`tokcore train` (end to end and on a frozen encoder), tokenize and decode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler  # noqa: E402

import tokcore  # noqa: E402
from tokcore import ConfigError, registry  # noqa: E402
from tokcore.cli import main  # noqa: E402
from tokcore.tokenizer import build_tokenizer  # noqa: E402
from tokcore.train.log import read_metrics  # noqa: E402
from tok_rgb.diffusion.schedule import add_noise, ddim_sample, predicted_x0, prediction_target  # noqa: E402

TINY_UNET = {"name": "divae", "in_dim": 4, "downsample": 8, "patch_size": 2, "channels": [8, 16],
             "layers_per_block": 1, "attention_levels": [1], "norm_groups": 4, "num_train_timesteps": 100,
             "sampling_steps": 4}
TINY_CONV = {"base_channels": 8, "channel_mult": [1, 2, 2, 2], "num_res_blocks": 1, "mid_attention": False}
PREDICTIONS = ["epsilon", "v_prediction", "sample"]


def divae(prediction: str = "v_prediction", **kw) -> torch.nn.Module:
    # epsilon cannot recover x0 at zero terminal SNR, so it runs on the plain schedule
    return registry.build("decoder", {**TINY_UNET, "prediction": prediction,
                                      "zero_terminal_snr": prediction != "epsilon", **kw})


def tokenizer(prediction: str = "v_prediction") -> tokcore.Tokenizer:
    model = {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, **TINY_CONV},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
             "decoder": {**TINY_UNET, "prediction": prediction, "zero_terminal_snr": prediction != "epsilon"}}
    return build_tokenizer(model, {"name": "rgb"}, (3, 32, 32))


def images(b: int = 3, side: int = 16, seed: int = 0) -> torch.Tensor:
    """Normalized images in [-1, 1] (smooth, so they look like pictures, not noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, side // 4, side // 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def oracle(decoder, x0: torch.Tensor, kind: str | None = None):
    """A perfect denoiser for clean images `x0`: from x_t and t it knows the noise exactly and
    returns the target of prediction type `kind` (the decoder's own by default), written out
    here independently of tok_rgb's schedule module."""
    kind = kind or decoder.prediction

    def denoise(x_t, t, z):
        a = decoder.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return {"epsilon": eps, "sample": x0, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0}[kind]

    return denoise


# -- the diffusion math ---------------------------------------------------------------------
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_noising_targets_and_x0_recovery_match_diffusers(prediction):
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction,
                          timestep_spacing="trailing", clip_sample=False)
    g = torch.Generator().manual_seed(0)
    # float64: near t = 999 x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) divides by ~0.006
    x0, eps = (torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    sched.alphas_cumprod = sched.alphas_cumprod.double()
    t = torch.tensor([0, 250, 600, 999])
    a = sched.alphas_cumprod[t]
    x_t = add_noise(x0, eps, a)
    torch.testing.assert_close(x_t, sched.add_noise(x0, eps, t))
    target = prediction_target(prediction, x0, eps, a)
    expected = {"epsilon": eps, "sample": x0, "v_prediction": sched.get_velocity(x0, eps, t)}[prediction]
    torch.testing.assert_close(target, expected)
    # a perfect prediction of any type gives x0 back at every t, as the closed forms say
    torch.testing.assert_close(predicted_x0(prediction, target, x_t, a), x0, atol=1e-4, rtol=1e-4)
    # and the same x0 diffusers' DDIM step derives from it
    sched.set_timesteps(10)
    for i in (0, 4, 9):
        ti = sched.timesteps[i]
        ai = sched.alphas_cumprod[ti].expand(4)
        xi = add_noise(x0, eps, ai)
        step = sched.step(prediction_target(prediction, x0, eps, ai), ti, xi)
        torch.testing.assert_close(step.pred_original_sample, predicted_x0(prediction, prediction_target(
            prediction, x0, eps, ai), xi, ai), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(step.pred_original_sample, x0, atol=1e-4, rtol=1e-4)


def test_velocity_at_known_t_by_hand():
    # alpha_bar = 0.36: x_t = 0.6 x0 + 0.8 eps, v = 0.6 eps - 0.8 x0
    x0, eps, a = torch.full((1, 1), 2.0), torch.full((1, 1), -1.0), torch.tensor([0.36])
    assert add_noise(x0, eps, a).item() == pytest.approx(0.4)
    assert prediction_target("v_prediction", x0, eps, a).item() == pytest.approx(-2.2)
    assert predicted_x0("v_prediction", torch.tensor([[-2.2]]), torch.tensor([[0.4]]), a).item() == pytest.approx(2.0)
    assert predicted_x0("epsilon", torch.tensor([[-1.0]]), torch.tensor([[0.4]]), a).item() == pytest.approx(2.0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("steps", [1, 3, 10])
def test_ddim_with_a_perfect_model_reproduces_x0(prediction, steps):
    dec = divae(prediction, thresholding=prediction != "sample").eval()
    x0, z = images(2), torch.randn(2, 2, 2, 4)
    dec.denoise = oracle(dec, x0)
    out = dec.sample(z, steps=steps)
    # float32; epsilon's x0 divides by sqrt(alpha_bar) ~ 0.03 at the first step
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


def test_ddim_sample_counts_network_evaluations():
    calls = []
    sched = DDIMScheduler(num_train_timesteps=100, timestep_spacing="trailing")
    ddim_sample(lambda x, t: calls.append(int(t[0])) or torch.zeros_like(x), sched, torch.randn(1, 3, 4, 4), 5)
    assert calls == [99, 79, 59, 39, 19]


# -- the decoder ----------------------------------------------------------------------------------
def test_shapes_of_training_path_sampling_and_the_tokenizer():
    dec = divae()
    z = torch.randn(3, 2, 4, 4)  # a 2 x 4 token grid -> 16 x 32 images
    noisy, t = torch.randn(3, 3, 16, 32), torch.tensor([0, 50, 99])
    assert dec(z, noisy=noisy, timesteps=t).shape == (3, 3, 16, 32)
    assert dec.eval()(z).shape == (3, 3, 16, 32)
    tok = tokenizer().eval()
    raw = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    tokens = tok.encode(raw)
    assert tokens.indices.shape == (2, 4, 4)
    recon = tok.decode(tokens)
    assert recon.shape == (2, 3, 32, 32) and torch.isfinite(recon).all()
    with pytest.raises(ValueError, match=r"2x2 token grid with downsample 8 decodes 16x16 images, got 32x32.*downsample"):
        dec(torch.randn(1, 2, 2, 4), noisy=torch.randn(1, 3, 32, 32), timesteps=torch.tensor([1]))


def test_decoding_is_deterministic_per_sample_and_takes_steps_and_seed_at_decode_time():
    tok = tokenizer().eval()
    tokens = tok.encode(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    a, b = tok.decode(tokens), tok.decode(tokens)
    assert torch.equal(a, b)
    # a sample gets the same noise alone or in any batch, so tokcore decode's batching does not
    # matter (up to float rounding of batched kernels; other noise would differ by ~100 levels)
    torch.testing.assert_close(tok.decode(tokens.indices[1:2]), a[1:2], atol=1e-2, rtol=0)
    torch.testing.assert_close(tok.decode(tokens.indices.flip(0)), a.flip(0), atol=1e-2, rtol=0)
    assert not torch.equal(tok.decode(tokens, seed=1), a)
    assert not torch.equal(tok.decode(tokens, steps=2), a)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(tok.decode(tokens, generator=g1), tok.decode(tokens, generator=g2))
    with pytest.raises(ValueError, match="steps must be in 1..100"):
        tok.decode(tokens, steps=0)


def test_bad_decoder_configs_say_what_to_change():
    with pytest.raises(ConfigError, match="'epsilon' cannot be used with zero_terminal_snr.*v_prediction"):
        registry.build("decoder", {**TINY_UNET, "prediction": "epsilon"})
    with pytest.raises(ConfigError, match="norm_groups 3 must divide every entry of channels"):
        registry.build("decoder", {**TINY_UNET, "norm_groups": 3})
    with pytest.raises(ConfigError, match="attention_levels \\[2\\] are outside 0..1"):
        registry.build("decoder", {**TINY_UNET, "attention_levels": [2]})
    with pytest.raises(ConfigError, match="patch_size 3 must divide downsample 8"):
        registry.build("decoder", {**TINY_UNET, "patch_size": 3})


# -- the trainer ----------------------------------------------------------------------------------
def _step(tok, x, prediction_of_oracle=None, zero=False):
    trainer = registry.build("trainer", {"name": "diffusion"})
    trainer.loss = registry.build("loss", {"name": "reconstruction", "kind": "l2"})
    seen = {}
    truth = oracle(tok.decoder, x, "epsilon")

    def denoise(x_t, t, z):
        seen["a"] = tok.decoder.alphas_cumprod[t].reshape(-1, 1, 1, 1)
        seen["eps"] = truth(x_t, t, z)
        return torch.zeros_like(x_t) if zero else oracle(tok.decoder, x, prediction_of_oracle)(x_t, t, z)

    tok.decoder.denoise = denoise
    return trainer.training_step(tok.train(), {"input": x, "mask": None}, 0), seen


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoising_loss_of_each_prediction_type(prediction):
    torch.manual_seed(0)
    tok, x = tokenizer(prediction), images(4, 32)
    out, _ = _step(tok, x)
    assert out.loss.item() < 1e-9  # the perfect model of its own type has no loss
    wrong = {"epsilon": "sample", "sample": "v_prediction", "v_prediction": "epsilon"}[prediction]
    out, _ = _step(tok, x, wrong)
    assert out.loss.item() > 0.05  # the target depends on the type
    out, seen = _step(tok, x, zero=True)  # a zero output costs the mean square of the target
    a, eps = seen["a"], seen["eps"]
    target = {"epsilon": eps, "sample": x, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x}[prediction]
    assert out.loss.item() == pytest.approx(target.square().mean().item(), rel=1e-5)
    assert out.metrics["loss/l2"] == pytest.approx(out.loss.item())


def test_trainer_refuses_a_decoder_that_is_not_diffusion():
    model = {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, **TINY_CONV},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
             "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 3, **TINY_CONV}}
    trainer = registry.build("trainer", {"name": "diffusion"})
    trainer.loss = registry.build("loss", {"name": "reconstruction"})
    with pytest.raises(ConfigError, match="needs a diffusion decoder \\(model.decoder.name: divae or controlnet\\)"):
        trainer.training_step(build_tokenizer(model), {"input": images(2, 32)}, 0)


# -- through tokcore train / tokenize / decode on real photos ------------------------------------
def photo_crops(n: int = 48, side: int = 32) -> np.ndarray:
    """Crops of real photos bundled with scikit-image, 4x downsampled so each holds a scene."""
    data = pytest.importorskip("skimage.data")
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - 4 * side), rng.integers(0, p.shape[1] - 4 * side)
        crops.append(p[y:y + 4 * side:4, x:x + 4 * side:4].transpose(2, 0, 1))
    return np.stack(crops).astype(np.float32)


def quick_args(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "crops.npy", photo_crops())
    return ["--config", "tok-rgb:divae-quick", f"data.path={tmp_path / 'crops.npy'}", "data.val_fraction=0.25",
            "model.encoder.base_channels=8", "model.decoder.channels=[8, 16, 16]", "model.decoder.sampling_steps=3",
            "train.batch_size=8",
            "train.log_every=1", "train.eval_batches=1", "train.warmup_steps=2", "train.lr=3.0e-3"]


def test_configs_resolve(capsys):
    for name, grid in (("tok-rgb:divae-quick", "(4, 4)"), ("tok-rgb:divae-4m", "(14, 14)")):
        assert main(["config", "--config", name]) == 0
        cfg = yaml.safe_load(capsys.readouterr().out)
        assert cfg["model"]["decoder"]["name"] == "divae" and cfg["trainer"]["name"] == "diffusion"
    assert cfg["model"]["decoder"]["channels"] == [256, 512, 512, 512] and cfg["model"]["quantizer"]["codebook_size"] == 16384


def denoising_loss(tok: tokcore.Tokenizer, raw: torch.Tensor) -> float:
    """The diffusion trainer's loss on `raw`, averaged over 8 fixed draws of timesteps and noise
    (one step's loss varies a lot with its random timesteps)."""
    trainer = registry.build("trainer", {"name": "diffusion"})
    trainer.loss = registry.build("loss", {"name": "reconstruction", "kind": "l2"})
    x, values = tok.prepare(raw), []
    with torch.no_grad():
        for seed in range(8):
            torch.manual_seed(seed)
            values.append(trainer.training_step(tok.eval(), {"input": x}, 0).loss.item())
    return float(np.mean(values))


def test_training_reduces_the_loss_then_tokenize_and_decode(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *quick_args(tmp_path), "train.steps=30", "--output", str(run)]) == 0
    assert len([r for r in read_metrics(run) if "loss" in r]) == 30
    config = yaml.safe_load((run / "config.yaml").read_text())
    torch.manual_seed(config["seed"])  # the loop's initial weights, rebuilt (the model draws from torch only)
    initial = tokcore.build_tokenizer(config["model"], config["modality"], (3, 32, 32))
    trained = tokcore.load_tokenizer(run, ema=False)
    raw = torch.from_numpy(photo_crops(16))
    before, after = denoising_loss(initial, raw), denoising_loss(trained, raw)
    assert after < 0.85 * before, (before, after)
    evals = [r for r in read_metrics(run) if "val/loss" in r]
    assert evals and np.isfinite(evals[-1]["val/loss"])  # the sampled reconstruction's error
    # the checkpoint alone rebuilds the tokenizer, and decoding is deterministic across loads
    tok, again = tokcore.load_tokenizer(run), tokcore.load_tokenizer(run)
    raw = torch.from_numpy(photo_crops(4))
    tokens = tok.encode(raw)
    assert torch.equal(tok.decode(tokens), again.decode(tokens))
    assert tokcore.load_tokenizer(run).info()["token_grid"] == [4, 4]
    # tokcore tokenize / decode work unchanged with a diffusion decoder
    store, out = tmp_path / "tokens", tmp_path / "decoded"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(store), "data.split=val", "--workers", "0",
                 "--quiet"]) == 0
    assert main(["decode", "--checkpoint", str(run), "--tokens", str(store), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "decoded.jsonl").read_text().splitlines()]
    assert len(rows) == len(tokcore.TokenStore(store)) == 12
    assert all((out / f).is_file() for r in rows for f in r["files"])


def test_decoder_trains_on_a_frozen_encoder_and_quantizer(tmp_path):
    args = quick_args(tmp_path)
    stage1 = tmp_path / "stage1"
    vqvae = ["trainer.name=vqvae", "model.decoder={name: conv2d, in_dim: 16, out_channels: 3, base_channels: 8, "
             "channel_mult: [1, 2, 2, 4], num_res_blocks: 1, mid_attention: false}"]
    assert main(["train", *args, *vqvae, "train.steps=3", "--output", str(stage1)]) == 0
    stage2 = tmp_path / "stage2"
    assert main(["train", *args, "train.steps=4", f"train.init_from={stage1}", "train.freeze=[encoder, quantizer]",
                 "train.ema_decay=0.9", "--output", str(stage2)]) == 0
    before = load_file(str(stage1 / "checkpoints/step-3/model.safetensors"))
    for name in ("model.safetensors", "model_ema.safetensors"):
        after = load_file(str(stage2 / "checkpoints/step-4" / name))
        frozen = [k for k in after if k.startswith(("encoder.", "quantizer."))]
        assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # bit-identical
    tok = tokcore.load_tokenizer(stage2)
    assert tok.info()["components"]["decoder"] == "divae"
    # the frozen encoder gets no gradient: the loss reaches only the decoder
    tok.train()
    tok.encoder.requires_grad_(False), tok.quantizer.requires_grad_(False)
    trainer = registry.build("trainer", {"name": "diffusion"})
    trainer.loss = registry.build("loss", {"name": "reconstruction"})
    x = tok.prepare(torch.from_numpy(photo_crops(4)))
    trainer.training_step(tok, {"input": x}, 0).loss.backward()
    assert all(p.grad is None for p in tok.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tok.decoder.parameters())


def test_freezing_an_encoder_that_does_not_match_the_checkpoint_fails(tmp_path, capsys):
    args = quick_args(tmp_path)
    assert main(["train", *args, "train.steps=1", "--output", str(tmp_path / "stage1")]) == 0
    code = main(["train", *args, "train.steps=1", f"train.init_from={tmp_path / 'stage1'}", "train.freeze=[encoder]",
                 "model.encoder.base_channels=16", "--output", str(tmp_path / "stage2")])
    assert code == 2
    assert "tensors of the frozen encoder" in capsys.readouterr().err
