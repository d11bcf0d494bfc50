"""Where a config comes from: a file path, or `PLUGIN:NAME`, a config shipped inside a plugin.

`tok-gaze:quick` is the file `configs/quick.yaml` inside the import package of the installed
distribution `tok-gaze` (package data, so a wheel carries it); `tokcore:NAME` names core's own
examples in `tokcore/configs/`. A path that exists always wins over that reading, so a local
file called `tok-gaze:quick` is still read as a file.

The package of a distribution comes from its metadata (the modules of its tokcore entry points,
then `top_level.txt`), and its folder from `importlib.util.find_spec`, so finding a config
imports nothing of the plugin (and no torch).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from tokcore.errors import ConfigError
from tokcore.registry.names import did_you_mean

CORE = "tokcore"
FOLDER = "configs"  # inside the plugin's import package
SUFFIX = ".yaml"
_SPEC = re.compile(r"^(?P<plugin>[A-Za-z0-9][A-Za-z0-9._-]*):(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$")


@dataclass(frozen=True)
class Source:
    """A config file to read, and how errors and provenance name it."""

    path: Path
    label: str  # the path as given, or `tok-gaze:quick`
    plugin: str = ""  # the distribution that ships it, if it is a packaged config


def canonical(dist: str) -> str:
    """`Tok_Gaze` -> `tok-gaze` (PEP 503)."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def parse(spec: str) -> tuple[str, str] | None:
    """`("tok-gaze", "quick")` for `tok-gaze:quick` (a trailing `.yaml` is allowed), else None."""
    m = _SPEC.match(spec)
    if not m:
        return None
    name = m["name"][: -len(SUFFIX)] if m["name"].endswith(SUFFIX) else m["name"]
    return canonical(m["plugin"]), name


def locate(spec: str | Path, *, including: Source | None = None) -> Source:
    """The file `spec` names: an existing path (relative to the folder of `including`, the
    config whose `_base_` names it), else `PLUGIN:NAME`, else the path as given (its reader
    reports it missing). A file beside a packaged config is named as packaged too."""
    if isinstance(spec, Path):
        return Source(spec, str(spec))
    path = including.path.parent / spec if including is not None else Path(spec)
    parsed = None if path.exists() else parse(spec)
    if parsed is not None:
        return packaged(*parsed)
    if including is not None and including.plugin and path.parent == including.path.parent and path.suffix == SUFFIX:
        return Source(path, f"{including.plugin}:{path.stem}", including.plugin)
    return Source(path, str(path))


def packaged(plugin: str, name: str) -> Source:
    """The config `name` shipped by the installed distribution `plugin`."""
    plugin = canonical(plugin)
    label = f"{plugin}:{name}"
    folder = config_folder(plugin, label)
    path = folder / f"{name}{SUFFIX}" if folder is not None else None
    if path is None or not path.is_file():
        known = names(plugin)
        if not known:
            raise ConfigError(f"{plugin} ships no configs; give a config file's path", file=label)
        close = did_you_mean(name, known, cutoff=0.75)
        hint = f"; did you mean '{close}'?" if close else ""
        raise ConfigError(f"{plugin} has no config '{name}'{hint} (its configs: {', '.join(known)})", file=label)
    return Source(path, label, plugin)


def run_name(spec: str | Path) -> str:
    """The default run directory name: `tok-gaze-quick` for `tok-gaze:quick` (the plugin
    prefix keeps every plugin's `quick` apart and needs no ':' in a folder name), the file's
    stem for a path."""
    if isinstance(spec, str) and not Path(spec).exists() and (parsed := parse(spec)):
        return f"{parsed[0]}-{parsed[1]}"
    return Path(spec).stem


def names(plugin: str) -> list[str]:
    """The config names `plugin` ships, sorted; [] if it ships none or is not installed."""
    try:
        folder = config_folder(plugin, "")
    except ConfigError:
        return []
    if folder is None:
        return []
    return sorted(p.name[: -len(SUFFIX)] for p in folder.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def available() -> dict[str, list[str]]:
    """Every installed plugin (and tokcore) that ships configs: distribution -> names."""
    out = {}
    for dist in sorted({canonical(d) for d in _plugin_dists()}, key=lambda d: (d != CORE, d)):
        if found := names(dist):
            out[dist] = found
    return out


# -- finding a distribution's configs folder -------------------------------------------------
def config_folder(plugin: str, label: str) -> Path | None:
    """`<package>/configs` of the installed distribution `plugin`, None if it has none.

    Raises a one-line ConfigError (with `label` as its file) when no such distribution is
    installed, or it is not a tokcore plugin."""
    plugin = canonical(plugin)
    try:
        dist = md.distribution(plugin)
    except md.PackageNotFoundError:
        raise ConfigError(_not_installed(plugin), file=label) from None
    packages = _packages(dist)
    if plugin != CORE and not _is_plugin(dist):
        raise ConfigError(f"'{dist.metadata['Name']}' is installed but is not a tokcore plugin "
                          "(tokcore plugins lists them)", file=label)
    for package in packages:
        for folder in _package_folders(package):
            if (folder / FOLDER).is_dir():
                return folder / FOLDER
    return None


def _not_installed(plugin: str) -> str:
    from tokcore.registry.catalog import FIRST_PARTY

    first_party = {canonical(d) for d in FIRST_PARTY.values()}
    if plugin in first_party:
        return f"{plugin} is not installed: pip install {plugin}"
    known = sorted({canonical(d) for d in _plugin_dists()} | first_party | {CORE})
    close = did_you_mean(plugin, known, cutoff=0.75)
    hint = f"; did you mean '{close}'?" if close else ""
    return f"no installed plugin '{plugin}'{hint} (tokcore plugins lists them)"


def _plugin_dists() -> list[str]:
    from tokcore import registry

    return [p.dist for p in registry.current().plugins()] + [CORE]


def _is_plugin(dist: md.Distribution) -> bool:
    return any(ep.group.startswith("tokcore.") for ep in dist.entry_points)


def _packages(dist: md.Distribution) -> list[str]:
    """The import packages of `dist`: those its tokcore entry points name, then its
    `top_level.txt`, then its name with '_' for '-'."""
    found = [ep.value.split(":")[0].strip().split(".")[0] for ep in dist.entry_points
             if ep.group.startswith("tokcore.")]
    found += (dist.read_text("top_level.txt") or "").split()
    found.append(canonical(dist.metadata["Name"] or "").replace("-", "_"))
    return list(dict.fromkeys(p for p in found if p.isidentifier()))


def _package_folders(package: str) -> list[Path]:
    """The folders of the top-level package `package`, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]
