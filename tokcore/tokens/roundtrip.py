"""A split of a run's dataset through the whole pipeline: `tokcore tokenize`'s job, then
`tokcore decode`'s, read back as arrays. Reports and demos use it to measure what a user of
the token store will actually get."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tokcore.run import Checkpoint
from tokcore.runtime.io import atomic_write_json
from tokcore.tokens.decode import decode_store
from tokcore.tokens.store import TokenStore
from tokcore.tokens.tokenize import tokenize


def read_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def read_decoded(folder: str | Path, keys: list[str], reader: Callable[[Path], np.ndarray] = read_npy) -> np.ndarray:
    """The decoded samples of `keys` from a `tokcore decode` output, each file read by `reader`
    (.npy files by default; a plugin whose modality writes pictures passes its own)."""
    folder = Path(folder)
    files = {}
    for line in (folder / "decoded.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        files[row["key"]] = row["files"][0]
    return np.stack([reader(folder / files[k]) for k in keys])


def split_inputs(run: str | Path, split: str) -> tuple[list[str], torch.Tensor]:
    """Keys and stacked raw inputs of `split` of the dataset the run was trained on."""
    ds = Checkpoint(run).spec().dataset(split)
    samples = [ds[i] for i in range(len(ds))]
    return [s["key"] for s in samples], torch.stack([torch.as_tensor(s["input"]).float() for s in samples])


@dataclass
class Roundtrip:
    keys: list[str]  # in the store's order
    inputs: torch.Tensor  # the raw samples, aligned with keys
    tokens: np.ndarray
    decoded: np.ndarray


def roundtrip(run: str | Path, split: str = "val", folder: str | Path | None = None,
              reader: Callable[[Path], np.ndarray] = read_npy) -> Roundtrip:
    """`split` of the run's dataset through `<folder>/tokens` (the store) and
    `<folder>/decoded` (default folder: `<run>/roundtrip-<split>`), decoded files read by
    `reader`. Finished outputs are reused, so running `tokcore tokenize`/`decode` there first
    is the same."""
    folder = Path(folder) if folder else Path(run) / f"roundtrip-{split}"
    tokenize(run, folder / "tokens", [f"data.split={split}"])  # a finished store is not redone
    if not (folder / "decoded" / "decoded.jsonl").is_file():
        decode_store(run, folder / "tokens", folder / "decoded")
    store = TokenStore(folder / "tokens")
    keys = list(store)
    by_key = dict(zip(*split_inputs(run, split)))
    return Roundtrip(keys, torch.stack([by_key[k] for k in keys]), np.stack([store[k] for k in keys]),
                     read_decoded(folder / "decoded", keys, reader))


@dataclass
class ReportInputs:
    """What a held-out report starts from (see `report_inputs`)."""

    tokenizer: object
    info: dict
    bits: int  # the tokenizer's bits per sample, the budget a baseline codec gets
    out: Path
    roundtrip: Roundtrip
    train: torch.Tensor  # raw training inputs, to fit a baseline codec on


def report_inputs(run: str | Path, output: str | Path | None, split: str,
                  reader: Callable[[Path], np.ndarray] = read_npy) -> ReportInputs:
    """The tokenizer of `run`, `split` through the whole pipeline (decoded files read by
    `reader`), and the training inputs."""
    from tokcore.run import load_tokenizer

    run = Path(run)
    tok = load_tokenizer(run)
    info = tok.info()
    return ReportInputs(tok, info, int(round(info["bits_per_sample"])), Path(output) if output else run / "report",
                        roundtrip(run, split, reader=reader), split_inputs(run, "train")[1])


def token_bits(tokens_per_sample: int, index_shape: list[int], codebook_size: int) -> str:
    """'30 tokens x log2(256)', or with residual stages '1 token x 30 stages x log2(256)'."""
    codes = math.prod(index_shape or [1])
    stages = f" x {codes} stages" if codes > 1 else ""
    noun = "token" if tokens_per_sample == 1 else "tokens"
    return f"{tokens_per_sample} {noun}{stages} x log2({codebook_size})"


def usage_line(codebook: dict, codebook_size: int) -> str:
    """The report line for `tokcore.metrics.codebook.codebook_usage`'s result; with several
    codebooks (residual stages), each one's codes in use."""
    per = codebook.get("used_per_codebook", [codebook["used"]])
    used = f"{per[0]}/{codebook_size}" if len(per) == 1 else f"per stage {' '.join(map(str, per))} of {codebook_size}"
    return f"codebook usage on held-out tokens: {100 * codebook['usage']:.1f}% ({used}), perplexity {codebook['perplexity']:.1f}"


def save_report(out: Path, result: dict, table: str, plot: Path) -> None:
    """Write `<out>/metrics.json`, print the table and where the files are. The tokens
    themselves are in the roundtrip's token store."""
    atomic_write_json(out / "metrics.json", result)
    print(table)
    print(f"plot: {plot}\nmetrics: {out / 'metrics.json'}")
