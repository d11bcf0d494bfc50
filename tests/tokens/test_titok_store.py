"""Variable token counts through `tokcore tokenize --num-tokens` -> token store -> `tokcore decode`,
with a tiny TiTok trained for two steps on random 16x16 images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore.cli import main
from tokcore.tokens.job import Job
from tokcore.tokens.store import TokenStore

ARCH = {"image_size": 16, "patch_size": 4, "width": 32, "depth": 1, "num_heads": 2, "max_tokens": 8}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("titok-store")
    images = np.random.default_rng(0).uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32)
    np.save(root / "images.npy", images)
    cfg = {"tokcore": 1, "seed": 0,
           "model": {"encoder": {"name": "titok", "in_channels": 3, "out_dim": 5, "min_tokens": 2, **ARCH},
                     "quantizer": {"name": "fsq", "levels": [7, 7, 7, 5, 5]},
                     "decoder": {"name": "titok", "out_channels": 3, **ARCH}},
           "data": {"name": "arrays", "path": str(root / "images.npy"), "val_fraction": 0.25},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1, "eval_batches": 1}}
    (root / "titok.yaml").write_text(yaml.safe_dump(cfg))
    torch.set_num_threads(1)
    assert main(["train", "--config", str(root / "titok.yaml"), "--output", str(root / "run")]) == 0
    return {"root": root, "run": root / "run", "images": images}


def tokenize(run, out, *extra):
    return main(["tokenize", "--checkpoint", str(run), "--output", str(out), "--workers", "0", "--quiet",
                 "--batch-size", "5", *extra])


def test_each_sample_keeps_its_drawn_count_and_the_encoder_tokens(run, tmp_path):
    assert tokenize(run["run"], tmp_path / "store", "--num-tokens", "2:7") == 0
    store = TokenStore(tmp_path / "store")
    job = Job(**{k: v for k, v in json.loads((tmp_path / "store" / "job.json").read_text()).items() if k != "format"})
    counts = [store.shape(k)[0] for k in store]
    assert counts == [job.count(store.index(k)) for k in store] and len(set(counts)) > 2
    assert store.num_tokens["requested"] == [2, 7] and store.token_shape is None
    assert store.num_tokens["min"] == min(counts) and store.num_tokens["max"] == max(counts)
    assert store.num_tokens["tokenizer"] == {"min": 1, "max": 8, "train_min": 2, "default": 8}
    tok = tokcore.load_tokenizer(run["run"])
    for key in list(store)[:6]:
        i = store.index(key)
        want = tok.encode(torch.from_numpy(run["images"][i:i + 1]), num_tokens=counts[i]).indices[0].numpy()
        assert np.array_equal(store[key].astype(np.int64), want)


def test_decode_from_the_store_equals_decoding_the_tokens(run, tmp_path):
    assert tokenize(run["run"], tmp_path / "store", "--num-tokens", "3:8") == 0
    assert main(["decode", "--checkpoint", str(run["run"]), "--tokens", str(tmp_path / "store"),
                 "--output", str(tmp_path / "out")]) == 0
    store, tok = TokenStore(tmp_path / "store"), tokcore.load_tokenizer(run["run"])
    for key in list(store)[:5]:
        got = np.load(tmp_path / "out" / f"{key}.npy", allow_pickle=False)
        want = tok.decode(torch.from_numpy(store[key].astype(np.int64))[None])[0].numpy()
        assert got.shape == (3, 16, 16) and np.allclose(got, want, atol=1e-5)


def test_a_fixed_count_and_bad_counts(run, tmp_path, capsys):
    assert tokenize(run["run"], tmp_path / "k4", "--num-tokens", "4") == 0
    store = TokenStore(tmp_path / "k4")
    assert store.token_shape == (4,) and store.num_tokens["requested"] == [4, 4]
    assert tokenize(run["run"], tmp_path / "k4", "--num-tokens", "5") == 2  # resuming with another count
    assert "another --num-tokens" in capsys.readouterr().err
    assert tokenize(run["run"], tmp_path / "big", "--num-tokens", "2:9") == 2
    assert "outside this tokenizer's range 1:8" in capsys.readouterr().err
    assert tokenize(run["run"], tmp_path / "bad", "--num-tokens", "5:3") == 2
    assert "'5:3' is not a token count K or a range LO:HI" in capsys.readouterr().err
    assert tokenize(run["run"], tmp_path / "all") == 0
    assert TokenStore(tmp_path / "all").token_shape == (8,)  # default: the most


def test_samples_of_another_size_decode_to_their_size_from_the_store(run, tmp_path):
    """The store records each sample's size; `tokcore decode` and `tokcore eval` give it back
    (the model was trained at 16x16 and reads 24x24 without interpolating anything)."""
    images = np.random.default_rng(1).uniform(-1, 1, (6, 3, 24, 24)).astype(np.float32)
    np.save(tmp_path / "big.npy", images)
    data = [f"data.path={tmp_path / 'big.npy'}", "data.split=all"]
    assert tokenize(run["run"], tmp_path / "store", "--num-tokens", "8", *data) == 0
    store = TokenStore(tmp_path / "store")
    assert all(store.meta(k)["sample_size"] == [24, 24] for k in store)
    assert main(["decode", "--checkpoint", str(run["run"]), "--tokens", str(tmp_path / "store"),
                 "--output", str(tmp_path / "decoded")]) == 0
    tok = tokcore.load_tokenizer(run["run"])
    for key in list(store)[:3]:
        got = np.load(tmp_path / "decoded" / f"{key}.npy")
        i = store.index(key)
        want = tok.decode(tok.encode(torch.from_numpy(images[i:i + 1]), num_tokens=8), size=(24, 24))[0].numpy()
        assert got.shape == (3, 24, 24) and np.allclose(got, want, atol=1e-5)
