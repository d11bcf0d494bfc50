"""Configs: YAML files that assemble a tokenizer and its training from registry names.

Precedence, lowest first: component defaults (from each class's signature) < `_base_`
files (deep-merged, in order; paths relative to the including file, or `PLUGIN:NAME`) <
the file itself < `k.e.y=value` overrides from the command line (values parsed as YAML).
A config is a path or `PLUGIN:NAME`, a config shipped inside a plugin (see `sources`).
A component is a mapping with `name:` plus its parameters; its kind comes from where it
sits. When a later layer names a *different* component at the same place, it replaces the
earlier mapping whole instead of merging into it (so `model.quantizer.name=fsq` does not
inherit vq's parameters).

Every error names the file the offending key came from, the key, and the fix.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from tokcore.config import sources
from tokcore.config.sources import Source
from tokcore.config.spec import TrainSettings
from tokcore.errors import ConfigError, RegistryError
from tokcore.registry.names import did_you_mean
from tokcore.registry.params import check_type, resolve_params, type_name

SCHEMA_VERSION = 1
COMMAND_LINE = "command line"

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class Component:
    """A place in the config that holds a registered component of `kind`."""

    kind: str


# What may appear at the top of a config. Values: a Component, a nested schema (dict), a
# dataclass whose fields are the section's settings, or a type annotation.
SCHEMA: dict[str, Any] = {
    "tokcore": int,
    "requires": list[str],
    "seed": int,
    "modality": Component("modality"),
    "model": {"encoder": Component("encoder"), "quantizer": Component("quantizer"),
              "decoder": Component("decoder"), "framewise": bool},
    "loss": Component("loss"),
    "trainer": Component("trainer"),
    "data": Component("dataset"),
    "train": TrainSettings,
}


@dataclass
class Config:
    """A merged config and, for every key, the file (or "command line") it came from."""

    data: dict[str, Any]
    origins: dict[Path_, str] = field(default_factory=dict)
    path: str = ""

    def where(self, key: Path_) -> str:
        """The source of `key`, or of its closest ancestor that has one."""
        for n in range(len(key), 0, -1):
            if key[:n] in self.origins:
                return self.origins[key[:n]]
        return self.path

    def error(self, key: Path_, message: str) -> ConfigError:
        return ConfigError(message, key=".".join(key), file=self.where(key))


# -- reading and merging -----------------------------------------------------------------
def _mark(data: Any, source: str, prefix: Path_ = ()) -> dict[Path_, str]:
    out = {prefix: source} if prefix else {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_mark(v, source, prefix + (str(k),)))
    return out


def _replaces(old: Any, new: Any) -> bool:
    """Whether `new` replaces `old` whole rather than merging into it."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return True
    return "name" in old and "name" in new and old["name"] != new["name"]


def _merge(base: Config, top: Config, prefix: Path_ = ()) -> None:
    """Merge `top` into `base` in place (data and origins)."""
    node = base.data
    for k in prefix:
        node = node[k]
    src = top.data
    for k in prefix:
        src = src[k]
    for key, value in src.items():
        path = prefix + (str(key),)
        if key in node and not _replaces(node[key], value):
            base.origins.setdefault(path, top.origins.get(path, top.path))
            _merge(base, top, path)
            continue
        node[key] = _copy(value)
        for p in [p for p in base.origins if p[: len(path)] == path]:
            del base.origins[p]
        base.origins.update({p: s for p, s in top.origins.items() if p[: len(path)] == path})


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _read(source: Source, chain: tuple[Source, ...], including: str = "") -> Config:
    path, shown = source.path, source.label
    if path.resolve() in [s.path.resolve() for s in chain]:
        cycle = " -> ".join(s.label for s in chain + (source,))
        raise ConfigError(f"circular inclusion {cycle}; remove one of these _base_ entries",
                          key="_base_", file=chain[-1].label)
    if not path.is_file():
        if including:
            raise ConfigError(f"no such file '{path}'; _base_ paths are relative to the including file",
                              key="_base_", file=including)
        raise ConfigError("no such config file; check the path", file=shown)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", file=shown) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file; configs are UTF-8 YAML", file=shown) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of keys to values, got {type(data).__name__}",
                          file=shown)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise ConfigError("_base_ must be a file path or a list of file paths", key="_base_", file=shown)
    merged = Config({}, {}, shown)
    for base in bases:
        try:  # a path relative to this file, or PLUGIN:NAME
            found = sources.locate(base, including=source)
        except ConfigError as err:
            raise ConfigError(f"{base}: {err.message}", key="_base_", file=shown) from None
        _merge(merged, _read(found, chain + (source,), shown))
    _merge(merged, Config(data, _mark(data, shown), shown))
    merged.path = shown
    return merged


def parse_overrides(overrides: Iterable[str]) -> Config:
    """`["model.quantizer.dim=64", ...]` as one nested config, values parsed as YAML."""
    data: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"'{item}' is not an override; write key.path=value", file=COMMAND_LINE)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw  # not YAML: take the text as a string
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"'{item}' sets a key inside '{p}', which another override sets to a value",
                                  file=COMMAND_LINE)
            node = nxt
        node[parts[-1]] = value
    return Config(data, _mark(data, COMMAND_LINE), COMMAND_LINE)


def load(path: str | Path, overrides: Iterable[str] = (), *, resolve: bool = True,
         defaults: Mapping[str, Any] | None = None) -> Config:
    """Read `path` (a file, or `PLUGIN:NAME` such as `tok-gaze:quick`: see `sources`) with its
    bases and overrides; validate and fill defaults if `resolve`.

    `defaults` is the lowest layer (a command's own defaults, like the default trainer).
    """
    cfg = _read(sources.locate(path), ())
    if defaults:
        base = Config(_copy(dict(defaults)), {}, cfg.path)
        _merge(base, cfg)
        base.path = cfg.path
        cfg = base
    ov = parse_overrides(overrides)
    for key in ov.data:  # an override must not turn a section into a scalar by accident
        if isinstance(cfg.data.get(key), dict) and not isinstance(ov.data[key], dict):
            raise ConfigError(f"'{key}' is a section; set one of its keys ({key}.KEY=VALUE)", file=COMMAND_LINE)
    _merge(cfg, ov)
    if resolve:
        cfg.data = resolve_config(cfg)
    return cfg


# -- validation --------------------------------------------------------------------------
def resolve_config(cfg: Config) -> dict[str, Any]:
    """The config validated against SCHEMA, every component's defaults filled in."""
    version = cfg.data.get("tokcore")
    if version is None:
        raise ConfigError(f"missing schema version; add 'tokcore: {SCHEMA_VERSION}' at the top", file=cfg.path)
    if version != SCHEMA_VERSION:
        raise cfg.error(("tokcore",), f"schema version {version!r} is not supported (this tokcore reads "
                                      f"version {SCHEMA_VERSION}); update tokcore or the config")
    check_requires(cfg)
    return _validate(cfg, cfg.data, SCHEMA, ())


def check_requires(cfg: Config) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    reqs = cfg.data.get("requires") or []
    if not (isinstance(reqs, list) and all(isinstance(r, str) for r in reqs)):
        raise cfg.error(("requires",), "must be a list of requirement strings like 'tok-gaze>=0.1'")
    for raw in reqs:
        try:
            req = Requirement(raw)
        except InvalidRequirement as exc:
            raise cfg.error(("requires",), f"'{raw}' is not a requirement ({exc})") from None
        try:
            installed = md.version(req.name)
        except md.PackageNotFoundError:
            raise cfg.error(("requires",), f"{req.name} is not installed: pip install '{raw}'") from None
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            raise cfg.error(("requires",), f"{req.name} {installed} is installed but the config requires "
                                           f"'{raw}': pip install -U '{raw}'")


def _validate(cfg: Config, node: Mapping[str, Any], schema: Mapping[str, Any], path: Path_) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        here = path + (str(key),)
        if key not in schema:
            close = did_you_mean(str(key), list(schema))
            fix = f"did you mean '{close}'?" if close else f"allowed here: {', '.join(schema)}"
            raise cfg.error(here, f"unknown key; {fix}")
        spec = schema[key]
        if isinstance(spec, Component):
            out[key] = _component(cfg, value, spec.kind, here)
        elif isinstance(spec, dict):
            if not isinstance(value, dict):
                raise cfg.error(here, f"must be a mapping with keys {', '.join(spec)}")
            out[key] = _validate(cfg, value, spec, here)
        elif dataclasses.is_dataclass(spec):
            if not isinstance(value, dict):
                raise cfg.error(here, "must be a mapping")
            out[key] = _params(cfg, spec, value, here, what=f"'{key}'")
        else:
            if not check_type(value, spec):
                raise cfg.error(here, f"expected {type_name(spec)}, got {type(value).__name__} {value!r}")
            out[key] = value
    return out


def _params(cfg: Config, cls: type, given: Mapping[str, Any], path: Path_, what: str) -> dict[str, Any]:
    try:
        return resolve_params(cls, given, what=what)
    except ConfigError as err:
        key = path + ((err.key,) if err.key in given else ("name",) if "name" in given else ())
        raise ConfigError(err.message, key=".".join(path + ((err.key,) if err.key else ())),
                          file=cfg.where(key)) from None


def _component(cfg: Config, value: Any, kind: str, path: Path_) -> dict[str, Any]:
    from tokcore import registry

    if not isinstance(value, dict):
        raise cfg.error(path, f"must be a {kind} config: a mapping with 'name' and its parameters")
    name = value.get("name")
    if not isinstance(name, str):
        raise cfg.error(path, f"missing 'name' (the registry name of a {kind}; see: tokcore list {registry.plural(kind)})")
    try:
        cls = registry.get(kind, name)
    except RegistryError as err:
        raise cfg.error(path + ("name",), str(err)) from None
    params = {k: v for k, v in value.items() if k != "name"}
    return {"name": name, **_params(cfg, cls, params, path, what=f"{kind} '{name}'")}


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, but lists of scalars on one line (`levels: [8, 5, 5, 5]`)."""

    def represent_list(self, data: list) -> yaml.Node:
        flow = all(not isinstance(v, (list, dict)) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


def dump(data: Mapping[str, Any]) -> str:
    return yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
