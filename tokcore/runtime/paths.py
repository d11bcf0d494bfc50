"""Checks of the paths a command is told to write to, before it starts: a user who names a
file where a folder is meant gets one line that says so, not `NotADirectoryError` (or
`FileExistsError`) at the end of a long run."""

from __future__ import annotations

from pathlib import Path

from tokcore.errors import TokcoreError


def output_folder(path: str | Path, option: str = "--output") -> Path:
    """`path` as a folder to write into (created later if missing); TokcoreError naming
    `option` when `path`, or a folder above it, exists and is not a folder."""
    p = Path(path)
    for at in (p, *p.parents):
        if at.exists() or at.is_symlink():
            if at.is_dir():
                return p
            where = "is a file" if at == p else f"is inside {at}, which is a file"
            raise TokcoreError(f"{option} {path} {where}, not a folder; give a folder (created if missing)")
    return p
