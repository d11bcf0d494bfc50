"""tok-gaze's CLI command (entry-point group `tokcore.plugins`): `tokcore gaze-report`.
Importing this module imports neither torch nor the report code; running the command does."""

from __future__ import annotations

from typing import Any

import tokcore
from tokcore.api import register_report_command


@tokcore.hookimpl
def tokcore_register_commands(register: Any) -> None:
    register_report_command(register, "gaze-report", "held-out metrics of a gaze tokenizer against a DCT codec of "
                            "the same bits, and plots", "tok_gaze.report:report", "gaze")
