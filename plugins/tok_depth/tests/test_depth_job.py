"""The main job in miniature: train the quick config a few steps on the real disparity, then
`tokcore eval` on the held-out crops beside the grid codec, with the pictures."""

import json

import numpy as np
import pytest
import torch

from tokcore.cli import main

SMALL = ["data.train_crops=16", "train.steps=2", "train.batch_size=8", "train.log_every=1"]


@pytest.mark.parametrize("name, grid, bits", [("tok-depth:quick", 8, 512), ("tok-depth:4m-depth", 14, 2548)])
def test_configs_resolve(name, grid, bits, capsys, tmp_path):
    data = [] if name == "tok-depth:quick" else [f"data.path={tmp_path}", "train.batch_size=1", "train.num_workers=0",
                                                 "data.val_fraction=0.5"]  # one file held out: keep_best needs one
    for i in range(2):
        np.save(tmp_path / f"d{i}.npy", np.full((256, 256), 2.0, dtype=np.float32))
    assert main(["config", "--config", name, *data]) == 0
    assert main(["train", "--config", name, *data, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"grid ({grid}, {grid}) = {grid * grid} per sample" in out and f"bits      {bits} per sample" in out


def test_train_then_eval_on_the_real_disparity(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "tok-depth:quick", "--output", str(run), *SMALL]) == 0
    assert (run / "samples" / "step-2.png").is_file()
    assert main(["eval", "--checkpoint", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "abs_rel" in out and "delta1" in out and "grid (" in out and "codebook usage" in out
    cols = json.loads((run / "eval-val" / "metrics.json").read_text())["columns"]
    # robust normalization: 2 float32 statistics beside the tokens count in the rate, which the baseline gets too
    assert cols["tokenizer"]["bits_per_sample"] == 512 + 64 and cols["grid"]["bits_per_sample"] <= 576
    assert set(cols["tokenizer"]["metrics"]) == set(cols["grid"]["metrics"]) >= {"abs_rel", "rmse", "log_rmse", "delta1"}
    assert 0 <= cols["tokenizer"]["metrics"]["abs_rel"] < 10
    assert (run / "eval-val" / "samples-tokenizer.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "eval-val" / "samples-grid.png").is_file()


def test_per_image_statistics_survive_the_token_store(tmp_path):
    """Robust normalization (tok-depth:quick's): the store keeps each crop's shift and scale in its metadata, and
    `tokcore decode` gives exactly what the tokenizer's own decode(encode(x)) gives."""
    from tokcore.run.load import load_tokenizer
    from tokcore.tokens.roundtrip import roundtrip
    from tokcore.tokens.store import TokenStore

    run = tmp_path / "run"
    assert main(["train", "--config", "tok-depth:quick", "--output", str(run), *SMALL]) == 0
    r = roundtrip(run, "val")
    store = TokenStore(run / "roundtrip-val" / "tokens")
    side = store.meta(r.keys[0])["normalization"]
    assert set(side) == {"shift", "scale"} and 2.0 < side["shift"] < 5.1
    tok = load_tokenizer(run)
    direct = tok.decode(tok.encode(r.inputs))
    assert torch.allclose(torch.from_numpy(r.decoded), direct, rtol=1e-5, atol=1e-5)
    # without the statistics the depths cannot be recovered: decode says so
    from tokcore.errors import InputError

    with pytest.raises(InputError, match="shift and scale"):
        tok.decode(torch.from_numpy(r.tokens.astype(np.int64)))
