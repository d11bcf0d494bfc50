"""tok-camera's CLI command (entry-point group `tokcore.plugins`): `tokcore camera-report`.
Importing this module imports neither torch nor the report code; running the command does."""

from __future__ import annotations

import argparse
from typing import Any

import tokcore


def configure(p: argparse.ArgumentParser) -> None:
    # dest is not "run": the CLI keeps each command's function in args.run
    p.add_argument("--run", dest="run_dir", required=True, metavar="DIR", help="a run directory of a camera tokenizer")
    p.add_argument("--output", metavar="DIR", help="where to write the plot and metrics (default: RUN/report)")
    p.add_argument("--split", default="val", help="which split of the run's dataset (default: val)")


def run(args: argparse.Namespace) -> int:
    from tok_camera.report import report

    report(args.run_dir, args.output, args.split)
    return 0


@tokcore.hookimpl
def tokcore_register_commands(register: Any) -> None:
    register("camera-report", "held-out metrics of a camera tokenizer against a DCT codec of the same bits, "
             "and plots", configure, run)
