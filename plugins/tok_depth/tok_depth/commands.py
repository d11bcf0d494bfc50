"""tok-depth's CLI command (entry-point group `tokcore.plugins`): `tokcore depth-report`.
Importing this module imports neither torch nor the report code; running the command does."""

from __future__ import annotations

from typing import Any

import tokcore
from tokcore.api import register_report_command


@tokcore.hookimpl
def tokcore_register_commands(register: Any) -> None:
    register_report_command(register, "depth-report", "held-out depth metrics (valid pixels only) of a depth "
                            "tokenizer against a log-depth grid codec of the same bits, and pictures", "tok_depth.report:report",
                            "depth")
