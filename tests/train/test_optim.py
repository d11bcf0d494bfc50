"""Weight decay is decided by parameter dimension (as nanoGPT does) and by what components
declare in `no_weight_decay`, never by parameter names."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

import tokcore
from tokcore.config.spec import TrainSettings
from tokcore.nn.embeddings import PosEmbed2d
from tokcore.train.optim import adamw, no_weight_decay

S = TrainSettings(weight_decay=0.05)


class Codebook(nn.Module):
    no_weight_decay: ClassVar[tuple[str, ...]] = ("codes",)

    def __init__(self):
        super().__init__()
        self.codes = nn.Parameter(torch.randn(16, 8))


class PluginModel(nn.Module):
    """What a plugin might write: names that a substring rule would have misread."""

    def __init__(self):
        super().__init__()
        self.embed_proj = nn.Linear(4, 8)
        self.pos_mlp = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.quantizer = Codebook()


def decayed(model: nn.Module, *more: nn.Module) -> dict[str, bool]:
    named = [(n, p) for m in (model, *more) for n, p in m.named_parameters()]
    opt = adamw([p for _, p in named], S, no_weight_decay(model, *more))
    by_id = {id(p): g["weight_decay"] > 0 for g in opt.param_groups for p in g["params"]}
    assert len(by_id) == len(named)  # every parameter is optimized, once
    return {n: by_id[id(p)] for n, p in named}


def test_matrices_decay_whatever_their_name_vectors_and_declared_codebooks_do_not():
    d = decayed(PluginModel())
    assert d == {"embed_proj.weight": True, "embed_proj.bias": False, "pos_mlp.weight": True, "pos_mlp.bias": False,
                 "norm.weight": False, "norm.bias": False, "quantizer.codes": False}


def test_groups_carry_the_settings():
    opt = adamw(PluginModel().parameters(), S, set())
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["lr"] == S.lr


def test_builtin_codebooks_and_position_tables_declare_themselves():
    model = tokcore.build_tokenizer({
        "encoder": {"name": "transformer1d", "in_channels": 2, "out_dim": 4, "width": 16, "depth": 1, "num_heads": 2,
                    "max_len": 8},
        "quantizer": {"name": "vq", "dim": 4, "codebook_size": 8, "codebook_dim": 3, "codebook_learning": "loss"},
        "decoder": {"name": "transformer1d", "in_dim": 4, "out_channels": 2, "width": 16, "depth": 1, "num_heads": 2,
                    "max_len": 8}})
    d = decayed(model)
    not_decayed_matrices = {n for n, p in model.named_parameters() if p.dim() >= 2 and not d[n]}
    assert not_decayed_matrices == {"quantizer.embed", "encoder.pos_embed.weight", "decoder.pos_embed.weight"}
    assert d["decoder.embed.weight"]  # a Linear named "embed" is a weight matrix like any other
    assert not any(d[n] for n, p in model.named_parameters() if p.dim() < 2)


def test_declared_names_that_are_not_parameters_here_are_skipped():
    ema = tokcore.registry.build("quantizer", {"name": "vq", "dim": 4, "codebook_size": 8})  # codebook is a buffer
    fixed = PosEmbed2d((2, 2), 4, learned=False)  # no table at all
    assert no_weight_decay(ema, fixed) == set()


def test_trainer_parameters_follow_the_same_rule():
    critic = nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4))
    d = decayed(PluginModel(), critic)
    assert d["0.weight"] and not d["0.bias"] and not d["1.weight"]
