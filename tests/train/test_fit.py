"""Tokenizers that are fitted, not trained by gradients: a DiscreteEncoder (no quantizer)
fitted by a FitTrainer goes through `tokcore train`, `load_tokenizer`, the token store and
`tokcore decode` like a neural tokenizer. The toy here cuts scalars into quantile bins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore.cli import main
from tokcore.interfaces import DiscreteDecoder, DiscreteEncoder, FitTrainer, Tokens
from tokcore.testing import check_component


class QuantileBins(DiscreteEncoder):
    """Each value of a `(T, 1)` track becomes the index of its quantile bin.

    Args:
        bins: number of bins.
        length: samples' length (the token grid).
    """

    def __init__(self, bins: int = 8, length: int = 16):
        super().__init__()
        self.codebook_size, self.length = bins, length
        self.register_buffer("edges", torch.linspace(-1, 1, bins + 1)[1:-1])

    def forward(self, x: torch.Tensor) -> Tokens:
        return Tokens(indices=torch.bucketize(x[..., 0].contiguous(), self.edges))

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.length,)

    def example_input(self, batch_size: int = 2) -> torch.Tensor:
        return torch.randn(batch_size, self.length, 1)


class BinCentres(DiscreteDecoder):
    """Bin indices back to the middle of their bins.

    Args:
        bins: number of bins.
    """

    def __init__(self, bins: int = 8):
        super().__init__()
        self.register_buffer("centres", torch.linspace(-1, 1, bins))

    def forward(self, indices: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.centres[indices].unsqueeze(-1)

    def example_input(self, batch_size: int = 2) -> torch.Tensor:
        return torch.randint(0, len(self.centres), (batch_size, 5))


class FitQuantiles(FitTrainer):
    """Bin edges at the quantiles of the training values, centres at the bins' medians.

    Args:
        val_limit: held-out samples measured.
    """

    def __init__(self, val_limit: int = 100):
        super().__init__()
        self.val_limit = val_limit

    def fit(self, model: Any, train: Any, val: Any) -> dict[str, float]:
        values = torch.cat([train[i]["input"].reshape(-1) for i in range(len(train))])
        bins = model.encoder.codebook_size
        model.encoder.edges.copy_(torch.quantile(values, torch.linspace(0, 1, bins + 1)[1:-1]))
        idx = torch.bucketize(values, model.encoder.edges)
        model.decoder.centres.copy_(torch.stack([values[idx == b].median() for b in range(bins)]))
        held = torch.stack([val[i]["input"] for i in range(min(len(val), self.val_limit))])
        return {"val/mae": float((model.decode(model.encode(held)) - held).abs().mean())}


@pytest.fixture
def bins_registry(tokcore_registry):
    tokcore_registry.register("encoder", "quantile_bins", QuantileBins)
    tokcore_registry.register("decoder", "bin_centres", BinCentres)
    tokcore_registry.register("trainer", "fit_quantiles", FitQuantiles)
    return tokcore_registry


def config(tmp: Path, **model: Any) -> Path:
    values = np.random.default_rng(0).normal(size=(40, 16, 1)).astype(np.float32)
    np.save(tmp / "tracks.npy", values)
    cfg = {"tokcore": 1, "model": {"encoder": {"name": "quantile_bins", "bins": 16},
                                   "decoder": {"name": "bin_centres", "bins": 16}, **model},
           "trainer": {"name": "fit_quantiles"},
           "data": {"name": "arrays", "path": str(tmp / "tracks.npy"), "val_fraction": 0.25}}
    (tmp / "bins.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "bins.yaml"


def test_discrete_components_pass_the_contract_kit(bins_registry):
    check_component("encoder", "quantile_bins")
    check_component("decoder", "bin_centres")
    check_component("trainer", "fit_quantiles")


def test_fit_then_load_tokenize_decode(bins_registry, tmp_path, capsys):
    from tokcore.tokens.decode import decode_store
    from tokcore.tokens.tokenize import Options, tokenize

    run = tmp_path / "run"
    assert main(["train", "--config", str(config(tmp_path)), "--output", str(run)]) == 0
    assert "final: val/mae" in capsys.readouterr().out
    meta = json.loads((run / "checkpoints" / "step-1" / "tokenizer.json").read_text())
    assert meta["codebook_size"] == 16 and meta["token_grid"] == [16] and "quantizer" not in meta["model"]
    assert meta["latent_dim"] is None and meta["bits_per_sample"] == 16 * 4

    tok = tokcore.load_tokenizer(run)
    x = torch.from_numpy(np.load(tmp_path / "tracks.npy"))
    t = tok.encode(x)
    assert t.indices.dtype == torch.int64 and t.indices.shape == (40, 16) and t.latents is None
    counts = torch.bincount(t.indices.reshape(-1), minlength=16)
    assert counts.min() >= 30  # quantile bins: each holds about 1/16 of the values (640)
    recon = tok.decode(t)
    assert recon.shape == x.shape and float((recon - x).abs().mean()) < 0.15

    summary = tokenize(run, tmp_path / "tokens", options=Options(workers=0, progress=False))
    store = tokcore.TokenStore(summary.output)
    assert len(store) == 40 and store.dtype == np.uint8 and store.codebook_size == 16
    assert np.array_equal(np.stack([store[k] for k in store]), t.indices.numpy())
    n, files = decode_store(run, tmp_path / "tokens", tmp_path / "decoded")
    rows = [json.loads(line) for line in (tmp_path / "decoded" / "decoded.jsonl").read_text().splitlines()]
    assert n == 40 and np.array_equal(np.load(tmp_path / "decoded" / rows[3]["files"][0]), recon[3].numpy())


def test_resume_and_dry_run_of_a_fit(bins_registry, tmp_path, capsys):
    cfg, run = config(tmp_path), tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run)]) == 0
    first = (run / "checkpoints" / "step-1" / "model.safetensors").read_bytes()
    assert main(["train", "--config", str(cfg), "--output", str(run), "--resume"]) == 0
    assert (run / "checkpoints" / "step-1" / "model.safetensors").read_bytes() == first
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 0
    assert "trainer 'fit_quantiles' fits the model in one pass" in capsys.readouterr().out


def test_mixing_discrete_and_latent_parts_is_refused(bins_registry, tmp_path, capsys):
    cfg = config(tmp_path, quantizer={"name": "fsq", "levels": [5, 5]})
    assert main(["train", "--config", str(cfg), "--dry-run"]) == 2
    assert "model.quantizer: encoder 'quantile_bins' emits tokens itself; remove model.quantizer" in capsys.readouterr().err
    model = {"encoder": {"name": "conv1d", "in_channels": 1, "out_dim": 2, "base_channels": 4, "channel_mult": [1],
                         "num_res_blocks": 1, "mid_attention": False},
             "quantizer": {"name": "fsq", "levels": [5, 5]}, "decoder": {"name": "bin_centres"}}
    with pytest.raises(tokcore.ConfigError, match="model.decoder: 'bin_centres' takes token indices"):
        tokcore.build_tokenizer(model)
    with pytest.raises(TypeError, match="no gradient step"):
        FitQuantiles().training_step(None, {}, 0)


def test_one_tokenizer_path_with_the_coding_chosen_at_construction(bins_registry):
    from tokcore.tokenizer import EncoderCoding, QuantizerCoding

    tok = tokcore.build_tokenizer({"encoder": {"name": "quantile_bins", "bins": 16},
                                   "decoder": {"name": "bin_centres", "bins": 16}})
    assert isinstance(tok.coding, EncoderCoding) and tok.quantizer is None
    assert tok.is_discrete and tok.codebook_size == 16 and tok.index_shape == () and tok.bits_per_token == 4.0
    info = tok.info()
    assert info["variable_length"] and info["latent_dim"] is None and "quantizer" not in info["parameters"]
    with pytest.raises(TypeError, match="no training forward; fit it with a FitTrainer"):
        tok(torch.zeros(2, 16, 1))
    x = torch.linspace(-1, 1, 32).reshape(2, 16, 1)
    assert torch.equal(tok.decode(tok.encode(x).indices), tok.decode(tok.encode(x)))
    conv = {"base_channels": 4, "channel_mult": [1], "num_res_blocks": 1, "mid_attention": False}
    latent = tokcore.build_tokenizer({"encoder": {"name": "conv1d", "in_channels": 1, "out_dim": 2, **conv},
                                      "quantizer": {"name": "identity", "dim": 2},
                                      "decoder": {"name": "conv1d", "in_dim": 2, "out_channels": 1, **conv}})
    assert isinstance(latent.coding, QuantizerCoding) and not latent.is_discrete and latent.bits_per_token == 0.0
    t = latent.encode(x)
    assert t.indices is None and t.latents.shape == (2, 16, 2)
    assert latent.decode(t.latents).shape == x.shape and latent.info()["latent_dim"] == 2
