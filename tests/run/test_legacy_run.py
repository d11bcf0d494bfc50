"""A run directory written before the run package owned the format (tests/fixtures/legacy-run,
made by commit a5cf732: tokenizer.json format 1, no modality) still loads, tokenizes and
decodes exactly as it did then."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import tokcore
from tokcore.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-run"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A writable copy (tokenize and decode write next to it)."""
    shutil.copytree(FIXTURE, tmp_path / "legacy")
    return tmp_path / "legacy"


def test_loads_and_gives_the_same_tokens_and_decodings(legacy: Path) -> None:
    expected = np.load(legacy / "expected.npz")
    walks = torch.from_numpy(np.load(legacy / "walks.npy"))
    tok = tokcore.load_tokenizer(legacy / "run")
    tokens = tok.encode(walks)
    assert np.array_equal(tokens.indices.numpy(), expected["tokens"])  # EMA weights, as then
    assert np.array_equal(tok.decode(tokens).numpy(), expected["decoded"])
    raw = tokcore.load_tokenizer(legacy / "run", ema=False)
    assert np.array_equal(raw.encode(walks).indices.numpy(), expected["tokens_raw_weights"])
    assert tok.info()["modality"]["name"] == "array"  # format 1's null modality reads as plain arrays


def test_tokenize_and_decode_commands_reproduce_it(legacy: Path) -> None:
    expected = np.load(legacy / "expected.npz")
    store_dir, out = legacy / "store", legacy / "decoded"
    assert main(["tokenize", "--checkpoint", str(legacy / "run"), "--output", str(store_dir), "--quiet",
                 "--workers", "0", f"data.path={legacy / 'walks.npy'}"]) == 0
    store = tokcore.TokenStore(store_dir)
    assert len(store) == 40
    assert np.array_equal(np.stack([store[f"walks/{i}"] for i in range(40)]), expected["tokens"])
    assert main(["decode", "--checkpoint", str(legacy / "run"), "--tokens", str(store_dir), "--output", str(out)]) == 0
    decoded = np.stack([np.load(out / "walks" / f"{i}.npy") for i in range(40)])
    assert np.array_equal(decoded, expected["decoded"])


def test_a_renamed_component_keeps_saved_runs_loading(legacy: Path) -> None:
    """tokenizer.json records registry names; an alias (as after a rename) resolves the old
    one, with a warning that says what to write instead."""
    import json

    meta_file = legacy / "run" / "checkpoints" / "step-12" / "tokenizer.json"
    meta = json.loads(meta_file.read_text())
    meta["model"]["quantizer"]["name"] = "finite_scalar"  # as if fsq had been called that when saved
    meta_file.write_text(json.dumps(meta))
    with tokcore.registry.scope() as reg:
        with pytest.raises(tokcore.RegistryError, match="unknown quantizer 'finite_scalar'"):
            tokcore.load_tokenizer(legacy / "run")
        reg.alias("quantizer", "finite_scalar", "fsq")
        with pytest.warns(FutureWarning, match="quantizer 'finite_scalar' was renamed 'fsq'; write 'fsq'"):
            tok = tokcore.load_tokenizer(legacy / "run")
    walks = torch.from_numpy(np.load(legacy / "walks.npy"))
    assert np.array_equal(tok.encode(walks).indices.numpy(), np.load(legacy / "expected.npz")["tokens"])


def test_a_newer_format_is_refused_with_the_fix(legacy: Path) -> None:
    import json

    meta_file = legacy / "run" / "checkpoints" / "step-12" / "tokenizer.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "format": 99}))
    with pytest.raises(tokcore.TokcoreError, match="format 99 is newer than this tokcore reads .*pip install -U tokcore"):
        tokcore.load_tokenizer(legacy / "run")
