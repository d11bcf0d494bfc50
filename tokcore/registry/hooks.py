"""The pluggy manager for hook modules (entry-point group `tokcore.plugins`).

Hook modules are imported only when hooks are needed (a plugin command, training), never by
`tokcore list`. A module that fails to import is reported and skipped; the rest still load.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pluggy

from tokcore import registry
from tokcore.registry import hookspecs


@dataclass
class HookFailure:
    dist: str
    module: str
    error: str


def plugin_manager(reg: registry.Registry | None = None) -> tuple[pluggy.PluginManager, list[HookFailure]]:
    """A manager with every enabled hook module registered, and the ones that failed."""
    reg = reg or registry.current()
    pm = pluggy.PluginManager("tokcore")
    pm.add_hookspecs(hookspecs)
    failures: list[HookFailure] = []
    for plugin, module in reg.hook_modules():
        try:
            pm.register(importlib.import_module(module), name=f"{plugin.dist}:{module}")
        except Exception as exc:  # isolate: one broken hook module must not break the rest
            failures.append(HookFailure(plugin.dist, module, f"{type(exc).__name__}: {exc}"))
    return pm, failures


