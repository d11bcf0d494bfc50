"""Writing shards: one writer per rank, a shard committed whole or not at all."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from tokcore.runtime.io import atomic_write_bytes
from tokcore.tokens.store import FORMAT, fsync_dir


class ShardWriter:
    """Collects samples and failures of one rank and commits them as shards.

    A shard is committed when it holds `max_samples` samples or `max_bytes` bytes, and at
    `close()`: the .bin is written to a temporary name and renamed, then its index (with the
    .bin's sha256) is written the same way. The index is the commit: a run killed between the
    two leaves a .bin without index, which resumption deletes.

    Args:
        folder: the store's shards/ folder.
        prefix: this writer's name prefix (`rank<R>`); shards are `<prefix>-<N:05d>`.
        dtype: the dtype every token array is cast to.
    """

    def __init__(self, folder: Path, prefix: str, dtype: np.dtype, *, max_samples: int = 4096,
                 max_bytes: int = 64 << 20):
        self.folder, self.prefix, self.dtype = Path(folder), prefix, np.dtype(dtype)
        self.max_samples, self.max_bytes = max(1, max_samples), max(1, max_bytes)
        self.folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.(?:json|bin)$")
        taken = [int(m.group(1)) for p in self.folder.iterdir() if (m := pattern.match(p.name))]
        self.next = max(taken, default=-1) + 1
        self.samples: list[dict[str, Any]] = []
        self.arrays: list[bytes] = []
        self.failed: list[dict[str, Any]] = []
        self.nbytes = 0
        self.written: list[str] = []

    def add(self, key: str, index: int, tokens: np.ndarray, meta: dict[str, Any] | None = None) -> None:
        a = np.ascontiguousarray(tokens, dtype=self.dtype)
        self.samples.append({"key": key, "index": int(index), "offset": self.nbytes, "shape": list(a.shape),
                             "meta": meta or {}})
        self.arrays.append(a.tobytes())
        self.nbytes += a.nbytes
        if len(self.samples) >= self.max_samples or self.nbytes >= self.max_bytes:
            self.flush()

    def fail(self, key: str, index: int, error: str) -> None:
        self.failed.append({"key": key, "index": int(index), "error": error})

    def flush(self) -> str | None:
        """Commit what is pending as one shard; returns its name (None when nothing was pending)."""
        if not self.samples and not self.failed:
            return None
        name = f"{self.prefix}-{self.next:05d}"
        payload = b"".join(self.arrays)
        digest = hashlib.sha256(payload).hexdigest()
        atomic_write_bytes(self.folder / f"{name}.bin", payload)
        index = {"format": FORMAT, "name": name, "dtype": self.dtype.str, "bytes": len(payload), "sha256": digest,
                 "samples": self.samples, "failed": self.failed}  # compact: the C encoder, one line
        atomic_write_bytes(self.folder / f"{name}.json", json.dumps(index, separators=(",", ":")).encode() + b"\n")
        fsync_dir(self.folder)
        self.next += 1
        self.samples, self.arrays, self.failed, self.nbytes = [], [], [], 0
        self.written.append(name)
        return name

    def close(self) -> None:
        self.flush()
