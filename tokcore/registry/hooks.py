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


def register_report_command(register: Any, name: str, help: str, report: str, what: str) -> None:
    """Register `tokcore NAME --run DIR [--output DIR] [--split S]`, calling
    `report(run, output, split)` (given as `module:function`, imported only when it runs).
    For plugins' held-out reports (`tokcore gaze-report`, `tokcore camera-report`)."""

    def configure(p: Any) -> None:
        p.add_argument("--run", required=True, metavar="DIR", help=f"a run directory of a {what} tokenizer")
        p.add_argument("--output", metavar="DIR", help="where to write the plot and metrics (default: RUN/report)")
        p.add_argument("--split", default="val", help="which split of the run's dataset (default: val)")

    def run(args: Any) -> int:
        module, _, function = report.partition(":")
        getattr(importlib.import_module(module), function)(args.run, args.output, args.split)
        return 0

    register(name, help, configure, run)
