"""The model configs tok-rgb ships resolve, and build into the tokenizers they describe: full
sizes on the meta device (no memory, no time), the quick video model for real."""

from __future__ import annotations

import pytest
import torch

import tokcore
from tokcore import registry
from tokcore.config import load


def resolved(name: str) -> dict:
    """The config `tok-rgb:NAME`, resolved; its data section swapped for core's `arrays` when
    tok-rgb's datasets are not installed (they come with tok-rgb's data part)."""
    path = f"tok-rgb:{name}"
    raw = load(path, resolve=False).data
    data = raw["data"]["name"]
    overrides = [] if data in registry.list("dataset") else ["data.name=arrays", f"data.path={path}"]
    return load(path, overrides).data


def build(cfg: dict, input_shape: tuple[int, ...], meta: bool) -> tokcore.Tokenizer:
    with torch.device("meta") if meta else torch.device("cpu"):
        return tokcore.build_tokenizer(cfg["model"], cfg["modality"], input_shape)


def test_4m_rgb_is_a_vit_b16_vq_of_16k_codes_giving_14x14_tokens_at_224px():
    cfg = resolved("4m-rgb")
    model = build(cfg, (3, 224, 224), meta=True)
    info = model.info()
    assert info["token_grid"] == [14, 14] and info["codebook_size"] == 16384 and info["latent_dim"] == 32
    assert info["bits_per_sample"] == 196 * 14
    assert 85e6 < info["parameters"]["encoder"] < 87e6  # ViT-B/16
    assert model.quantizer.cosine
    # and it runs at other resolutions (interpolated position embeddings): 14x14 at 224, 16x16 at 256
    assert model.encoder.token_grid((3, 256, 256)) == (16, 16)


@pytest.mark.parametrize("name, grid", [("dv4x8x8", [5, 32, 32]), ("dv8x8x8", [3, 32, 32]), ("dv8x16x16", [3, 16, 16])])
def test_cosmos_dv_configs_code_17_frames_and_a_picture_as_one_frame(name, grid):
    cfg = resolved(name)
    model = build(cfg, (3, 17, 256, 256), meta=True)
    info = model.info()
    assert cfg["model"]["encoder"]["name"] == "cosmos" and cfg["model"]["quantizer"]["name"] == "cosmos_fsq"
    assert info["token_grid"] == grid and info["codebook_size"] == 8 * 8 * 8 * 5 * 5 * 5
    assert model.encoder.token_grid((3, 1, 256, 256)) == (1, *grid[1:])
    assert cfg["trainer"]["name"] == "vqgan"
    assert registry.build("trainer", cfg["trainer"]).disc_start == 50000


def test_4m_vqvae_is_vit_b16_at_224_with_imagenet_statistics():
    cfg = resolved("4m-vqvae")
    model = build(cfg, (3, 224, 224), meta=True)
    info = model.info()
    assert info["token_grid"] == [14, 14] and info["codebook_size"] == 16384 and info["latent_dim"] == 32
    assert 85e6 < info["parameters"]["encoder"] < 87e6  # ViT-B/16
    assert info["modality"]["mean"] == [123.675, 116.28, 103.53]


def test_dalle_is_openais_dvae_8192_codes_at_one_eighth():
    model = build(resolved("dalle"), (3, 256, 256), meta=True)
    info = model.info()
    assert info["token_grid"] == [32, 32] and info["codebook_size"] == 8192
    video = build(resolved("vimpac-256"), (3, 8, 256, 256), meta=True)
    assert video.info()["token_grid"] == [8, 32, 32]


def test_video_quick_builds_and_round_trips_images_and_clips():
    cfg = resolved("video-quick")
    torch.manual_seed(0)
    model = build(cfg, (3, 9, 32, 32), meta=False)
    assert model.info()["token_grid"] == [3, 8, 8]
    clip = torch.randint(0, 256, (1, 3, 9, 32, 32), dtype=torch.uint8)
    tokens = model.encode(clip)
    assert tokens.indices.shape == (1, 3, 8, 8)
    assert model.decode(tokens).shape == clip.shape
    assert model.encode(clip[:, :, :1]).indices.shape == (1, 1, 8, 8)


@pytest.mark.parametrize("name", ["4m-rgb", "4m-vqvae", "dv4x8x8", "dv8x8x8", "dv8x16x16", "dalle", "vimpac-128",
                                  "vimpac-256", "video-quick"])
def test_every_config_resolves_through_the_cli(name, capsys):
    from tokcore.cli import main

    path = f"tok-rgb:{name}"
    raw = load(path, resolve=False).data
    extra = [] if raw["data"]["name"] in registry.list("dataset") else ["data.name=arrays", f"data.path={path}"]
    assert main(["config", "--config", path, *extra]) == 0
    assert "name: " in capsys.readouterr().out
