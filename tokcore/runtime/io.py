"""Atomic file output: nothing tokcore writes is ever seen half-written.

Files go to a temporary name in the same directory and are renamed into place (a rename
within one filesystem is atomic); directories are assembled under a temporary name and
renamed whole.

Permissions are those a plain `open(path, "w")` or `os.mkdir(path)` would give: 0666 and 0777
less the process's umask (and the directory's default ACL), and an existing file keeps its
mode. The temporaries are therefore not made with `tempfile.mkstemp`/`mkdtemp`, whose fixed
0600/0700 would become the outputs' modes: a run directory on a shared cluster would be
unreadable by the rest of the group whatever the user's umask.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


def _temporary(path: Path, make: Callable[[Path], T]) -> tuple[Path, T]:
    """`make(tmp)` for a fresh sibling name `.NAME.<random>.tmp` of `path`; `make` creates
    it exclusively (raising FileExistsError when the name is taken)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, make(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _create_file(tmp: Path) -> int:
    # 0o666 as open() asks for it: the kernel applies the umask (and any default ACL)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _temporary(path, _create_file)
    try:
        with os.fdopen(fd, "wb") as f:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(path)
                if stat.S_ISREG(st.st_mode):  # a plain open() of an existing file keeps its mode
                    os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, _ = _temporary(path, lambda p: os.mkdir(p, 0o777))  # the umask applies, as for mkdir
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_figure(fig: Any, path: str | Path, dpi: int = 80) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
