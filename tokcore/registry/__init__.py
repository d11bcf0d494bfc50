"""The component registry: every encoder, quantizer, decoder, ... by name.

Components are found through Python entry points, one group per kind
(`tokcore.quantizers`, ...), entry name = registry name, value = `module:Class`. Core's
built-ins are registered the same way as third-party plugins, so there is one mechanism.

Listing reads package metadata only: no component module is imported (and so no torch)
until `get` or `build` asks for that one component. A plugin whose module fails to import
is reported and the rest keep working; a plugin whose declared `tokcore` requirement does
not admit the running tokcore is disabled, with the reason.

Environment switches (read when the registry is first used):
    TOKCORE_PLUGINS=tok-gaze,tok-camera   load only these plugin distributions
    TOKCORE_PLUGINS=none                   load no plugins, only tokcore's built-ins
    TOKCORE_DISABLE_PLUGINS=tok-rgb        never load these

Use `scope()` in tests for a temporary registry that in-process `register` calls change.
"""

from __future__ import annotations

import builtins
import contextlib
import fnmatch
import importlib
import importlib.metadata as md
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from tokcore._version import __version__
from tokcore.errors import PluginLoadError, RegistryError
from tokcore.registry.catalog import FIRST_PARTY, RENAMED
from tokcore.registry.names import did_you_mean

CORE_DIST = "tokcore"
KINDS = ("encoder", "quantizer", "decoder", "loss", "trainer", "dataset", "modality", "baseline", "importer")
HOOK_GROUP = "tokcore.plugins"
LOCAL_DIST = "<local>"  # provider name of components registered in-process

# The interface each kind must implement, as `module:attr` so that listing imports nothing.
_INTERFACES = {
    "encoder": "tokcore.interfaces:Encoder",
    "quantizer": "tokcore.interfaces:Quantizer",
    "decoder": "tokcore.interfaces:Decoder",
    "loss": "tokcore.interfaces:Loss",
    "trainer": "tokcore.interfaces:Trainer",
    "dataset": "tokcore.interfaces.data:Dataset",
    "modality": "tokcore.interfaces.modality:Modality",
    "baseline": "tokcore.interfaces.evaluation:Baseline",
    "importer": "tokcore.run.importing:Importer",
}


_PLURALS = {"loss": "losses", "modality": "modalities"}


def plural(kind: str) -> str:
    return _PLURALS.get(kind, kind + "s")


def group_of(kind: str) -> str:
    return f"tokcore.{plural(normalize_kind(kind))}"


def normalize_kind(kind: str) -> str:
    """`quantizers` or `quantizer` -> `quantizer`; anything else is an error."""
    k = kind.strip().lower()
    if k in KINDS:
        return k
    for kind_ in KINDS:
        if k == plural(kind_):
            return kind_
    hint = did_you_mean(k, KINDS) or did_you_mean(k, [plural(kind_) for kind_ in KINDS])
    fix = f"; did you mean '{normalize_kind(hint)}'?" if hint else f"; kinds are: {', '.join(KINDS)}"
    raise RegistryError(f"unknown component kind '{kind}'{fix}")


def _load_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Provider:
    """The distribution that provides a component."""

    dist: str
    version: str

    def __str__(self) -> str:
        return f"{self.dist} {self.version}".strip()


@dataclass
class Entry:
    """One registered component; `target` is imported only by `load`."""

    kind: str
    name: str
    target: str
    provider: Provider
    obj: Any = None  # set for in-process registrations, and once loaded

    @property
    def qualified_name(self) -> str:
        return f"{self.provider.dist}:{self.name}"

    def load(self) -> Any:
        if self.obj is None:
            self.obj = _load_target(self.target)
        return self.obj


@dataclass
class Plugin:
    """One distribution that registers components or hooks, and whether it is usable.

    status: "ok", "disabled" (by an environment switch), "incompatible" (its tokcore
    requirement excludes the running tokcore) or "failed" (a module did not import).
    """

    dist: str
    version: str
    status: str = "ok"
    reason: str = ""
    entries: builtins.list[Entry] = field(default_factory=builtins.list)
    hooks: builtins.list[str] = field(default_factory=builtins.list)  # `module` targets

    @property
    def enabled(self) -> bool:
        return self.status in ("ok", "failed")  # a failed import disables one entry, not all

    def components(self) -> dict[str, builtins.list[str]]:
        out: dict[str, builtins.list[str]] = {}
        for e in self.entries:
            out.setdefault(e.kind, []).append(e.name)
        return {k: sorted(v) for k, v in out.items()}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _env_list(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    names = {_canonical(n) for n in raw.split(",") if n.strip()}
    return set() if names <= {"none"} else names


_CORE_REQUIREMENT = re.compile(r"^\s*tokcore\s*(?:\[[^\]]*\])?\s*\(?([^;()]*)\)?\s*(?:;(.*))?$", re.I)


def _incompatibility(dist: md.Distribution) -> str:
    """Why `dist` cannot run with this tokcore, from its metadata; "" if it can.

    Parsed with a regex and `packaging.specifiers` rather than `packaging.requirements`,
    whose import alone would cost `tokcore list` a third of its time budget.
    """
    for raw in dist.requires or ():
        m = _CORE_REQUIREMENT.match(raw)
        if not m or (m.group(2) and "extra" in m.group(2)):  # not tokcore, or only for an extra
            continue
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            spec = SpecifierSet(m.group(1).strip())
        except InvalidSpecifier:
            continue
        if not spec.contains(__version__, prereleases=True):
            name = dist.metadata["Name"]
            return (f"{name} {dist.version} requires tokcore{spec}, but tokcore "
                    f"{__version__} is installed: pip install -U {name}")
    return ""


def discover() -> builtins.list[Plugin]:
    """All distributions with tokcore entry points, from installed metadata only."""
    allow = _env_list("TOKCORE_PLUGINS")
    block = _env_list("TOKCORE_DISABLE_PLUGINS") or set()
    groups = {group_of(k): k for k in KINDS}
    plugins: dict[str, Plugin] = {}
    for dist in md.distributions():
        eps = [ep for ep in dist.entry_points if ep.group in groups or ep.group == HOOK_GROUP]
        dist_name = dist.metadata["Name"] or ""
        key = _canonical(dist_name)
        if not eps or key in plugins:  # the first one on sys.path wins, as for imports
            continue
        plugin = plugins[key] = Plugin(dist_name, dist.version)
        if key != CORE_DIST:
            if key in block or (allow is not None and key not in allow):
                plugin.status, plugin.reason = "disabled", "disabled by TOKCORE_PLUGINS/TOKCORE_DISABLE_PLUGINS"
            elif why := _incompatibility(dist):
                plugin.status, plugin.reason = "incompatible", why
        for ep in eps:
            if ep.group == HOOK_GROUP:
                plugin.hooks.append(ep.value)
            else:
                plugin.entries.append(Entry(groups[ep.group], ep.name, ep.value, Provider(dist_name, dist.version)))
    core_first = sorted(plugins.values(), key=lambda p: (_canonical(p.dist) != CORE_DIST, _canonical(p.dist)))
    return core_first


class Registry:
    """Components by kind and name; see the module docstring."""

    def __init__(self, plugins: builtins.list[Plugin] | None = None):
        self._plugins = plugins if plugins is not None else discover()
        self._local = Plugin(LOCAL_DIST, "")
        self._aliases: dict[tuple[str, str], str] = {}
        self._hook_aliases: dict[tuple[str, str], str] | None = None

    def copy(self) -> "Registry":
        new = Registry(self._plugins)
        new._local.entries = builtins.list(self._local.entries)
        new._local.hooks = builtins.list(self._local.hooks)
        new._aliases = dict(self._aliases)
        return new

    # -- what is there -------------------------------------------------------------------
    def plugins(self) -> builtins.list[Plugin]:
        extra = [self._local] if (self._local.entries or self._local.hooks) else []
        return self._plugins + extra

    def kinds(self) -> tuple[str, ...]:
        return KINDS

    def entries(self, kind: str | None = None) -> builtins.list[Entry]:
        kinds = KINDS if kind is None else (normalize_kind(kind),)
        return [e for p in self.plugins() if p.enabled for e in p.entries if e.kind in kinds]

    def list(self, kind: str | None = None, pattern: str | None = None) -> builtins.list[str]:
        """Sorted names of one kind (or all kinds), optionally filtered by an fnmatch pattern.

        A name provided by two distributions appears once per provider as `dist:name`.
        """
        if kind is None:
            return sorted({n for k in KINDS for n in self.list(k, pattern)})
        entries = self.entries(kind)
        counts: dict[str, int] = {}
        for e in entries:
            counts[e.name] = counts.get(e.name, 0) + 1
        names = {e.name if counts[e.name] == 1 else e.qualified_name for e in entries}
        if pattern:
            names = {n for n in names if fnmatch.fnmatchcase(n.split(":")[-1], pattern) or fnmatch.fnmatchcase(n, pattern)}
        return sorted(names)

    def hook_modules(self) -> builtins.list[tuple[Plugin, str]]:
        return [(p, h) for p in self.plugins() if p.enabled for h in p.hooks]

    # -- lookup --------------------------------------------------------------------------
    def entry(self, kind: str, name: str) -> Entry:
        kind = normalize_kind(kind)
        dist, _, bare = name.rpartition(":")
        matches = [e for e in self.entries(kind)
                   if e.name == bare and (not dist or _canonical(e.provider.dist) == _canonical(dist))]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            options = " or ".join(f"'{e.qualified_name}'" for e in matches)
            who = " and ".join(str(e.provider) for e in matches)
            raise RegistryError(f"{kind} '{bare}' is provided by both {who}; write {options}")
        new = self.renamed(kind).get(bare)
        if new is not None:
            # A rename must not orphan the configs and saved runs (tokenizer.json) that
            # record the old name: resolve it, and say what to write instead.
            warnings.warn(f"{kind} '{bare}' was renamed '{new}'; write '{new}' (the old name keeps "
                          "working for configs and saved runs)", FutureWarning, stacklevel=3)
            return self.entry(kind, f"{dist}:{new}" if dist else new)
        raise RegistryError(self._unknown(kind, bare, dist))

    def renamed(self, kind: str) -> dict[str, str]:
        """Old name -> new name of the renamed components of `kind`: first-party renames
        (`catalog.RENAMED`), plugins' (hook `tokcore_register_aliases`, asked only now, on a
        name that is not registered) and in-process `alias` calls."""
        kind = normalize_kind(kind)
        if self._hook_aliases is None:
            self._hook_aliases = {}
            if self.hook_modules():
                from tokcore.registry.hooks import plugin_manager

                pm, _ = plugin_manager(self)
                pm.hook.tokcore_register_aliases(alias=lambda k, old, new: self._hook_aliases.__setitem__(
                    (normalize_kind(k), old), new))
        table = {**RENAMED, **self._hook_aliases, **self._aliases}
        return {old: new for (k, old), new in table.items() if k == kind}

    def alias(self, kind: str, old: str, new: str) -> None:
        """Resolve the name `old` of `kind` to the component `new`, with a warning."""
        self._aliases[(normalize_kind(kind), old)] = new

    def _unknown(self, kind: str, name: str, dist: str) -> str:
        for p in self._plugins:  # known but switched off, or incompatible
            if not p.enabled and any(e.kind == kind and e.name == name for e in p.entries):
                return f"{kind} '{name}' is provided by {p.dist} {p.version}, which is {p.status}: {p.reason}"
        owner = FIRST_PARTY.get((kind, name))
        if owner and not any(_canonical(p.dist) == owner for p in self._plugins):
            return f"{kind} '{name}' is provided by {owner}, which is not installed: pip install {owner}"
        if dist:
            return f"no {kind} '{name}' from distribution '{dist}'; {plural(kind)} named '{name}': " + (
                ", ".join(e.qualified_name for e in self.entries(kind) if e.name == name) or "none")
        available = {e.name: e for e in self.entries(kind)}
        close = did_you_mean(name, builtins.list(available))
        if close:
            return f"unknown {kind} '{name}'; did you mean '{close}' ({available[close].provider})?"
        if available:
            shown = ", ".join(sorted(available)[:12]) + (", ..." if len(available) > 12 else "")
            return f"unknown {kind} '{name}'; available: {shown} (tokcore list {plural(kind)})"
        return f"unknown {kind} '{name}'; no {plural(kind)} are installed (tokcore plugins)"

    def get(self, kind: str, name: str) -> Any:
        """The component class, imported now; a failing import is reported, not fatal to others."""
        kind = normalize_kind(kind)
        entry = self.entry(kind, name)
        try:
            obj = entry.load()
        except Exception as exc:  # isolate a broken plugin: report it, keep the rest usable
            raise PluginLoadError(
                f"{kind} '{entry.name}' from {entry.provider} failed to import ({entry.target}): "
                f"{type(exc).__name__}: {exc}; reinstall or disable it (TOKCORE_DISABLE_PLUGINS={entry.provider.dist})"
            ) from exc
        base = _load_target(_INTERFACES[kind])
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginLoadError(
                f"{kind} '{entry.name}' from {entry.provider}: {entry.target} is not a subclass of "
                f"{base.__module__.split('.')[0]}.{base.__name__}")
        return obj

    def provider(self, kind: str, name: str) -> Provider:
        return self.entry(kind, name).provider

    def build(self, kind: str, config: Mapping[str, Any]) -> Any:
        """Instantiate a component from `{"name": ..., **parameters}`, parameters validated."""
        from tokcore.registry.params import resolve_params

        kind = normalize_kind(kind)
        params = dict(config)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise RegistryError(f"{kind} config needs 'name' (one of: tokcore list {plural(kind)})")
        cls = self.get(kind, name)
        return cls(**resolve_params(cls, params, what=f"{kind} '{name}'"))

    # -- in-process registration (tests, notebooks) ---------------------------------------
    def register(self, kind: str, name: str, obj: Any, *, dist: str = LOCAL_DIST, version: str = "") -> Entry:
        """Register a class (or `module:Class` string) under `name`; see `scope()` for tests."""
        kind = normalize_kind(kind)
        target = obj if isinstance(obj, str) else f"{obj.__module__}:{obj.__qualname__}"
        entry = Entry(kind, name, target, Provider(dist, version), None if isinstance(obj, str) else obj)
        self._local.entries.append(entry)
        return entry

    def register_hooks(self, module: str) -> None:
        self._local.hooks.append(module)


_current: Registry | None = None


def current() -> Registry:
    global _current
    if _current is None:
        _current = Registry()
    return _current


@contextlib.contextmanager
def scope(*, fresh: bool = False) -> Iterator[Registry]:
    """A temporary registry: a copy of the current one (or re-discovered when `fresh`)."""
    global _current
    saved = _current
    _current = Registry() if fresh else current().copy()
    try:
        yield _current
    finally:
        _current = saved


# Module-level API: tokcore.registry.list("quantizer"), tokcore.registry.build(...), ...
def kinds() -> tuple[str, ...]:
    return KINDS


def list(kind: str | None = None, pattern: str | None = None) -> builtins.list[str]:  # noqa: A001
    return current().list(kind, pattern)


def get(kind: str, name: str) -> Any:
    return current().get(kind, name)


def build(kind: str, config: Mapping[str, Any]) -> Any:
    return current().build(kind, config)


def provider(kind: str, name: str) -> Provider:
    return current().provider(kind, name)


def register(kind: str, name: str, obj: Any, **kw: Any) -> Entry:
    return current().register(kind, name, obj, **kw)


def alias(kind: str, old: str, new: str) -> None:
    current().alias(kind, old, new)


def plugins() -> builtins.list[Plugin]:
    return current().plugins()
