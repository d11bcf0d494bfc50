"""The run spec: a resolved config as typed objects, defaults set in one place, and errors
raised while building a component located like config-time errors (file: key: what, fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokcore import ConfigError
from tokcore.cli import main
from tokcore.config.spec import RUN_DEFAULTS, RunSpec, TrainSettings

CONFIG = """\
tokcore: 1
model:
  encoder: {name: conv1d, in_channels: 2, out_dim: 4, base_channels: 8, channel_mult: [1]}
  quantizer: {name: fsq, levels: [8, 5, 5, 5]}
  decoder: {name: conv1d, in_dim: 4, out_channels: 2, base_channels: 8, channel_mult: [1]}
data: {name: arrays, path: walks.npy}
train: {steps: 3}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_the_spec_is_typed_and_defaults_come_from_one_table(tmp_path, core_only):
    spec = RunSpec.load(_write(tmp_path, CONFIG), ["train.lr=0.01", "seed=4"])
    assert spec.seed == 4
    assert isinstance(spec.train, TrainSettings) and spec.train.steps == 3 and spec.train.lr == 0.01
    assert spec.train.batch_size == TrainSettings().batch_size
    assert spec.trainer.config() == {**RUN_DEFAULTS["trainer"], "quantizer_weight": 1.0}
    assert spec.loss.name == RUN_DEFAULTS["loss"]["name"] and spec.loss.key == "loss"
    assert spec.model.quantizer.config() == {"name": "fsq", "levels": [8, 5, 5, 5], "dim": None}
    assert spec.model.encoder.key == "model.encoder" and spec.model.encoder.file == str(tmp_path / "run.yaml")
    assert spec.where("train.lr") == "command line" and spec.where("model.decoder.in_dim") == str(tmp_path / "run.yaml")
    assert spec.config["trainer"]["name"] == "vqvae"  # what config.yaml records


def test_a_build_time_error_names_the_file_and_the_key(tmp_path, core_only, capsys, monkeypatch):
    import numpy as np

    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "walks.npy", np.zeros((8, 16, 2), np.float32))
    path = _write(tmp_path, CONFIG.replace("in_dim: 4", "in_dim: 6"))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == (f"tokcore: error: {path}: model.decoder.in_dim: 6 differs from model.quantizer's dim 4; "
                   "make them equal (or leave it out: it defaults to the quantizer's dim)\n")


def test_a_missing_section_is_named_with_the_file(tmp_path, core_only):
    spec = RunSpec.load(_write(tmp_path, "tokcore: 1\n"))
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'run.yaml'}: missing 'model', which training needs$"):
        spec.require("model", "data")
