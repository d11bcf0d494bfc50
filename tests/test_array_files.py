"""User array files (.npy/.npz): what is not a NumPy array file is named and called so, never
met with numpy's "contains pickled data ... load it unsafely" (tokcore never unpickles); a
tokenize or training run records such a file, or a NaN one, and goes on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import tokcore
from tokcore.api import load_array
from tokcore.cli import main
from tokcore.errors import ConfigError, InputError

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
UNSAFE = ("allow_pickle", "unsafe", "pickle.load", "If you trust")


def walks(n: int, seed: int = 0) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(scale=0.05, size=(n, 16, 2))
    return (0.5 + np.cumsum(steps, axis=1)).astype(np.float32)


def not_arrays(folder: Path) -> dict[str, str]:
    """Files named .npy/.npz that hold no numeric NumPy array -> what the message must say."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "random.npy").write_bytes(np.random.default_rng(0).bytes(300))
    (folder / "notes.npy").write_text("gaze recorded on 2024-05-01\n")
    (folder / "table.npy").write_text("x,y\n0.1,0.2\n0.3,0.4\n")
    (folder / "empty.npy").write_bytes(b"")
    np.save(folder / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(folder / "objects.npz", data=np.array([{"a": 1}], dtype=object))
    (folder / "cut.npy").write_bytes((lambda p: (np.save(p, walks(4)), p.read_bytes()[:200])[1])(folder / "cut.npy"))
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (folder / "dir.npy").mkdir()
    return {"random.npy": "is not a NumPy array file: it does not begin with the .npy or .npz signature",
            "notes.npy": "is not a NumPy array file: it holds text (it begins 'gaze recorded",
            "table.npy": "is not a NumPy array file: it holds text (it begins 'x,y')",
            "empty.npy": "is not a NumPy array file: it is empty",
            "objects.npy": "holds an array of Python objects (dtype object), which tokcore does not read",
            "objects.npz": "holds an array of Python objects (dtype object), which tokcore does not read",
            "cut.npy": "is a damaged or truncated NumPy array file",
            "broken.npz": "is a damaged or truncated NumPy array file",
            "dir.npy": "is a folder, not a NumPy array file"}


def test_a_file_that_is_not_an_array_is_named_and_no_unsafe_load_is_suggested(tmp_path):
    for name, what in not_arrays(tmp_path).items():
        for mmap in (None, "r"):
            with pytest.raises(InputError) as err:
                load_array(tmp_path / name, mmap_mode=mmap)
            message = str(err.value)
            assert message.startswith(str(tmp_path / name)) and what in message, message
            assert not any(u in message for u in UNSAFE), message
    with pytest.raises(InputError, match=r"^in memory/x.npy is not a NumPy array file: it holds text"):
        load_array(b"1,2,3\n", name="in memory/x.npy")


def test_numpy_files_are_read_by_their_signature(tmp_path):
    w = walks(5)
    np.save(tmp_path / "w.npy", w)
    np.savez(tmp_path / "w.npz", first=w[:2], second=w[2:])
    (tmp_path / "really-npz.npy").write_bytes((tmp_path / "w.npz").read_bytes())
    mapped = load_array(tmp_path / "w.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, w)
    assert np.array_equal(load_array(tmp_path / "w.npz"), w[:2])
    assert np.array_equal(load_array(tmp_path / "w.npz", array="second"), w[2:])
    assert np.array_equal(load_array(tmp_path / "really-npz.npy", array="second"), w[2:])
    assert np.array_equal(load_array((tmp_path / "w.npy").read_bytes()), w)
    with pytest.raises(ConfigError, match=r"w.npz has no array 'third'; it has first, second") as err:
        load_array(tmp_path / "w.npz", array="third")
    assert err.value.key == "array"


def config(tmp_path: Path, data: dict) -> Path:
    cfg = {"tokcore": 1, "seed": 3,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                     "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                     "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}},
           "data": data,
           "train": {"steps": 4, "batch_size": 4, "log_every": 1, "eval_batches": 1}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_arrays_dataset_names_a_file_that_is_not_an_array(tmp_path, capsys):
    for name, what in not_arrays(tmp_path / "bad").items():
        if name == "dir.npy":
            continue  # below
        cfg = config(tmp_path, {"name": "arrays", "path": str(tmp_path / "bad" / name)})
        assert main(["train", "--config", str(cfg), "--dry-run"]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"data.path: {tmp_path / 'bad' / name}" in err, err
        assert what in err, err
        assert not any(u in err for u in UNSAFE), err
    for folder in (tmp_path / "bad", tmp_path / "bad" / "dir.npy"):
        cfg = config(tmp_path, {"name": "arrays", "path": str(folder)})
        assert main(["train", "--config", str(cfg), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"data.path: '{folder}' is a folder; 'arrays' reads one .npy or .npz file" in err, err
        assert "use name: npy_folder" in err and err.count("\n") == 1


def test_training_and_tokenize_record_and_skip_a_non_array_file_and_a_nan_file(tmp_path, capsys):
    folder = tmp_path / "walks"
    folder.mkdir()
    for i, w in enumerate(walks(24)):
        np.save(folder / f"{i:02d}.npy", w)
    (folder / "03.npy").write_text("x,y\n0.1,0.2\n")                     # a CSV named .npy
    nan = walks(1, seed=5)[0]
    nan[4, 1] = np.nan
    np.save(folder / "05.npy", nan)                                       # one NaN file
    cfg = config(tmp_path, {"name": "npy_folder", "path": str(folder), "val_fraction": 0.25})  # 03, 05: train
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--output", str(run), "train.steps=6"]) == 0  # > one epoch
    failed = {}
    for line in (run / "failed_samples.rank0.jsonl").read_text().splitlines():
        row = json.loads(line)
        failed[row["key"]] = row["error"]
    assert set(failed) == {"03", "05"}
    assert f"03: cannot load: {folder / '03.npy'} is not a NumPy array file: it holds text" in failed["03"]
    assert "05: array input has NaN or inf (at index [4, 1]); clean or mask the data" == failed["05"]
    capsys.readouterr()

    tokens = tmp_path / "tokens"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(tokens), "--quiet", "--workers", "0",
                 "--max-failed", "2"]) == 0
    out = capsys.readouterr().out
    assert f"failed 03: cannot load: {folder / '03.npy'} is not a NumPy array file" in out  # the key once
    assert not any(u in out for u in UNSAFE)
    store = tokcore.TokenStore(tokens)
    assert len(store) == 22 and {f["key"] for f in store.failed} == {"03", "05"}
