"""4M's VQ-ControlNet in tok-rgb: the decoder on a tiny SD-shaped pipeline (contract, guidance,
dropout, checks of the folder), training through `tokcore train` on the frozen tokens of a
tok-rgb:quick run (loss falls; UNet, VAE, encoder and quantizer bit-identical), `tokcore
decode` at two seeds and two guidance scales, and SD-1.5's sizes on the meta device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("diffusers")

import diffusers  # noqa: E402

import tokcore  # noqa: E402
from tokcore import ConfigError, TokcoreError, registry  # noqa: E402
from tokcore.cli import main  # noqa: E402
from tokcore.testing import check_component  # noqa: E402
from tokcore.train.log import read_metrics  # noqa: E402
from tok_rgb.diffusion.pipeline import load_pipeline, weights_digest  # noqa: E402
from tok_rgb.diffusion.tiny_pipeline import write_sd15_configs, write_tiny_pipeline  # noqa: E402

PHOTOS = ["data.crops_per_photo=4", "data.train_photos=[astronaut, rocket, camera, brick]"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_tiny_pipeline(tmp_path_factory.mktemp("pipelines") / "tiny-sd")


def decoder(folder: Path, **kw) -> torch.nn.Module:
    return registry.build("decoder", {"name": "controlnet", "in_dim": 4, "pipeline": str(folder), "downsample": 8,
                                      "adapter_channels": [8], "sampling_steps": 3, **kw})


def wake(dec: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights in the zero-initialized convs, so that the condition changes the output
    (as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dec.controlnet.named_parameters():
            if "zero_conv" in name or "controlnet_mid_block" in name or "controlnet_cond_embedding.out" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return dec


def test_contract():
    check_component("decoder", "controlnet")


def test_only_controlnet_and_adapter_train_and_the_checkpoint_holds_only_them(folder):
    dec = decoder(folder)
    trainable = {n.split(".")[0] for n, p in dec.named_parameters() if p.requires_grad}
    assert trainable == {"controlnet"}
    assert not any(p.requires_grad for p in [*dec.unet.parameters(), *dec.vae.parameters()])
    state = dec.state_dict()
    assert not any(k.startswith(("unet.", "vae.")) for k in state)
    assert bytes(state["pipeline_digest"].tolist()) == weights_digest(dec.unet, dec.vae)
    assert state["prompt_embeds"].shape == (1, 8, 32)  # the empty prompt, stored with the checkpoint
    # the adapter replaces the ControlNet's condition embedding and starts at zero
    assert dec.controlnet.controlnet_cond_embedding is dec.adapter
    assert not dec.adapter.out.weight.any()
    # the loop's train() leaves the frozen parts in eval mode
    dec.train()
    assert dec.controlnet.training and not dec.unet.training and not dec.vae.training


def test_dropped_condition_is_all_zero_tokens_and_guidance_mixes_the_two(folder):
    dec = wake(decoder(folder)).eval()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 4, 4, generator=g)
    noisy, t = torch.randn(2, 4, 4, 4, generator=g), torch.tensor([10, 700])
    drop = torch.tensor([True, False])
    with torch.no_grad():
        dropped = dec(z, noisy=noisy, timesteps=t, drop=drop)
        by_hand = dec(torch.stack([torch.zeros_like(z[0]), z[1]]), noisy=noisy, timesteps=t)
        torch.testing.assert_close(dropped, by_hand, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(dropped[0], dec(z, noisy=noisy, timesteps=t)[0])
    # guidance 0 samples the unconditional branch: all-zero tokens, unguided, from the same noise
    noise = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    torch.testing.assert_close(_last_latents(dec, z, guidance_scale=0.0, generator=noise()),
                               _last_latents(dec, torch.zeros_like(z), guidance_scale=1.0, generator=noise()),
                               rtol=1e-4, atol=1e-5)
    # one DDIM step is affine in the model output, so guidance w = 2 is 2 * cond - uncond
    lat = [_last_latents(dec, z, guidance_scale=w, steps=1, seed=3) for w in (1.0, 0.0, 2.0)]
    apart = (lat[0] - lat[1]).abs().max()
    assert apart > 1e-5
    assert (lat[2] - (2 * lat[0] - lat[1])).abs().max() < 0.01 * apart


def _last_latents(dec, z, **options):
    """The sampled latents, before the VAE decodes them (the VAE is not affine)."""
    captured = {}
    original = dec.vae.decode

    def grab(latents, *a, **k):
        captured["x"] = latents
        return original(latents, *a, **k)

    dec.vae.decode = grab
    try:
        dec(z, **options)
    finally:
        del dec.vae.decode
    return captured["x"]


def test_decoding_is_deterministic_per_seed_and_sampler(folder):
    dec = wake(decoder(folder)).eval()
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    a, b = dec(z, seed=1), dec(z, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, dec(z, seed=2))
    assert torch.equal(dec(z[:1], seed=1), a[:1]) or torch.allclose(dec(z[:1], seed=1), a[:1], atol=1e-5)
    dpm = dec(z, seed=1, sampler="dpm_solver")
    assert dpm.shape == a.shape and not torch.equal(dpm, a) and torch.equal(dpm, dec(z, seed=1, sampler="dpm_solver"))
    assert a.min() >= -1 and a.max() <= 1
    # a latent grid the UNet cannot halve evenly (SD-1.5 at 224 px has 28x28) still decodes
    assert dec(torch.randn(1, 5, 3, 4), steps=1).shape == (1, 3, 40, 24)


def test_bad_configs_and_folders_say_what_is_missing(folder, tmp_path):
    with pytest.raises(ConfigError, match="sampler: expected 'ddim' | 'dpm_solver'"):
        decoder(folder, sampler="pndm")
    with pytest.raises(ConfigError, match="multiple of the VAE's factor 8"):
        decoder(folder, downsample=12)
    with pytest.raises(ConfigError, match="is not a folder"):
        decoder(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "vae/diffusion_pytorch_model.safetensors").unlink()
    (broken / "empty_prompt.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"incomplete: missing vae/diffusion_pytorch_model.safetensors, "
                                          r"empty_prompt.safetensors"):
        decoder(broken)


def test_cli_names_the_missing_part_of_the_folder_and_exits_2(folder, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "unet")
    code = main(["train", "--config", "tok-rgb:controlnet-quick", f"model.decoder.pipeline={broken}", *PHOTOS,
                 "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "model.decoder.pipeline" in err and "missing unet/config.json, unet/diffusion_pytorch_model.safetensors" in err


def test_the_trainer_needs_a_frozen_tokenizer(folder):
    model = {"encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, "base_channels": 8,
                         "channel_mult": [1, 2, 2, 2], "num_res_blocks": 1, "mid_attention": False},
             "quantizer": {"name": "fsq", "levels": [5, 5, 5, 5]},
             "decoder": {"name": "controlnet", "pipeline": str(folder), "downsample": 8, "adapter_channels": [8]}}
    tok = tokcore.build_tokenizer(model, {"name": "rgb"}, (3, 32, 32))
    trainer = registry.build("trainer", {"name": "diffusion", "condition_dropout": 0.5})
    trainer.loss = registry.build("loss", {"name": "reconstruction"})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with pytest.raises(ConfigError, match=r"train.freeze: \[encoder, quantizer\]"):
        trainer.training_step(tok, {"input": x}, 0)
    tok.encoder.requires_grad_(False)
    with pytest.raises(ConfigError, match="train.freeze"):  # an unfrozen quantizer's codebook could still move
        trainer.training_step(tok, {"input": x}, 0)
    tok.encoder.eval(), tok.quantizer.eval()
    out = trainer.training_step(tok, {"input": x}, 0)
    out.loss.backward()
    assert all(p.grad is None for p in [*tok.encoder.parameters(), *tok.decoder.unet.parameters(),
                                        *tok.decoder.vae.parameters()])
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tok.decoder.controlnet.parameters())


# -- through tokcore train / tokenize / decode ---------------------------------------------------
def denoising_loss(tok: tokcore.Tokenizer, raw: torch.Tensor) -> float:
    """The diffusion trainer's loss on `raw`, averaged over 8 fixed draws of timesteps and noise."""
    trainer = registry.build("trainer", {"name": "diffusion"})
    trainer.loss = registry.build("loss", {"name": "reconstruction", "kind": "l2"})
    x, values = tok.prepare(raw), []
    tok.requires_grad_(False)  # as train.freeze leaves the tokenizer
    with torch.no_grad():
        for seed in range(8):
            torch.manual_seed(seed)
            values.append(trainer.training_step(tok.eval(), {"input": x}, 0).loss.item())
    return float(np.mean(values))


def test_trains_on_frozen_tokens_then_decodes_a_token_store(folder, tmp_path, capsys):
    vq = tmp_path / "quick"
    assert main(["train", "--config", "tok-rgb:quick", "train.steps=2", "train.eval_batches=1", *PHOTOS,
                 "--output", str(vq)]) == 0
    run = tmp_path / "controlnet"
    args = ["--config", "tok-rgb:controlnet-quick", f"model.decoder.pipeline={folder}", f"train.init_from={vq}",
            "model.decoder.sampling_steps=2", *PHOTOS]
    assert main(["train", *args, "train.steps=40", "train.batch_size=8", "train.log_every=1", "train.lr=2.0e-3", "train.warmup_steps=2",
                 "--output", str(run)]) == 0
    assert len([r for r in read_metrics(run) if "loss" in r]) == 40
    # the frozen tokenizer is bit-identical to the run it came from
    before = load_file(str(vq / "checkpoints/step-2/model.safetensors"))
    after = load_file(str(run / "checkpoints/step-40/model.safetensors"))
    frozen = [k for k in after if k.startswith(("encoder.", "quantizer."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    # the UNet and VAE, as they were when the checkpoint was saved, are the folder's, bit for bit
    pipe = load_pipeline(folder)
    assert bytes(after["decoder.pipeline_digest"].tolist()) == weights_digest(pipe.unet, pipe.vae)
    # the loss fell: the trained decoder denoises better than the one it started from
    raw = torch.from_numpy(np.stack([_crop(i) for i in range(8)]))
    trained = tokcore.load_tokenizer(run, ema=False)
    initial = tokcore.load_tokenizer(vq)
    fresh = tokcore.build_tokenizer(json.loads((run / "checkpoints/step-40/tokenizer.json").read_text())["model"],
                                    {"name": "rgb"}, (3, 32, 32))
    fresh.encoder.load_state_dict(initial.encoder.state_dict())
    assert denoising_loss(trained, raw) < 0.9 * denoising_loss(fresh, raw)

    # tokenize, then decode the store at two seeds and two guidance scales
    store = tmp_path / "tokens"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(store), "data.split=val", "--workers", "0",
                 "--quiet"]) == 0
    outs = {}
    for seed in (0, 1):
        for w in (1.0, 3.0):
            out = tmp_path / f"decoded-s{seed}-w{w}"
            assert main(["decode", "--checkpoint", str(run), "--tokens", str(store), "--output", str(out),
                         f"decoder.seed={seed}", f"decoder.guidance_scale={w}", "decoder.steps=2"]) == 0
            outs[seed, w] = _pixels(out)
    again = tmp_path / "again"
    assert main(["decode", "--checkpoint", str(run), "--tokens", str(store), "--output", str(again),
                 "decoder.seed=0", "decoder.guidance_scale=1.0", "decoder.steps=2"]) == 0
    assert np.array_equal(_pixels(again), outs[0, 1.0])  # same seed, same images
    assert not np.array_equal(outs[0, 1.0], outs[1, 1.0])  # another seed, other images
    assert not np.array_equal(outs[0, 1.0], outs[0, 3.0])  # guidance changes them
    capsys.readouterr()
    code = main(["decode", "--checkpoint", str(run), "--tokens", str(store), "--output", str(tmp_path / "bad"),
                 "decoder.sead=1"])
    assert code == 2 and "no decoding option 'sead'" in capsys.readouterr().err

    # a checkpoint refuses a pipeline folder with other weights
    shutil.rmtree(folder / "unet")
    shutil.copytree(write_tiny_pipeline(tmp_path / "other", seed=1) / "unet", folder / "unet")
    try:
        with pytest.raises(TokcoreError, match="differ from those this controlnet decoder was trained with"):
            tokcore.load_tokenizer(run)
    finally:
        shutil.rmtree(folder)
        write_tiny_pipeline(folder)


def _crop(i: int) -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    photo = [data.astronaut(), data.coffee(), data.chelsea()][i % 3]
    y, x = 20 * i, 25 * i
    return photo[y:y + 128:4, x:x + 128:4].transpose(2, 0, 1).astype(np.float32)


def _pixels(folder: Path) -> np.ndarray:
    from PIL import Image

    rows = [json.loads(line) for line in (folder / "decoded.jsonl").read_text().splitlines()]
    return np.stack([np.asarray(Image.open(folder / r["files"][0])) for r in rows])


# -- the full size --------------------------------------------------------------------------------
def test_sd15_sizes_on_the_meta_device(tmp_path):
    configs = write_sd15_configs(tmp_path / "sd15")
    with torch.device("meta"):
        dec = registry.build("decoder", {"name": "controlnet", "in_dim": 32, "pipeline": str(configs)})
        reference = diffusers.ControlNetModel.from_unet(dec.unet, load_weights_from_unet=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(dec.unet) == 859_520_964  # SD-1.5's UNet
    assert round(count(reference) / 1e6) == 361  # SD-1.5's ControlNet (with its 3-channel image embedding)
    trunk = count(dec.controlnet) - count(dec.adapter)
    assert trunk == count(reference) - count(reference.controlnet_cond_embedding)
    assert dec.prompt_embeds.shape == (1, 77, 768)


def test_dry_run_takes_a_step_with_the_tokenizer_frozen(folder, capsys):
    assert main(["train", "--config", "tok-rgb:controlnet-quick", f"model.decoder.pipeline={folder}", *PHOTOS,
                 "--dry-run"]) == 0
    assert "decoder   controlnet" in capsys.readouterr().out


def test_decode_options_must_be_decoder_keys(tmp_path, capsys):
    code = main(["decode", "--checkpoint", str(tmp_path), "--tokens", str(tmp_path), "--output", str(tmp_path / "o"),
                 "seed=1"])
    assert code == 2 and "'seed=1' is not decoder.KEY=VALUE" in capsys.readouterr().err
