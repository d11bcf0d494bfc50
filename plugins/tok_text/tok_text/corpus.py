"""The embedded default corpus: English paragraphs built at run time from text every Python
installation has, so a vocabulary can be fitted with no download and nothing committed.

Sources, each paragraph keyed by where it came from:

* `docstrings`: docstrings of the standard library's modules, classes and functions, read
  with `ast` (nothing is imported or run); test suites are left out;
* `topics`: the language reference behind `help()` (`pydoc_data.topics`);
* `docs`: the reST sources of the Python documentation when Debian's `python3.11-doc` (or
  another copy) is installed, under `/usr/share/doc/python3.X/html/_sources`.

Paragraphs are blank-line separated blocks with their lines joined; code (doctests,
indented blocks, reST directives) is left out and inline reST markup is reduced to its
text. The held-out split is a function of each paragraph's text alone (its CRC-32), so it
is the same on every machine and does not move when a source is added.

Building it parses the whole standard library (seconds to tens of seconds on a busy
machine), so the paragraphs are cached as JSON lines under `$TOK_TEXT_CACHE` (default
`~/.cache/tok-text`), keyed by the Python version, the sources and the options.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import sysconfig
import zlib
from pathlib import Path
from typing import Iterator, Sequence

from tokcore.api import atomic_write_text

VERSION = 1  # bump when the extraction changes, so caches are rebuilt
SOURCES = ("docstrings", "topics", "docs")
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"}
_ROLE = re.compile(r":[a-zA-Z:+-]+:`(?:[^`<]*<)?([^`>]*)>?`")  # :func:`name`, :ref:`text <target>`
_LITERAL = re.compile(r"``([^`]*)``")


def docs_root() -> Path | None:
    """The installed reST sources of the Python documentation, if any."""
    major_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    for root in (os.environ.get("TOK_TEXT_DOCS"), f"/usr/share/doc/python{major_minor}/html/_sources"):
        if root and Path(root).is_dir():
            return Path(root)
    return None


def paragraphs(text: str, min_chars: int) -> Iterator[str]:
    """Prose paragraphs of a docstring or reST text, each on one line."""
    code_next = False
    for block in re.split(r"\n\s*\n", text):
        if not block.strip():
            continue
        lines = block.splitlines()
        is_code = code_next or block[:1].isspace() or lines[0].lstrip().startswith((">>>", "..", "$ "))
        code_next = block.rstrip().endswith("::")
        if is_code:
            continue
        para = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", " ".join(line.strip() for line in lines)))
        para = para.replace("::", ":").strip()
        if len(para) >= min_chars and not set(para) <= set("=-~*^#+ "):
            yield para


def _docstrings(packages: Sequence[str] | None) -> Iterator[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not _SKIP_DIRS & set(p.relative_to(root).parts[:-1]))
    if packages is not None:
        files = [p for p in files if p.relative_to(root).parts[0].removesuffix(".py") in packages]
    for f in files:
        try:
            tree = ast.parse(f.read_bytes(), filename=str(f))
        except (SyntaxError, ValueError, OSError):  # the odd file written for another Python
            continue
        name = f.relative_to(root).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield f"docstrings/{name}:{getattr(node, 'lineno', 0)}", doc


def _topics() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"topics/{name}", topics[name]


def _docs() -> Iterator[tuple[str, str]]:
    root = docs_root()
    if root is None:
        return
    for f in sorted(root.rglob("*.txt")):
        yield f"docs/{f.relative_to(root).as_posix()}", f.read_text(encoding="utf-8", errors="replace")


def build(sources: Sequence[str] = SOURCES, packages: Sequence[str] | None = None,
          min_chars: int = 40) -> list[tuple[str, str]]:
    """(key, paragraph) pairs, in a fixed order; keys are unique."""
    readers = {"docstrings": lambda: _docstrings(packages), "topics": _topics, "docs": _docs}
    out, seen = [], set()
    for source in sources:
        for origin, text in readers[source]():
            for n, para in enumerate(paragraphs(text, min_chars)):
                if para not in seen:  # the same docstring is inherited and copied around
                    seen.add(para)
                    out.append((f"{origin}#{n}", para))
    return out


def load(sources: Sequence[str] = SOURCES, packages: Sequence[str] | None = None,
         min_chars: int = 40) -> list[tuple[str, str]]:
    """`build(...)`, from the cache when it was built before with the same inputs."""
    docs = docs_root()
    key = json.dumps([VERSION, sys.version, sysconfig.get_paths()["stdlib"], list(sources),
                      sorted(packages) if packages is not None else None, min_chars,
                      str(docs) if docs and "docs" in sources else None])
    cache = Path(os.environ.get("TOK_TEXT_CACHE") or Path.home() / ".cache" / "tok-text")
    file = cache / f"corpus-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
    if file.is_file():
        return [tuple(json.loads(line)) for line in file.read_text(encoding="utf-8").splitlines()]
    items = build(sources, packages, min_chars)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, "".join(json.dumps(item) + "\n" for item in items))
    except OSError:  # a read-only home: rebuild next time
        pass
    return items


def is_held_out(text: str, val_fraction: float) -> bool:
    """Whether a paragraph belongs to the held-out split: by its text's CRC-32, nothing else."""
    return zlib.crc32(text.encode("utf-8")) % 10_000 < val_fraction * 10_000
