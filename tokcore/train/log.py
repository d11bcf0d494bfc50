"""Where training figures go: metrics.jsonl, TensorBoard (when installed), a progress bar.

Only rank 0 writes. metrics.jsonl is an append-only log with one JSON object per line,
flushed after each line, so a killed run loses at most the line being written (readers skip
a truncated last line).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from tokcore.runtime.progress import Progress


def format_value(value: Any) -> str:
    """A metric as a person reads it: integers (and integral floats, such as a vocabulary
    size averaged over ranks) as integers, other floats to 4 significant digits (with one
    decimal from 10^4 up, never in exponent notation there)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    if 1e4 <= abs(value) < 1e15:
        return f"{value:.1f}"
    return f"{value:.4g}"


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """`name value, name value, ...` (see `format_value`)."""
    return ", ".join(f"{k} {format_value(v)}" for k, v in metrics.items())


class MetricsLog:
    def __init__(self, run: Path, total_steps: int, start_step: int, enabled: bool):
        self.enabled = enabled
        # `time` counts the run's training time: a resumed run continues from the last time
        # its log recorded (the lines of steps it will redo are already gone), not from zero
        self.start = time.time() - (_last_time(run) if enabled else 0.0)
        self.file = open(run / "metrics.jsonl", "a", encoding="utf-8") if enabled else None
        self.tb = None
        # a bar with the loss and steps/s on a terminal; a line every 30 s elsewhere (a pipe, a log file)
        self.progress = Progress(total_steps, enabled, desc="train", unit="step", initial=start_step, every_s=30.0)
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"))
        except ImportError:  # tensorboard is optional
            pass

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time() - self.start, 3), **metrics}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, step)
        if "loss" in metrics:
            self.progress.set_postfix(loss=format_value(metrics["loss"]))

    def advance(self, step: int) -> None:
        self.progress.advance_to(step)

    def message(self, text: str) -> None:
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()
        if self.tb is not None:
            self.tb.close()
        if self.file is not None:
            self.file.close()


def _last_time(run: Path) -> float:
    """The latest `time` in a run's metrics.jsonl (0 when there is none)."""
    times = [r["time"] for r in read_metrics(run) if isinstance(r.get("time"), (int, float))]
    return max(times, default=0.0)


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl (a truncated last line is skipped)."""
    rows = []
    path = Path(run) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
