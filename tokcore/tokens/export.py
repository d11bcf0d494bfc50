"""Exports of a token store to the layouts other projects read, and readers for each.

    npy   <dest>/<key>.npy, one file per sample (4M's layout: folders from the key's '/'),
          plus samples.jsonl (key, file, shape, metadata per line, in dataset order)
    lmdb  an LMDB environment: key = the sample key (UTF-8), value = an .npz with arrays
          `tokens` and `meta` (the metadata as a JSON string) - VIMPAC's layout, read with
          `np.load(io.BytesIO(value), allow_pickle=False)`
    wds   WebDataset tar shards `shard-000000.tar`, ...: per sample `<k>.tokens.npy` and
          `<k>.json` (`{"key", "shape", "meta"}`), where `<k>` is the key with '.' escaped
          (WebDataset splits a sample's files at the first dot)

Every export also holds the store's manifest.json. An export directory is assembled under
a temporary name and renamed when complete, so an existing one is never half-written and
is not redone.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from tokcore.errors import TokcoreError
from tokcore.runtime.io import atomic_directory
from tokcore.tokens.store import TokenStore, key_path

FORMATS = ("npy", "lmdb", "wds")

Sample = tuple[str, np.ndarray, dict[str, Any]]


def export(store: TokenStore, fmt: str, dest: str | Path, **options: Any) -> bool:
    """Write `store` as `fmt` into `dest`; False when `dest` already holds a complete export."""
    if fmt not in FORMATS:
        raise TokcoreError(f"unknown export format '{fmt}'; choose from {', '.join(FORMATS)}")
    dest = Path(dest)
    if (dest / "manifest.json").is_file():
        return False
    with atomic_directory(dest) as tmp:
        _WRITERS[fmt](store, tmp, **options)
        (tmp / "manifest.json").write_text(json.dumps({**store.manifest, "export": fmt}, indent=2, sort_keys=True) + "\n")
    return True


def read_export(fmt: str, dest: str | Path) -> Iterator[Sample]:
    """(key, tokens, metadata) of an export, in the order it was written (dataset order)."""
    if fmt not in FORMATS:
        raise TokcoreError(f"unknown export format '{fmt}'; choose from {', '.join(FORMATS)}")
    return _READERS[fmt](Path(dest))


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


# -- npy -------------------------------------------------------------------------------------
def _write_npy(store: TokenStore, dest: Path) -> None:
    with open(dest / "samples.jsonl", "w", encoding="utf-8") as index:
        for key, tokens, meta in store.samples():
            rel = key_path(key) + ".npy"
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_npy_bytes(tokens))
            index.write(json.dumps({"key": key, "file": rel, "shape": list(tokens.shape), "meta": meta}) + "\n")


def _read_npy(dest: Path) -> Iterator[Sample]:
    with open(dest / "samples.jsonl", encoding="utf-8") as index:
        for line in index:
            row = json.loads(line)
            yield row["key"], np.load(dest / row["file"], allow_pickle=False), row["meta"]


# -- lmdb ------------------------------------------------------------------------------------
def lmdb_value(tokens: np.ndarray, meta: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, tokens=np.ascontiguousarray(tokens), meta=np.array(json.dumps(meta, sort_keys=True)))
    return buf.getvalue()


def parse_lmdb_value(value: bytes) -> tuple[np.ndarray, dict[str, Any]]:
    with np.load(io.BytesIO(value), allow_pickle=False) as z:
        return z["tokens"], json.loads(str(z["meta"]))


def _lmdb() -> Any:
    try:
        import lmdb
    except ImportError:
        raise TokcoreError("the lmdb export needs the lmdb package: pip install 'tokcore[export]'") from None
    return lmdb


def _write_lmdb(store: TokenStore, dest: Path, chunk: int = 1000) -> None:
    lmdb = _lmdb()
    size = sum(store[k].nbytes for k in store) + 4096 * len(store)
    env = lmdb.open(str(dest), map_size=max(1 << 24, 2 * size), subdir=True, lock=False, sync=True)
    try:
        keys = list(store)
        for start in range(0, len(keys), chunk):
            batch = [(k.encode("utf-8"), lmdb_value(store[k], store.meta(k))) for k in keys[start:start + chunk]]
            while True:
                try:
                    with env.begin(write=True) as txn:
                        for k, v in batch:
                            txn.put(k, v)
                    break
                except lmdb.MapFullError:  # the estimate was short: grow the map and retry this chunk
                    env.set_mapsize(env.info()["map_size"] * 2)
        env.sync(True)
    finally:
        env.close()
    (dest / "keys.json").write_text(json.dumps(keys) + "\n")  # dataset order (LMDB iterates sorted)


def _read_lmdb(dest: Path) -> Iterator[Sample]:
    lmdb = _lmdb()
    keys = json.loads((dest / "keys.json").read_text(encoding="utf-8"))
    env = lmdb.open(str(dest), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            for key in keys:
                tokens, meta = parse_lmdb_value(txn.get(key.encode("utf-8")))
                yield key, tokens, meta
    finally:
        env.close()


# -- WebDataset --------------------------------------------------------------------------------
def wds_key(key: str) -> str:
    """A sample key as a WebDataset key: no '.' (which would start the file extension)."""
    return key_path(key).replace("%", "%25").replace(".", "%2E")


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _write_wds(store: TokenStore, dest: Path, samples_per_shard: int = 10000, bytes_per_shard: int = 1 << 30) -> None:
    shard, tar, n, nbytes = 0, None, 0, 0
    try:
        for key, tokens, meta in store.samples():
            if tar is None or n >= samples_per_shard or nbytes >= bytes_per_shard:
                if tar is not None:
                    tar.close()
                    shard += 1
                tar, n, nbytes = tarfile.open(dest / f"shard-{shard:06d}.tar", "w"), 0, 0
            k = wds_key(key)
            payload = _npy_bytes(tokens)
            _tar_add(tar, f"{k}.tokens.npy", payload)
            _tar_add(tar, f"{k}.json", json.dumps({"key": key, "shape": list(tokens.shape), "meta": meta}).encode())
            n, nbytes = n + 1, nbytes + len(payload)
    finally:
        if tar is not None:
            tar.close()


def _read_wds(dest: Path) -> Iterator[Sample]:
    for path in sorted(dest.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            pending: dict[str, Any] = {}
            for member in tar:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if member.name.endswith(".tokens.npy"):
                    pending["tokens"] = _load_npy(data)
                elif member.name.endswith(".json"):
                    pending["info"] = json.loads(data)
                if "tokens" in pending and "info" in pending:
                    yield pending["info"]["key"], pending["tokens"], pending["info"]["meta"]
                    pending = {}


_WRITERS: dict[str, Callable[..., None]] = {"npy": _write_npy, "lmdb": _write_lmdb, "wds": _write_wds}
_READERS: dict[str, Callable[[Path], Iterator[Sample]]] = {"npy": _read_npy, "lmdb": _read_lmdb, "wds": _read_wds}
