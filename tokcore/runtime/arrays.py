"""Reading user array files (`.npy`, `.npz`) safely, with errors that name the file.

`numpy.load(..., allow_pickle=False)` takes any file that is neither `.npy` nor `.npz` for a
pickle and answers "This file contains pickled (object) data. If you trust the file you can
load it unsafely ...": for random bytes, a CSV or a text file named `.npy` it invites the
one thing tokcore never does (unpickling runs code). `load_array` looks at the file's
signature first and says what the file is instead; every reader of user arrays (core's
datasets and the plugins', through `tokcore.api.load_array`) goes through it.

    x = load_array("walks.npy", mmap_mode="r")        # a memory map of a .npy
    y = load_array("scans.npz", array="depth")         # one array of an .npz
    z = load_array(data_bytes, name="img/0001.npy")    # file contents already in memory
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import IO, Literal

import numpy as np

from tokcore.errors import ConfigError, InputError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_FIX = "write arrays with numpy.save (.npy) or numpy.savez (.npz)"


def load_array(source: str | Path | bytes, *, array: str | None = None,
               mmap_mode: Literal["r", "c"] | None = None, name: str | None = None) -> np.ndarray:
    """The array in `source` (a path, or a file's contents as bytes): a `.npy`, or array
    `array` of a `.npz` (default: its first). The format is told by the file's signature,
    not its suffix. `mmap_mode` memory-maps a `.npy` file (ignored for `.npz` and bytes).

    Raises InputError naming the file (`name`, default the path) when it is missing, a folder,
    not a NumPy array file at all (text, CSV, other bytes), damaged or truncated, or an array
    of Python objects (which would need unpickling: never done); ConfigError with key `array`
    when the `.npz` has no array `array` (the message lists those it has). Never unpickles."""
    label = name or (str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "<bytes>")
    try:
        with _open(source) as fp:
            head = fp.read(len(NPY_MAGIC))
            if head == NPY_MAGIC:
                fp.seek(0)
                if _npy_dtype(fp).hasobject:
                    raise _objects(label)
                if mmap_mode is not None and not isinstance(source, (bytes, bytearray, memoryview)):
                    return np.load(source, mmap_mode=mmap_mode, allow_pickle=False)
                fp.seek(0)
                return np.load(fp, allow_pickle=False)
            if head[:4] in ZIP_MAGICS:
                fp.seek(0)
                return _npz_member(fp, array, label)
            raise InputError(f"{label} is not a NumPy array file: {_what(head + fp.read(60))}; {_FIX}")
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label} is a folder, not a NumPy array file (.npy or .npz)") from None
    except PermissionError:
        raise InputError(f"{label}: permission denied; make the file readable") from None
    except (InputError, ConfigError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        if "pickle" in str(err):  # numpy refusing an object array (an .npz member, a newer header)
            raise _objects(label) from None
        raise InputError(f"{label} is a damaged or truncated NumPy array file ({type(err).__name__}: "
                         f"{_short(err)}); {_FIX}") from None


def _open(source: str | Path | bytes) -> IO[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return open(source, "rb")


def _npy_dtype(fp: IO[bytes]) -> np.dtype:
    """The dtype in a .npy header, read without the data (float64 for a header version this
    numpy reads only inside `np.load`, which refuses object arrays itself)."""
    fmt = np.lib.format
    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(fmt.read_magic(fp))
    return read(fp)[2] if read is not None else np.dtype(np.float64)


def _objects(label: str) -> InputError:
    return InputError(f"{label} holds an array of Python objects (dtype object), which tokcore does not "
                      "read (it would have to unpickle them); save numbers instead, e.g. "
                      "numpy.save(path, numpy.asarray(data, dtype=numpy.float32))")


def _npz_member(fp: IO[bytes], array: str | None, label: str) -> np.ndarray:
    with np.load(fp, allow_pickle=False) as npz:
        if not npz.files:
            raise InputError(f"{label} is an .npz file that holds no arrays; {_FIX}")
        chosen = npz.files[0] if array is None else array
        if chosen not in npz.files:
            raise ConfigError(f"{label} has no array '{chosen}'; it has {', '.join(npz.files)}", key="array")
        value = npz[chosen]
        if not isinstance(value, np.ndarray):  # a member that is not a .npy: numpy hands back its bytes
            raise InputError(f"{label}: member '{chosen}' is not a NumPy array; {_FIX}")
        return value


def _what(head: bytes) -> str:
    """What the first bytes of a file that is not .npy/.npz look like, for the message."""
    if not head:
        return "it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\t\r\n" for c in text):
        first = text.splitlines()[0] if text.strip() else text
        return f"it holds text (it begins {first[:40]!r})"
    return f"it does not begin with the .npy or .npz signature (its first bytes are {head[:8]!r})"


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text[:160]
