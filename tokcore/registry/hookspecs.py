"""Hooks for behaviour that is not a component: extra CLI commands, training events.

A plugin lists a module under the entry-point group `tokcore.plugins`; functions in it
decorated with `tokcore.hookimpl` and named like the specs below are called by tokcore.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tokcore")
hookimpl = pluggy.HookimplMarker("tokcore")


@hookspec
def tokcore_register_commands(register: Any) -> None:
    """Add CLI commands: call `register(name, help, configure, run)` once per command.

    `configure(parser)` adds the command's arguments to an argparse parser; `run(args)`
    does the work and returns an exit code (or None for 0).
    """


@hookspec
def tokcore_train_start(run: Any) -> None:
    """Training is about to start; `run` holds the config, the model and the run directory."""


@hookspec
def tokcore_train_step_end(run: Any, step: int, metrics: dict[str, float]) -> None:
    """An optimizer step finished (called on every rank; check `run.rank` to act once)."""


@hookspec
def tokcore_checkpoint_saved(run: Any, step: int, path: str) -> None:
    """A checkpoint directory was written completely."""


@hookspec
def tokcore_train_end(run: Any, metrics: dict[str, float]) -> None:
    """Training finished (or stopped by the NaN guard; `metrics` says which)."""


@hookspec
def tokcore_register_aliases(alias: Any) -> None:
    """Declare renamed components: call `alias(kind, old_name, new_name)` once per rename, so
    configs and saved runs (tokenizer.json) that name the old one keep loading. Asked only
    when a name is not registered."""
