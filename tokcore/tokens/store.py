"""The token store: pre-computed tokens of a whole dataset, one directory.

    <store>/manifest.json          written last: the store is complete when it exists
    <store>/job.json               what is being tokenized (checkpoint hash, data config);
                                   a resumed run must match it
    <store>/shards/<name>.bin      raw token arrays, concatenated in C order (np.memmap-able)
    <store>/shards/<name>.json     the shard's index, written after its .bin: one entry per
                                   sample (key, dataset index, byte offset, shape, metadata),
                                   the inputs that failed and why, the .bin's size and sha256

A shard exists only once its index exists and the .bin matches the recorded size and
checksum; anything else (a temporary file, a .bin without index, a checksum mismatch) is the
remains of a killed run and is discarded on resumption. Every rank writes its own shards
(`rank<R>-<N>`), so nothing is shared between writers.

Reading needs numpy only (no torch): `TokenStore(path)` maps sample keys to read-only
arrays backed by the memory-mapped shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tokcore.errors import TokcoreError

FORMAT = 1
MANIFEST = "manifest.json"
JOB = "job.json"
SHARDS = "shards"


def token_dtype(codebook_size: int | None, latent_dtype: str = "float32") -> np.dtype:
    """The smallest dtype that holds every index (`codebook_size` values), or the latent dtype."""
    if codebook_size is None:
        return np.dtype(latent_dtype)
    for dt in (np.uint8, np.uint16, np.uint32):
        if codebook_size - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_shard_index(index: Path) -> dict[str, Any] | None:
    """A shard's index, or None when it is unreadable (not a complete shard)."""
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def shard_is_intact(index: Path, data: Mapping[str, Any], *, checksum: bool = True) -> bool:
    """The .bin beside `index` has the recorded size (and, with `checksum`, sha256)."""
    binary = index.with_suffix(".bin")
    try:
        if binary.stat().st_size != data["bytes"]:
            return False
    except OSError:
        return False
    return not checksum or sha256_file(binary) == data["sha256"]


def list_shards(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The complete-looking shards of `folder` (by index; sizes checked, not checksums)."""
    out = []
    if not folder.is_dir():
        return out
    for index in sorted(folder.glob("*.json")):
        if index.name.startswith("."):
            continue
        data = read_shard_index(index)
        if data is not None and shard_is_intact(index, data, checksum=False):
            out.append((index, data))
    return out


class TokenStore(Mapping):
    """Random access to the tokens of a finished `tokcore tokenize` run.

    A read-only mapping from sample key to its token array (a view of the memory-mapped
    shard: nothing is read until used), iterated in dataset order, whatever the number of
    processes that wrote it or how often it was resumed.

        store = TokenStore("tokens/gaze")
        len(store); store["walks/17"]; store.meta("walks/17"); store.failed
        for key, tokens in store.items(): ...

    Args:
        path: the store directory (`tokcore tokenize --output`).
        verify: check every shard's sha256 against the manifest now (reads everything).
    """

    def __init__(self, path: str | Path, *, verify: bool = False):
        self.path = Path(path)
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            if (self.path / JOB).is_file():
                raise TokcoreError(f"{self.path}: the token store is not complete (tokcore tokenize did not finish); "
                                   "run the same command again to resume it")
            raise TokcoreError(f"{self.path}: not a token store (no {MANIFEST}); create one with tokcore tokenize")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise TokcoreError(f"{self.path}: token store format {self.manifest.get('format')!r} is not supported "
                               f"(this tokcore reads format {FORMAT})")
        self.dtype = np.dtype(self.manifest["dtype"])
        self._entries: dict[str, tuple[int, int, tuple[int, ...], int]] = {}  # key -> shard, offset, shape, index
        self._meta: dict[str, dict[str, Any]] = {}
        self._shards: list[str] = []
        for s, shard in enumerate(self.manifest["shards"]):
            self._shards.append(shard["name"])
            data = read_shard_index(self.path / SHARDS / f"{shard['name']}.json")
            if data is None or data["sha256"] != shard["sha256"]:
                raise TokcoreError(f"{self.path}: shard {shard['name']} is missing or differs from the manifest")
            for e in data["samples"]:
                if e["key"] in self._entries:
                    raise TokcoreError(f"{self.path}: key {e['key']!r} appears twice (shard {shard['name']})")
                self._entries[e["key"]] = (s, int(e["offset"]), tuple(e["shape"]), int(e["index"]))
                self._meta[e["key"]] = e.get("meta") or {}
        self._order = sorted(self._entries, key=lambda k: (self._entries[k][3], k))
        self._maps: dict[int, np.ndarray] = {}
        if verify:
            self.verify()

    # -- the mapping ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            s, offset, shape, _ = self._entries[key]
        except KeyError:
            raise KeyError(key) from None
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            return np.zeros(shape, self.dtype)
        buf = self._map(s)
        return np.ndarray(shape, dtype=self.dtype, buffer=buf, offset=offset)

    def _map(self, s: int) -> np.ndarray:
        if s not in self._maps:
            self._maps[s] = np.memmap(self.path / SHARDS / f"{self._shards[s]}.bin", dtype=np.uint8, mode="r")
        return self._maps[s]

    # -- beyond the tokens -----------------------------------------------------------------
    def meta(self, key: str) -> dict[str, Any]:
        """The sample's metadata: its source, frame range, the crop/flip view, ..."""
        return self._meta[key]

    def index(self, key: str) -> int:
        """The sample's position in the dataset it was tokenized from."""
        return self._entries[key][3]

    def shape(self, key: str) -> tuple[int, ...]:
        return self._entries[key][2]

    def samples(self) -> Iterator[tuple[str, np.ndarray, dict[str, Any]]]:
        """(key, tokens, metadata) in dataset order."""
        for k in self._order:
            yield k, self[k], self._meta[k]

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The inputs that could not be tokenized: `{"key", "index", "error"}`."""
        return list(self.manifest.get("failed", []))

    @property
    def codebook_size(self) -> int | None:
        return self.manifest.get("codebook_size")

    @property
    def kind(self) -> str:
        """"indices" (discrete tokens) or "latents" (a continuous bottleneck)."""
        return self.manifest["kind"]

    @property
    def token_shape(self) -> tuple[int, ...] | None:
        """The shape every sample shares, or None when lengths vary."""
        shape = self.manifest.get("token_shape")
        return tuple(shape) if shape is not None else None

    @property
    def num_tokens(self) -> dict[str, Any] | None:
        """A variable-length tokenizer's token counts: `{"requested", "min", "max",
        "tokenizer"}` (what `--num-tokens` asked, what the samples hold, the tokenizer's
        range); None for a fixed grid. Each sample's own count is `shape(key)[0]`."""
        return self.manifest.get("num_tokens")

    def verify(self) -> None:
        """Check every shard's size and sha256 against the manifest; TokcoreError if one differs."""
        for shard in self.manifest["shards"]:
            binary = self.path / SHARDS / f"{shard['name']}.bin"
            if not binary.is_file() or binary.stat().st_size != shard["bytes"] or sha256_file(binary) != shard["sha256"]:
                raise TokcoreError(f"{self.path}: shard {shard['name']} is damaged (size or sha256 differs "
                                   "from the manifest); delete the store and tokenize again")

    def __repr__(self) -> str:
        return (f"TokenStore({str(self.path)!r}: {len(self)} samples, {self.kind} {self.dtype}, "
                f"{len(self.failed)} failed)")


def key_path(key: str) -> str:
    """A relative file path for a sample key: '/' separates folders; components that could
    escape the folder or are empty are percent-encoded, so distinct keys stay distinct."""
    from urllib.parse import quote

    parts = []
    for comp in key.split("/"):
        q = quote(comp, safe=" -_.,+=@()[]{}!~'")
        if q == "":
            q = "%"
        elif set(q) == {"."}:
            q = "%2E" * len(q)
        parts.append(q)
    return "/".join(parts)


def fsync_dir(path: Path) -> None:
    """Make renames inside `path` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
