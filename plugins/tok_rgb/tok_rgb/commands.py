"""tok-rgb's CLI command (entry-point group `tokcore.plugins`): `tokcore rgb-report`.
Importing this module imports neither torch nor the report code; running the command does."""

from __future__ import annotations

from typing import Any

import tokcore
from tokcore.api import register_report_command


@tokcore.hookimpl
def tokcore_register_commands(register: Any) -> None:
    register_report_command(register, "rgb-report", "held-out PSNR, SSIM and bits per pixel of an image tokenizer "
                            "against JPEG and bicubic resampling, and a picture grid", "tok_rgb.report:report", "image")
