"""Component parameters: read from a class's `__init__` signature, validated, documented.

The signature is the single source of truth: names, defaults, and type annotations. Config
values are checked against the annotations (int, float, bool, str, None, unions, Literal,
lists/tuples/sequences, dicts), unknown names are errors with a did-you-mean, and defaults
fill in what the config leaves out.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Union

from tokcore.errors import ConfigError
from tokcore.registry.names import did_you_mean

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any  # a type, or _EMPTY when the signature has none
    default: Any  # _EMPTY when required
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _EMPTY

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that cannot be resolved is simply not checked
        return {}


def params_of(cls: type) -> tuple[list[Param], bool]:
    """The parameters of `cls(...)` and whether it also accepts arbitrary **kwargs."""
    sig = inspect.signature(cls.__init__)
    hints, docs = _hints(cls), param_docs(cls)
    factories = {f.name: f.default_factory for f in dataclasses.fields(cls)
                 if f.default_factory is not dataclasses.MISSING} if dataclasses.is_dataclass(cls) else {}
    out, var_kw = [], False
    for p in list(sig.parameters.values())[1:]:  # skip self
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is not p.VAR_POSITIONAL:
            default = factories[p.name]() if p.name in factories else p.default
            out.append(Param(p.name, hints.get(p.name, p.annotation), default, docs.get(p.name, "")))
    return out, var_kw


def resolve_params(cls: type, given: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """`given` checked against `cls`'s signature, with defaults filled in.

    Raises ConfigError whose key is the offending parameter name.
    """
    params, var_kw = params_of(cls)
    by_name = {p.name: p for p in params}
    for key in given:
        if key not in by_name and not var_kw:
            close = did_you_mean(key, list(by_name))
            fix = f"did you mean '{close}'?" if close else (
                f"{what} takes: {', '.join(by_name) or 'no parameters'}")
            raise ConfigError(f"unknown parameter for {what}; {fix}", key=key)
    resolved: dict[str, Any] = {}
    for p in params:
        if p.name in given:
            value = given[p.name]
            if not check_type(value, p.annotation):
                raise ConfigError(
                    f"expected {p.type_name}, got {type(value).__name__} {value!r}", key=p.name)
            resolved[p.name] = value
        elif p.required:
            raise ConfigError(f"missing required parameter '{p.name}' ({p.type_name}) of {what}", key=p.name)
        else:
            resolved[p.name] = plain(p.default)
    resolved.update({k: v for k, v in given.items() if k not in by_name})
    return resolved


def plain(value: Any) -> Any:
    """`value` as plain JSON/YAML data: mappings to dicts with str keys, tuples to lists,
    arrays, tensors and numpy scalars to (nested lists of) Python numbers; None, bool, int,
    float and str as they are; anything else (a Path, say) as its `str`. Config defaults,
    recorded modality parameters and token-store metadata all go through it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, cabc.Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy arrays and scalars, tensors
        return plain(value.tolist())
    return str(value)


def check_type(value: Any, annotation: Any) -> bool:
    """Whether a config value (YAML scalars, lists, dicts) fits a type annotation."""
    if annotation is _EMPTY or annotation is Any or isinstance(annotation, (str, typing.TypeVar)):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(check_type(value, a) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple, cabc.Sequence, cabc.MutableSequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(check_type(v, a) for v, a in zip(value, args))
        return not args or all(check_type(v, args[0]) for v in value)
    if origin in (dict, cabc.Mapping, cabc.MutableMapping) or annotation is dict:
        if not isinstance(value, dict):
            return False
        kt, vt = args if len(args) == 2 else (Any, Any)
        return all(check_type(k, kt) and check_type(v, vt) for k, v in value.items())
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True  # an annotation we do not model (a Protocol, a callable) is not checked


def type_name(annotation: Any) -> str:
    if annotation is _EMPTY:
        return "any"
    if annotation is None or annotation is type(None):
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        base = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{base}[{inner}]" if inner else base
    return getattr(annotation, "__name__", str(annotation))


_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def param_docs(cls: type) -> dict[str, str]:
    """Per-parameter text from a Google-style `Args:` section of the class docstring."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    in_args, current = False, None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            if line and not line.startswith(" "):
                break  # next section
            m = _ARG_LINE.match(line)
            if m and len(line) - len(line.lstrip()) <= 4:
                current = m.group(1)
                out[current] = m.group(2).strip()
            elif current and line.strip():
                out[current] += " " + line.strip()
    return out


def summary(cls: type) -> str:
    """The docstring without its Args section."""
    doc = inspect.getdoc(cls) or ""
    return re.split(r"^(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.M)[0].strip()
