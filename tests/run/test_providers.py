"""A saved run resolves each component through the distribution that provided it (recorded
in tokenizer.json), so a plugin installed later that registers a name core already uses
(a third-party `fsq`, `arrays`, ...) does not break load_tokenizer, tokenize or decode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore import registry
from tokcore.cli import main
from tokcore.errors import RegistryError

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-run"
# every name the run uses, registered again by a third party; its module must never be imported
CLASH = {"tokcore.encoders": {"conv1d": "tok_clash_mod:X"}, "tokcore.quantizers": {"fsq": "tok_clash_mod:X"},
         "tokcore.decoders": {"conv1d": "tok_clash_mod:X"}, "tokcore.modalities": {"array": "tok_clash_mod:X"},
         "tokcore.losses": {"reconstruction": "tok_clash_mod:X"}, "tokcore.trainers": {"vqvae": "tok_clash_mod:X"},
         "tokcore.datasets": {"arrays": "tok_clash_mod:X"}}
NEVER = "raise RuntimeError('the clashing plugin was imported')\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("providers")
    steps = np.random.default_rng(0).normal(scale=0.05, size=(24, 16, 2))
    np.save(root / "walks.npy", (0.5 + np.cumsum(steps, axis=1)).astype(np.float32))
    cfg = {"tokcore": 1, "seed": 3,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                     "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                     "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": str(root / "walks.npy"), "val_fraction": 0.25},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1, "eval_batches": 1}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    torch.set_num_threads(1)
    assert main(["train", "--config", str(root / "cfg.yaml"), "--output", str(root / "run")]) == 0
    return root / "run"


def tokenizer_json(run: Path) -> Path:
    return run / "checkpoints" / "step-2" / "tokenizer.json"


def test_a_new_run_records_the_provider_of_each_component(run):
    meta = json.loads(tokenizer_json(run).read_text())
    assert meta["providers"] == {"model.encoder": "tokcore", "model.quantizer": "tokcore", "model.decoder": "tokcore",
                                 "loss": "tokcore", "trainer": "tokcore", "data": "tokcore", "modality": "tokcore"}
    assert list(meta["plugins"]) == ["tokcore"]


def test_a_plugin_registering_the_same_names_leaves_saved_runs_working(run, tmp_path, fake_dist, capsys):
    walks = torch.from_numpy(np.load(run.parent / "walks.npy"))
    expected = tokcore.load_tokenizer(run).encode(walks).indices
    fake_dist("tok-clash", CLASH, modules={"tok_clash_mod": NEVER})
    with registry.scope(fresh=True):
        with pytest.raises(RegistryError, match="provided by both"):  # a new config must still choose
            registry.get("quantizer", "fsq")
        tok = tokcore.load_tokenizer(run)
        assert torch.equal(tok.encode(walks).indices, expected)
        tokens, decoded = tmp_path / "tokens", tmp_path / "decoded"
        assert main(["tokenize", "--checkpoint", str(run), "--output", str(tokens), "--quiet", "--workers", "0"]) == 0
        assert main(["decode", "--checkpoint", str(run), "--tokens", str(tokens), "--output", str(decoded)]) == 0
        assert main(["tokenize", "--checkpoint", str(run), "--output", str(tmp_path / "t2"), "--quiet",
                     "--workers", "0", "data.split=val"]) == 0
    store = tokcore.TokenStore(tokens)
    assert len(store) == 24 and np.array_equal(store["walks/0"], expected[0].numpy())
    assert len(list(decoded.glob("walks/*.npy"))) == 24
    assert "Traceback" not in capsys.readouterr().err


def test_older_files_fall_back_to_their_plugins_list_then_to_plain_names(run, tmp_path, fake_dist):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    meta = json.loads(tokenizer_json(copy).read_text())
    del meta["providers"]  # as written before `providers`: the `plugins` list decides
    tokenizer_json(copy).write_text(json.dumps(meta))
    legacy = tmp_path / "legacy"
    shutil.copytree(LEGACY, legacy)  # format 1
    fake_dist("tok-clash", CLASH, modules={"tok_clash_mod": NEVER})
    with registry.scope(fresh=True):
        assert tokcore.load_tokenizer(copy).codebook_size == 125
        assert tokcore.load_tokenizer(legacy / "run").codebook_size == 1000
        assert main(["tokenize", "--checkpoint", str(legacy / "run"), "--output", str(tmp_path / "t"), "--quiet",
                     "--workers", "0", f"data.path={legacy / 'walks.npy'}"]) == 0
        del meta["plugins"]  # nothing recorded: the plain names, ambiguous now, are reported
        tokenizer_json(copy).write_text(json.dumps(meta))
        with pytest.raises(RegistryError, match=r"provided by both .*; write 'tokcore:conv1d' or 'tok-clash:conv1d'"):
            tokcore.load_tokenizer(copy)


def test_a_component_named_on_the_command_line_is_not_pinned(run, tmp_path, fake_dist, capsys):
    fake_dist("tok-clash", CLASH, modules={"tok_clash_mod": NEVER})
    with registry.scope(fresh=True):
        folder = tmp_path / "folder"
        folder.mkdir()
        for i, w in enumerate(np.load(run.parent / "walks.npy")[:3]):
            np.save(folder / f"{i}.npy", w)
        assert main(["tokenize", "--checkpoint", str(run), "--output", str(tmp_path / "t"), "--quiet",
                     "--workers", "0", "data.name=npy_folder", f"data.path={folder}"]) == 0
        assert len(tokcore.TokenStore(tmp_path / "t")) == 3
        assert main(["tokenize", "--checkpoint", str(run), "--output", str(tmp_path / "t2"), "--quiet",
                     "--workers", "0", "data.name=arrays"]) == 2  # the user's own name: they must choose
        assert "write 'tokcore:arrays' or 'tok-clash:arrays'" in capsys.readouterr().err
