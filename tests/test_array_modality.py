"""`array`, core's pass-through modality: what a tokenizer gets when its config (or a run saved
before this modality existed, with `"modality": null`) names none."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tokcore
from tokcore import registry
from tokcore.errors import InputError
from tokcore.testing import check_component
from tokcore.tokenizer import build_modality, build_tokenizer

LEGACY = Path(__file__).parent / "fixtures" / "legacy-run"


def test_it_is_registered_by_core_and_passes_the_contract_kit():
    assert "array" in registry.list("modality")
    assert registry.provider("modality", "array").dist == "tokcore"
    check_component("modality", "array")


def test_identity_by_default_any_shape_float_or_integer():
    m = build_modality(None)
    assert m.config() == {"name": "array", "mean": 0.0, "std": 1.0, "value_range": None}
    for x in (torch.randn(3, 5), torch.randn(2, 3, 4, 5, 6), torch.arange(6).reshape(2, 3), np.ones((1, 7), np.uint8)):
        v = m.validate(x, sample="s")
        assert v.dtype == torch.float32 and tuple(v.shape) == tuple(x.shape)
        assert m.normalize(v) is v and m.denormalize(v) is v  # bit for bit, no copy
    with pytest.raises(InputError, match="s: array input has NaN or inf"):
        m.validate(torch.tensor([[0.0, float("inf")]]), sample="s")
    with pytest.raises(InputError, match="s: array input has dtype torch.bool"):
        m.validate(torch.ones(2, 2, dtype=torch.bool), sample="s")
    with pytest.raises(InputError, match="needs a batch axis"):
        m.validate(torch.tensor(1.0), sample="s")


def test_scalar_statistics_and_range():
    m = registry.build("modality", {"name": "array", "mean": 2.0, "std": 4.0, "value_range": [0, 10]})
    x = torch.tensor([[2.0, 6.0, 10.0]])
    assert torch.equal(m.normalize(x), torch.tensor([[0.0, 1.0, 2.0]]))
    assert torch.equal(m.denormalize(torch.tensor([[0.0, 5.0]])), torch.tensor([[2.0, 10.0]]))  # clamped
    with pytest.raises(InputError, match=r"values span \[-1, 2\], outside the expected range \[0, 10\]"):
        m.validate(torch.tensor([[-1.0, 2.0]]), sample="s")
    with pytest.raises(tokcore.ConfigError, match="mean: expected float"):
        registry.build("modality", {"name": "array", "mean": [0.0, 1.0]})
    with pytest.raises(InputError, match="std must be positive"):
        registry.build("modality", {"name": "array", "std": 0.0})


def test_a_tokenizer_always_has_a_modality():
    conv = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
    tok = build_tokenizer({"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **conv},
                           "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                           "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **conv}})
    assert tok.modality.name == "array" and tok.info()["modality"]["name"] == "array"
    with pytest.raises(InputError, match="batch: array input has NaN"):
        tok.encode(torch.full((1, 16, 2), float("nan")))


def test_a_run_saved_with_modality_null_loads_with_array(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "run", run)
    meta = json.loads((run / "checkpoints" / "step-12" / "tokenizer.json").read_text())
    assert meta["modality"] is None
    tok = tokcore.load_tokenizer(run)
    assert tok.modality.config()["name"] == "array"
    walks = torch.from_numpy(np.load(LEGACY / "walks.npy"))
    expected = np.load(LEGACY / "expected.npz")
    tokens = tok.encode(walks)
    assert np.array_equal(tokens.indices.numpy(), expected["tokens"])
    assert np.array_equal(tok.decode(tokens).numpy(), expected["decoded"])


def test_a_tokenizer_without_a_modality_takes_numpy_arrays_and_names_a_nan_sample():
    tok = tokcore.load_tokenizer(LEGACY / "run")  # the README's walks example: no modality in its config
    walks = np.load(LEGACY / "walks.npy")[:4]
    expected = tok.encode(torch.from_numpy(walks)).indices
    for x in (walks, walks.astype(np.float64), {"input": walks}):
        assert torch.equal(tok.encode(x).indices, expected)
    assert isinstance(tok.decode(tok.encode(walks)), torch.Tensor)
    walks = walks.copy()
    walks[2, 3, 0] = np.nan
    with pytest.raises(InputError, match=r"^batch: array input has NaN or inf \(at index \[2, 3, 0\], sample 2 of "
                                         r"the batch\); clean or mask the data$"):
        tok.encode(walks)
