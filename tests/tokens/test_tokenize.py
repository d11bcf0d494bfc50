"""`tokcore tokenize`, the token store and its exports, `tokcore decode`.

A tiny conv1d + FSQ tokenizer is trained for two steps once per module; every test
tokenizes 16-frame 2D walks with it."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tokcore
from tokcore.cli import main
from tokcore.errors import TokcoreError
from tokcore.tokens.export import parse_lmdb_value, read_export
from tokcore.tokens.tokenize import Options, tokenize
from tokcore.tokens.store import TokenStore

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}
N_FILES = 120
BAD = {"walks/0005": "cannot load", "walks/0006": "cannot load", "walks/0007": "cannot encode",
       "walks/0008": "NaN"}


def walks(n: int, t: int = 16, seed: int = 0) -> np.ndarray:
    steps = np.random.default_rng(seed).normal(scale=0.05, size=(n, t, 2))
    return (0.5 + np.cumsum(steps, axis=1)).astype(np.float32)


def train(root: Path, quantizer: dict, name: str) -> Path:
    cfg = {"tokcore": 1, "seed": 3,
           "model": {"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                     "quantizer": quantizer,
                     "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}},
           "data": {"name": "arrays", "path": str(root / "walks.npy"), "val_fraction": 0.25},
           "train": {"steps": 2, "batch_size": 4, "log_every": 1, "eval_batches": 1}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--output", str(root / name)]) == 0
    return root / name


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenize")
    w = walks(64)
    np.save(root / "walks.npy", w)
    folder = root / "folder" / "walks"  # one file per sample, a few of them broken
    folder.mkdir(parents=True)
    many = walks(N_FILES, seed=1)
    for i in range(N_FILES):
        np.save(folder / f"{i:04d}.npy", many[i])
    (folder / "0005.npy").write_bytes((folder / "0005.npy").read_bytes()[:100])  # truncated
    (folder / "0006.npy").write_bytes(b"not an npy file")                          # corrupt
    np.save(folder / "0007.npy", many[7][:, :1].copy())                            # wrong shape
    nan = many[8].copy()
    nan[3, 1] = np.nan
    np.save(folder / "0008.npy", nan)                                              # NaN
    torch.set_num_threads(1)
    run = train(root, {"name": "fsq", "levels": [5, 5, 5]}, "fsq")
    return {"root": root, "run": run, "walks": w, "folder": root / "folder", "many": many}


def folder_data(setup) -> list[str]:
    return ["data.name=npy_folder", f"data.path={setup['folder']}"]


QUIET = Options(workers=0, batch_size=8, shard_samples=16, progress=False)


def tokcore_cmd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokcore", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def contents(store: TokenStore) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    return {k: (a.dtype.str, a.shape, a.tobytes()) for k, a in store.items()}


def test_store_holds_the_encoder_tokens_of_every_sample(setup, tmp_path):
    out = tmp_path / "store"
    s = tokenize(setup["run"], out, options=QUIET)
    assert (s.samples, s.failed, s.new) == (64, 0, 64)
    store = tokcore.TokenStore(out)
    assert isinstance(store, TokenStore) and len(store) == 64
    assert list(store) == [f"walks/{i}" for i in range(64)]  # dataset order, split "all"
    assert store.kind == "indices" and store.codebook_size == 125 and store.dtype == np.uint8
    assert store.token_shape == (8,)
    tok = tokcore.load_tokenizer(setup["run"])
    expected = tok.encode(torch.from_numpy(setup["walks"])).indices.numpy()
    for i in random.Random(0).sample(range(64), 64):  # random access by key
        key = f"walks/{i}"
        assert np.array_equal(store[key], expected[i])
        assert store.meta(key) == {"source": str(setup["root"] / "walks.npy"), "index": i}
    assert "walks/64" not in store
    with pytest.raises(KeyError):
        store["walks/64"]
    m = store.manifest
    assert m["num_samples"] == 64 and m["failed"] == [] and len(m["shards"]) == 4
    assert m["checkpoint"] == str(Path(setup["run"], "checkpoints", "step-2").resolve())
    assert len(m["weights_sha256"]) == 64 and m["data"]["split"] == "all"
    store.verify()


def test_bad_inputs_are_recorded_and_skipped(setup, tmp_path, capsys):
    out = tmp_path / "store"
    args = ["tokenize", "--checkpoint", str(setup["run"]), "--output", str(out), *folder_data(setup),
            "--batch-size", "8", "--workers", "2", "--quiet"]
    assert main(args) == 2
    cap = capsys.readouterr()
    assert cap.err.strip().count("\n") == 0
    assert "4 of 120 inputs failed and were skipped" in cap.err
    assert f"{N_FILES - 4} samples in {out}, 4 failed" in cap.out
    store = TokenStore(out)
    assert len(store) == N_FILES - 4
    failed = {f["key"]: f["error"] for f in store.failed}
    assert failed.keys() == BAD.keys()
    for key, why in BAD.items():
        assert why in failed[key] and key not in store
    assert store.meta("walks/0009") == {"source": str(setup["folder"] / "walks" / "0009.npy")}
    # run again: a finished store is not redone; --max-failed accepts the failures
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    assert main(args + ["--max-failed", "4"]) == 0
    assert "already complete (116 samples, 4 failed)" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before
    # the same output with another dataset is refused
    assert main(["tokenize", "--checkpoint", str(setup["run"]), "--output", str(out), "--quiet"]) == 2
    assert "another dataset config" in capsys.readouterr().err


def test_each_failure_line_names_its_input_once(setup, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["tokenize", "--checkpoint", str(setup["run"]), "--output", str(out), *folder_data(setup),
                 "--batch-size", "8", "--quiet", "--max-failed", "4"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  failed ")]
    assert len(lines) == len(BAD)
    for key, line in zip(sorted(BAD), lines):
        assert line.startswith(f"  failed {key}: ") and not line.startswith(f"  failed {key}: {key}"), line


def test_usage_errors_exit_2(setup, tmp_path, capsys):
    base = ["tokenize", "--checkpoint", str(setup["run"]), "--output", str(tmp_path / "s")]
    assert main(base + ["model.quantizer.levels=[3]"]) == 2
    assert "dataset overrides only" in capsys.readouterr().err
    assert main(base + ["--format", "hdf5"]) == 2
    assert "unknown format 'hdf5'" in capsys.readouterr().err
    assert main(base + ["data.path=/nonexistent.npy"]) == 2
    assert "data.path: no such file" in capsys.readouterr().err
    with pytest.raises(TokcoreError, match="run the same command again to resume"):
        (tmp_path / "half").mkdir()
        (tmp_path / "half" / "job.json").write_text("{}")
        TokenStore(tmp_path / "half")


def test_killed_at_random_moments_and_resumed_equals_an_uninterrupted_run(setup, tmp_path):
    """SIGKILL at random points (before the first shard, mid-run, while resuming), then a
    resumed run: every key exactly once, token arrays identical byte for byte."""
    reference = tmp_path / "reference"
    tokenize(setup["run"], reference, folder_data(setup), options=QUIET)
    want = contents(TokenStore(reference))
    want_failed = TokenStore(reference).failed
    cmd = [sys.executable, "-m", "tokcore", "tokenize", "--checkpoint", str(setup["run"]), *folder_data(setup),
           "--batch-size", "2", "--shard-samples", "2", "--workers", "1", "--quiet", "--max-failed", "4"]
    rng = random.Random(1234)
    for trial in range(3):
        out = tmp_path / f"cut{trial}"
        kills = 2 if trial == 2 else 1  # the last trial is killed again while resuming
        for _ in range(kills):
            proc = subprocess.Popen(cmd + ["--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            shards = out / "shards"
            have = len(list(shards.glob("*.json"))) if shards.is_dir() else 0
            target = have + rng.randrange(0, 30)  # kill once this many more shards exist
            deadline = time.time() + 120
            while proc.poll() is None and time.time() < deadline:
                if shards.is_dir() and len(list(shards.glob("*.json"))) >= target:
                    break
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert not (out / "manifest.json").exists(), "the run finished before it was killed"
        resumed = tokcore_cmd(*cmd[3:], "--output", str(out))
        assert resumed.returncode == 0, resumed.stderr
        store = TokenStore(out, verify=True)
        got = contents(store)
        assert list(got) == list(want)
        for k in want:
            assert got[k] == want[k], k
        assert store.failed == want_failed


def test_two_processes_resume_one_and_equal_it(setup, tmp_path):
    """A store begun by one process (cut short, then a shard damaged on disk) and finished by
    `--nproc 2` equals a one-process store: the damaged shard fails its checksum and is redone."""
    reference = tmp_path / "reference"
    tokenize(setup["run"], reference, options=QUIET)
    out = tmp_path / "two"
    from tokcore.tokens.tokenize import make_job, run_rank

    class Stop(BaseException):  # not an Exception: the data guard lets it through, like a crash
        pass

    class Partial(torch.utils.data.Dataset):  # the real data, but it breaks off after 20 samples
        def __init__(self):
            from tokcore.builtins.datasets import ArrayDataset

            self.ds = ArrayDataset(str(setup["root"] / "walks.npy"), split="all")

        def __len__(self):
            return len(self.ds)

        def key(self, i):
            return self.ds.key(i)

        def __getitem__(self, i):
            if i >= 20:
                raise Stop
            return self.ds[i]

    with pytest.raises(Stop):  # the run of the checkpoint's dataset, crashing at sample 20
        run_rank(make_job(setup["run"]), out, Options(workers=0, batch_size=4, shard_samples=4, progress=False),
                 Partial())
    assert not (out / "manifest.json").exists() and len(list((out / "shards").glob("*.json"))) == 5
    damaged = bytearray((out / "shards" / "rank0-00001.bin").read_bytes())  # a flipped bit on disk
    damaged[3] ^= 1
    (out / "shards" / "rank0-00001.bin").write_bytes(bytes(damaged))
    r = tokcore_cmd("tokenize", "--checkpoint", str(setup["run"]), "--output", str(out), "--nproc", "2",
                    "--batch-size", "4", "--shard-samples", "4", "--workers", "0", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "discarding damaged shard rank0-00001" in r.stderr
    assert "tokenized 48 inputs" in r.stdout and "16 from an earlier run" in r.stdout
    store = TokenStore(out, verify=True)
    assert contents(store) == contents(TokenStore(reference))
    names = {s["name"].split("-")[0] for s in store.manifest["shards"]}
    assert names == {"rank0", "rank1"}


def test_every_export_reads_back_equal_to_the_store(setup, tmp_path):
    out = tmp_path / "store"
    s = tokenize(setup["run"], out, folder_data(setup), formats=["npy", "lmdb", "wds"], options=QUIET)
    assert set(s.exports) == {"npy", "lmdb", "wds"}
    store = TokenStore(out)
    want = [(k, a, store.meta(k)) for k, a, _ in store.samples()]
    for fmt in ("npy", "lmdb", "wds"):
        got = list(read_export(fmt, out / fmt))
        assert [k for k, _, _ in got] == [k for k, _, _ in want], fmt
        for (k, a, m), (_, b, n) in zip(want, got):
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (fmt, k)
            assert m == n, (fmt, k)
        assert json.loads((out / fmt / "manifest.json").read_text())["num_failed"] == 4
    assert (out / "npy" / "walks" / "0009.npy").is_file()  # 4M's layout: one file per sample

    import lmdb
    import webdataset as wds

    env = lmdb.open(str(out / "lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.stat()["entries"] == len(store)
        tokens, meta = parse_lmdb_value(txn.get(b"walks/0042"))
    env.close()
    assert np.array_equal(tokens, store["walks/0042"]) and meta == store.meta("walks/0042")
    urls = [str(p) for p in sorted((out / "wds").glob("shard-*.tar"))]
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        info = json.loads(sample["json"])
        assert np.array_equal(np.load(io.BytesIO(sample["tokens.npy"]), allow_pickle=False), store[info["key"]])
        seen += 1
    assert seen == len(store)
    # a finished export is not redone
    mtime = (out / "npy" / "samples.jsonl").stat().st_mtime_ns
    tokenize(setup["run"], out, folder_data(setup), formats=["npy"], options=QUIET)
    assert (out / "npy" / "samples.jsonl").stat().st_mtime_ns == mtime


def test_decode_writes_the_modality_back_as_files(setup, tmp_path, capsys):
    store_dir = tmp_path / "store"
    tokenize(setup["run"], store_dir, options=QUIET)
    out = tmp_path / "decoded"
    assert main(["decode", "--checkpoint", str(setup["run"]), "--tokens", str(store_dir), "--output", str(out)]) == 0
    assert "decoded 64 samples" in capsys.readouterr().out
    tok = tokcore.load_tokenizer(setup["run"])
    store = TokenStore(store_dir)
    for key in ("walks/0", "walks/63"):
        got = np.load(out / f"{key}.npy", allow_pickle=False)
        want = tok.decode(torch.from_numpy(store[key].astype(np.int64))[None])[0].numpy()
        assert got.shape == (16, 2) and np.allclose(got, want, atol=1e-6)
    rows = [json.loads(x) for x in (out / "decoded.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == list(store) and rows[0]["files"] == ["walks/0.npy"]


def test_latents_variable_lengths_clips_and_views(setup, tmp_path):
    """A continuous tokenizer stored as float16; inputs of different lengths (long recordings
    cut into clips through a memory map); augmentation views kept as their own samples."""
    run = train(setup["root"], {"name": "identity", "dim": 3}, "identity")
    rec = tmp_path / "recordings"
    rec.mkdir()
    long = walks(1, t=56, seed=5)[0]
    np.save(rec / "long.npy", long)
    np.save(rec / "short.npy", walks(1, t=8, seed=6)[0])
    out = tmp_path / "store"
    opts = Options(workers=0, batch_size=8, latent_dtype="float16", progress=False)
    tokenize(run, out, ["data.name=npy_folder", f"data.path={rec}", "data.clip_length=24", "data.clip_stride=16"],
             options=opts)
    store = TokenStore(out)
    assert list(store) == ["long/0-24", "long/16-40", "long/32-56", "short/0-8"]
    assert store.kind == "latents" and store.dtype == np.float16 and store.token_shape is None
    assert store.shape("long/16-40") == (12, 3) and store.shape("short/0-8") == (4, 3)
    assert store.meta("long/16-40") == {"source": str(rec / "long.npy"), "frames": [16, 40]}
    tok = tokcore.load_tokenizer(run)
    want = tok.encode(torch.from_numpy(long[16:40])[None]).latents[0].numpy()
    assert np.allclose(store["long/16-40"].astype(np.float32), want, atol=2e-3)

    class Flips(torch.utils.data.Dataset):
        def __init__(self):
            self.x = setup["walks"][:3]

        def __len__(self):
            return 6

        def key(self, i):
            return f"walks/{i // 2}" + ("@flip" if i % 2 else "")

        def __getitem__(self, i):
            x = self.x[i // 2][::-1].copy() if i % 2 else self.x[i // 2]
            return {"key": self.key(i), "input": torch.from_numpy(x),
                    "meta": {"source": "walks.npy", "index": i // 2, "view": {"flip": bool(i % 2)}}}

    views = tmp_path / "views"
    tokenize(setup["run"], views, options=QUIET, dataset=Flips())
    store = TokenStore(views)
    assert list(store) == ["walks/0", "walks/0@flip", "walks/1", "walks/1@flip", "walks/2", "walks/2@flip"]
    assert store.meta("walks/1@flip")["view"] == {"flip": True}
    assert not np.array_equal(store["walks/1"], store["walks/1@flip"])
