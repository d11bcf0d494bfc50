"""What an evaluation accumulates, as sums that add up across chunks and ranks.

Every figure of `tokcore eval` is computed from totals: the modality's metric totals per
codec (tokenizer, compared runs, baselines at each budget), bits and rate units, code counts,
token lengths, and the Fréchet statistics of each feature network. A rank adds a chunk of
samples at a time and saves its state after each chunk (atomically), so a killed evaluation
resumes at the first unfinished chunk; the ranks' states merge in rank order at the end.
Memory does not grow with the number of samples: the largest part is a feature network's
`D x D` covariance sum.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save

from tokcore.metrics.codebook import codebook_stats
from tokcore.metrics.frechet import FeatureStats
from tokcore.runtime.io import atomic_write_bytes, atomic_write_json


def add_into(into: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0.0) + float(v)


@dataclass
class CodeCounts:
    """How often each (index position, code) pair occurs, kept sparse: a 16.7 M-code FSQ
    codebook costs memory for the codes that occur only."""

    codebook_size: int
    positions: int
    counts: Counter = field(default_factory=Counter)

    def add(self, indices: np.ndarray) -> None:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1, self.positions)
        keys = flat + np.arange(self.positions, dtype=np.int64) * self.codebook_size
        codes, n = np.unique(keys, return_counts=True)
        self.counts.update(dict(zip(codes.tolist(), n.tolist())))

    def merge(self, other: "CodeCounts") -> None:
        self.counts.update(other.counts)

    def stats(self) -> dict[str, Any]:
        """Usage, perplexity and dead codes per position (stage, head), and their means."""
        per: list[dict[str, float]] = []
        used: list[int] = []
        for j in range(self.positions):
            lo, hi = j * self.codebook_size, (j + 1) * self.codebook_size
            c = torch.tensor([v for k, v in self.counts.items() if lo <= k < hi] or [0], dtype=torch.float64)
            per.append(codebook_stats(c[None], self.codebook_size))
            used.append(int((c > 0).sum()))
        mean = {k: sum(p[k] for p in per) / len(per) for k in per[0]}
        return {**mean, "used": min(used), "used_per_codebook": used,
                **({"per_position": per} if self.positions > 1 else {})}

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        keys = np.array(sorted(self.counts), dtype=np.int64)
        return {f"{prefix}.codes": keys, f"{prefix}.counts": np.array([self.counts[k] for k in keys.tolist()],
                                                                      dtype=np.int64)}

    def load(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        self.counts = Counter(dict(zip(arrays[f"{prefix}.codes"].tolist(), arrays[f"{prefix}.counts"].tolist())))


@dataclass
class Column:
    """One codec's totals over the samples it coded."""

    samples: int = 0
    bits: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)
    settings: Counter = field(default_factory=Counter)
    lengths: Counter = field(default_factory=Counter)  # tokens per sample (variable-length tokenizers)
    codes: CodeCounts | None = None

    def merge(self, other: "Column") -> None:
        self.samples += other.samples
        self.bits += other.bits
        add_into(self.totals, other.totals)
        self.settings.update(other.settings)
        self.lengths.update(other.lengths)
        if other.codes is not None:
            if self.codes is None:
                self.codes = CodeCounts(other.codes.codebook_size, other.codes.positions)
            self.codes.merge(other.codes)


class EvalState:
    """The sums of one rank (or, merged, of all ranks)."""

    def __init__(self) -> None:
        self.chunks: list[int] = []
        self.samples = 0
        self.units: dict[str, float] = {}
        self.columns: dict[str, Column] = {}
        self.features: dict[str, FeatureStats] = {}  # "<extractor>/<column or input>"
        self.pictures: dict[int, dict[str, Any]] = {}  # position in the split -> {"input": x, column: y}
        self.failed: list[dict[str, Any]] = []

    def column(self, name: str) -> Column:
        return self.columns.setdefault(name, Column())

    def feature(self, name: str, dim: int) -> FeatureStats:
        return self.features.setdefault(name, FeatureStats(dim))

    def merge(self, other: "EvalState") -> "EvalState":
        self.chunks += other.chunks
        self.samples += other.samples
        add_into(self.units, other.units)
        for name, col in other.columns.items():
            self.column(name).merge(col)
        for name, stats in other.features.items():
            self.feature(name, stats.sum.shape[0]).merge(stats)
        self.pictures.update(other.pictures)
        self.failed += other.failed
        return self

    # -- files: `<path>.json` (scalars) + `<path>.safetensors` (arrays), each written atomically
    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        columns = {}
        for name, col in self.columns.items():
            columns[name] = {"samples": col.samples, "bits": col.bits, "totals": list(col.totals.items()),  # ordered
                             "settings": dict(col.settings), "lengths": {str(k): v for k, v in col.lengths.items()},
                             "codes": [col.codes.codebook_size, col.codes.positions] if col.codes else None}
            if col.codes is not None:
                arrays.update(col.codes.arrays(f"codes/{name}"))
        for name, s in self.features.items():
            arrays.update({f"features/{name}.sum": s.sum, f"features/{name}.outer": s.outer,
                           f"features/{name}.n": np.array([s.n], dtype=np.int64)})
        pictures = {}
        for pos, cols in self.pictures.items():
            pictures[str(pos)] = {}
            for name, x in cols.items():
                if isinstance(x, torch.Tensor):
                    arrays[f"pictures/{pos}/{name}"] = np.ascontiguousarray(x.detach().cpu().numpy())
                    pictures[str(pos)][name] = None
                else:  # a string sample (text)
                    pictures[str(pos)][name] = x
        atomic_write_bytes(path.with_suffix(".safetensors"), save(arrays))
        atomic_write_json(path.with_suffix(".json"), {  # keys sorted: orders that matter are lists
            "chunks": self.chunks, "samples": self.samples, "units": self.units, "columns": columns,
            "features": sorted(self.features), "pictures": pictures, "failed": self.failed})

    @classmethod
    def load(cls, path: Path) -> "EvalState":
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        arrays = load_file(str(path.with_suffix(".safetensors")))
        state = cls()
        state.chunks, state.samples, state.units = meta["chunks"], meta["samples"], meta["units"]
        state.failed = meta["failed"]
        for name, c in meta["columns"].items():
            col = state.column(name)
            col.samples, col.bits, col.totals = c["samples"], c["bits"], dict(c["totals"])
            col.settings = Counter(c["settings"])
            col.lengths = Counter({int(k): v for k, v in c["lengths"].items()})
            if c["codes"]:
                col.codes = CodeCounts(*c["codes"])
                col.codes.load(arrays, f"codes/{name}")
        for name in meta["features"]:
            s = state.feature(name, arrays[f"features/{name}.sum"].shape[0])
            s.sum, s.outer, s.n = arrays[f"features/{name}.sum"], arrays[f"features/{name}.outer"], \
                int(arrays[f"features/{name}.n"][0])
        for pos, cols in meta["pictures"].items():
            state.pictures[int(pos)] = {name: torch.from_numpy(arrays[f"pictures/{pos}/{name}"]) if v is None else v
                                        for name, v in cols.items()}
        return state
