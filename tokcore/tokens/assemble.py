"""Assembling a token store from the shards ranks commit: repair before a (resumed) run
starts, and the manifest once every rank is done.

A store is complete when its manifest exists. Until then it is a folder of committed shards
(index + binary, each with a checksum) that a killed run may have left half-written; `repair`
discards what was not committed and what fails its checksum, so the samples in them are
tokenized again, and `finalize` checks that every sample is in exactly once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from tokcore._version import __version__
from tokcore.runtime.io import atomic_write_json
from tokcore.tokens.job import Job
from tokcore.tokens.store import (
    FORMAT,
    JOB,
    MANIFEST,
    SHARDS,
    list_shards,
    read_shard_index,
    shard_is_intact,
)


def repair(out: Path, job: Job) -> None:
    """Rank 0: record the job (or check it matches), discard remains of a killed run."""
    recorded = out / JOB
    if not recorded.is_file():
        atomic_write_json(recorded, job.record())
    folder = out / SHARDS
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.iterdir():
        if p.name.startswith("."):  # a temporary file of a killed writer
            p.unlink(missing_ok=True)
    for index in sorted(folder.glob("*.json")):
        data = read_shard_index(index)
        if data is None or not shard_is_intact(index, data, checksum=True):
            print(f"tokcore: discarding damaged shard {index.stem} (its samples are tokenized again)",
                  file=sys.stderr)
            index.unlink(missing_ok=True)
            index.with_suffix(".bin").unlink(missing_ok=True)
    for binary in folder.glob("*.bin"):  # written, but its index never was: not committed
        if not binary.with_suffix(".json").is_file():
            binary.unlink(missing_ok=True)


def _count_range(info: dict[str, Any], shapes: set[tuple[int, ...]], job: Job) -> dict[str, Any] | None:
    """A variable-length tokenizer's token counts: what was asked, what the store holds."""
    if info.get("num_tokens") is None:
        return None
    held = [s[0] for s in shapes]
    return {"requested": job.num_tokens, "min": min(held, default=None), "max": max(held, default=None),
            "tokenizer": info["num_tokens"]}


def finalize(out: Path, job: Job, tok: Any, n: int, keys: list[str], dtype: np.dtype) -> dict[str, Any]:
    """Rank 0, once every rank is done: check that each sample is in exactly once, then write
    the manifest (which marks the store complete)."""
    folder = out / SHARDS
    for p in folder.iterdir():  # leftovers of ranks of an earlier attempt that nobody resumed
        if p.name.startswith(".") or (p.suffix == ".bin" and not p.with_suffix(".json").is_file()):
            p.unlink(missing_ok=True)
    shards, failed, shapes, seen = [], [], set(), {}
    for index, data in list_shards(folder):
        if np.dtype(data["dtype"]) != dtype:
            raise RuntimeError(f"shard {index.stem} holds {data['dtype']}, not {dtype.str}")
        for e in data["samples"] + data["failed"]:
            if e["key"] in seen:
                raise RuntimeError(f"key {e['key']!r} is in shards {seen[e['key']]} and {index.stem}")
            seen[e["key"]] = index.stem
        shapes.update(tuple(e["shape"]) for e in data["samples"])
        failed += data["failed"]
        shards.append({"name": data["name"], "samples": len(data["samples"]), "failed": len(data["failed"]),
                       "bytes": data["bytes"], "sha256": data["sha256"]})
    missing = [k for k in keys if k not in seen]
    if missing or len(seen) != n:
        raise RuntimeError(f"the store misses {len(missing)} of {n} samples (first: {missing[:3]}); run again to resume")
    info = tok.info()
    manifest = {
        "format": FORMAT,
        "tokcore_version": __version__,
        "checkpoint": job.checkpoint,
        "weights": job.weights,
        "weights_sha256": job.weights_sha256,
        "data": job.data,
        "kind": "indices" if tok.is_discrete else "latents",
        "dtype": dtype.str,
        "codebook_size": tok.codebook_size,
        "index_shape": list(tok.index_shape),
        "token_shape": list(next(iter(shapes))) if len(shapes) == 1 else None,
        "variable_shape": len(shapes) > 1,
        "num_tokens": _count_range(info, shapes, job),
        "modality": info.get("modality"),
        "input_shape": info.get("input_shape"),
        "num_samples": sum(s["samples"] for s in shards),
        "num_failed": len(failed),
        "failed": sorted(failed, key=lambda f: (f["index"], f["key"])),
        "shards": shards,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
