"""The latent width is stated once, by the encoder: a quantizer's `dim` and a decoder's
`in_dim` left out are filled in by the tokenizer, recorded with the values used, and the run
reloads identically from its tokenizer.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore import registry
from tokcore.cli import main
from tokcore.errors import ConfigError
from tokcore.interfaces import Quantizer, QuantizerOutput, require_dim
from tokcore.registry.params import params_of
from tokcore.tokenizer import build_tokenizer

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def model(quantizer: dict, out_dim: int = 6) -> dict:
    return {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": out_dim, **CONV},
            "quantizer": quantizer,
            "decoder": {"name": "conv1d", "out_channels": 2, **CONV}}


@pytest.mark.parametrize("quantizer", [{"name": "vq", "codebook_size": 16}, {"name": "rvq", "codebook_size": 8},
                                       {"name": "identity"}, {"name": "fsq", "levels": [5, 5, 5]},
                                       {"name": "lfq", "codebook_size": 16}, {"name": "rfsq", "levels": [3, 3]}])
def test_left_out_widths_come_from_the_encoder(quantizer):
    tok = build_tokenizer(model(quantizer))
    assert tok.quantizer.dim == 6 and tok.decoder.in_dim == 6
    assert tok.config["quantizer"]["dim"] == 6 and tok.config["decoder"]["in_dim"] == 6  # what checkpoints record
    x = torch.rand(2, 16, 2)
    assert tok.decode(tok.encode(x)).shape == x.shape


def test_a_plugin_quantizer_that_leaves_dim_to_the_tokenizer_gets_it(tokcore_registry):
    class Sign(Quantizer):
        """Signs of the latents.

        Args:
            dim: channels of the latents.
        """

        def __init__(self, dim: int | None = None):
            super().__init__()
            self.dim, self.codebook_size, self.index_shape = require_dim(dim, "dim"), None, ()

        def forward(self, z):
            return QuantizerOutput(quantized=torch.sign(z), indices=None)

        def indices_to_codes(self, indices):
            raise TypeError("continuous")

    tokcore_registry.register("quantizer", "sign", Sign)
    tok = build_tokenizer(model({"name": "sign"}, out_dim=5))
    assert tok.quantizer.dim == 5 and tok.decoder.in_dim == 5


def test_given_widths_are_kept_and_a_mismatch_says_how_to_fix_it():
    tok = build_tokenizer(model({"name": "fsq", "levels": [5, 5, 5], "dim": 6}))
    assert tok.quantizer.dim == 6
    with pytest.raises(ConfigError, match=r"^model\.quantizer\.dim: 4 differs from model.encoder's out_dim 6; make "
                                          r"them equal \(or leave it out: it defaults to the encoder's out_dim\)$"):
        build_tokenizer(model({"name": "vq", "codebook_size": 16, "dim": 4}))


def test_alone_a_component_needs_its_width():
    with pytest.raises(ConfigError, match=r"^dim: not set; give it, or build the component inside a tokenizer, "
                                          r"which sets it to the encoder's out_dim$"):
        registry.build("quantizer", {"name": "vq", "codebook_size": 16})
    with pytest.raises(ConfigError, match=r"^in_dim: not set; .* which sets it to the quantizer's dim$"):
        registry.build("decoder", {"name": "conv2d"})
    assert registry.build("quantizer", {"name": "vq", "codebook_size": 16, "codebook_dim": 4, "heads": 2}).dim == 8
    assert registry.build("quantizer", {"name": "fsq", "levels": [5, 5, 5]}).dim == 3  # its own default alone


def test_every_quantizer_and_decoder_leaves_its_width_to_the_tokenizer():
    widths = {"quantizer": "dim", "decoder": "in_dim"}
    for kind, param in widths.items():
        for name in registry.list(kind):
            params = {p.name: p for p in params_of(registry.get(kind, name))[0]}
            if param in params:
                assert params[param].default is None, f"{kind} '{name}': {param} defaults to {params[param].default!r}"


def test_the_run_records_the_widths_used_and_reloads_identically(tmp_path, monkeypatch, core_only):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save("walks.npy", (0.5 + np.cumsum(rng.normal(scale=0.05, size=(24, 16, 2)), 1)).astype("float32"))
    cfg = {"tokcore": 1, "model": model({"name": "vq", "codebook_size": 16, "kmeans_init": False}),
           "data": {"name": "arrays", "path": "walks.npy", "val_fraction": 0.25},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", "cfg.yaml", "--output", "run"]) == 0
    meta = json.loads(next((tmp_path / "run/checkpoints").glob("step-*/tokenizer.json")).read_text())
    assert meta["model"]["quantizer"]["dim"] == 6 and meta["model"]["decoder"]["in_dim"] == 6
    tok = tokcore.load_tokenizer(tmp_path / "run")
    x = torch.from_numpy(np.load("walks.npy")[:4])
    again = tokcore.load_tokenizer(tmp_path / "run")
    assert torch.equal(tok.encode(x).indices, again.encode(x).indices)
    assert tok.quantizer.dim == 6 and tok.decoder.in_dim == 6
