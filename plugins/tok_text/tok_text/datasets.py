"""Text datasets: lines or JSONL records of files, and the embedded corpus. A sample's
`input` is a string."""

from __future__ import annotations

import glob as _glob
import json
from pathlib import Path
from typing import Any, Literal

from tok_text import corpus
from tokcore.api import ConfigError, Dataset, InputError, split_indices


class TextFilesDataset(Dataset):
    """Text files, one sample per line (`format: lines`) or one JSON object per line whose
    `field` holds the text (`format: jsonl`, chosen by default for `.jsonl` files). Files are
    indexed by line offsets, so a large corpus is read a line at a time. Empty lines are not
    samples. A sample's key is `<file name>/<line number>` (1-based).

    Args:
        paths: files, folders (every file under them) or glob patterns; one or a list.
        format: "lines", "jsonl", or "auto" (jsonl for .jsonl files, lines otherwise).
        field: the JSONL key holding the text.
        split: "train", "val" or "all".
        val_fraction: share of lines held out for "val", chosen by `split_seed`.
        split_seed: seed of the train/val assignment.
    """

    @staticmethod
    def example_config() -> dict[str, Any]:
        """Two small generated files, for the contract kit."""
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="tok-text-files-"))
        (root / "captions.txt").write_text("a dog on a beach\n\ntwo cats on a sofa\na red car\n", encoding="utf-8")
        (root / "more.jsonl").write_text('{"text": "a boat at sea"}\n{"text": "snow on a hill"}\n', encoding="utf-8")
        return {"paths": str(root), "val_fraction": 0.2}

    def __init__(self, paths: str | list[str], format: Literal["auto", "lines", "jsonl"] = "auto", field: str = "text",
                 split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.05, split_seed: int = 0):
        files = _expand([paths] if isinstance(paths, str) else list(paths))
        self.format, self.field = format, field
        self.lines: list[tuple[Path, int, int]] = []  # file, byte offset, line number
        for f in files:
            offset = 0
            with open(f, "rb") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        self.lines.append((f, offset, number))
                    offset += len(line)
        if not self.lines:
            raise ConfigError(f"{', '.join(map(str, files))}: no non-empty lines", key="paths")
        self.names = _short_names(files)
        self.indices = split_indices(len(self.lines), split, val_fraction, split_seed)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        f, _, number = self.lines[int(self.indices[index])]
        return f"{self.names[f]}/{number}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        f, offset, number = self.lines[int(self.indices[index])]
        with open(f, "rb") as fh:
            fh.seek(offset)
            line = fh.readline().decode("utf-8").rstrip("\r\n")
        key = self.key(index)
        if self.format == "jsonl" or (self.format == "auto" and f.suffix == ".jsonl"):
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get(self.field), str):
                raise InputError(f"{f}:{number}: no text field '{self.field}'; set field to the key holding the text")
            line = record[self.field]
        return {"key": key, "input": line, "meta": {"source": str(f), "line": number}}


def _expand(specs: list[str]) -> list[Path]:
    files: list[Path] = []
    for spec in specs:
        p = Path(spec)
        if p.is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file())
        else:
            found = sorted(Path(q) for q in _glob.glob(spec, recursive=True) if Path(q).is_file())
        if not found:
            raise ConfigError(f"'{spec}' matches no file", key="paths")
        files += found
    return list(dict.fromkeys(files))


def _short_names(files: list[Path]) -> dict[Path, str]:
    """File names for keys: the name alone when unique, else the path."""
    names = [f.name for f in files]
    return {f: f.name if names.count(f.name) == 1 else f.as_posix().lstrip("/") for f in files}


class TextCorpusDataset(Dataset):
    """The embedded default corpus (tok_text.corpus): paragraphs of the standard library's
    docstrings, the language reference behind help(), and the Python documentation when
    python3.X-doc is installed; built on this machine, nothing downloaded. The held-out
    split is chosen by each paragraph's text, so it is the same everywhere.

    Args:
        sources: any of "docstrings", "topics", "docs".
        packages: only the docstrings of these top-level stdlib modules (None: all).
        min_chars: shorter paragraphs are left out.
        split: "train", "val" or "all".
        val_fraction: share of paragraphs held out for "val".
    """

    example_config = {"sources": ["docstrings"], "packages": ["textwrap", "json"], "val_fraction": 0.2}

    def __init__(self, sources: list[Literal["docstrings", "topics", "docs"]] | None = None,
                 packages: list[str] | None = None, min_chars: int = 40,
                 split: Literal["train", "val", "all"] = "train", val_fraction: float = 0.02):
        items = corpus.load(sources or list(corpus.SOURCES), packages, min_chars)
        if split != "all":
            items = [kv for kv in items if corpus.is_held_out(kv[1], val_fraction) == (split == "val")]
        if not items:
            raise ConfigError(f"the corpus from {sources or list(corpus.SOURCES)} has no {split} paragraphs",
                              key="sources")
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def key(self, index: int) -> str:
        return self.items[index][0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, text = self.items[index]
        return {"key": key, "input": text, "meta": {"source": key.rsplit("#", 1)[0]}}
