"""The progress display of long jobs (training steps, tokenized samples), written once.

On a terminal it is a tqdm bar (rate, ETA, a postfix such as the loss); elsewhere (a log
file, a SLURM job) a line every `every_s` seconds on stderr, or nothing when `every_s` is
None. Messages go through `write`, so they do not tear the bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Progress over `total` units of `unit` (e.g. "step", "sample").

    Args:
        total: units to do.
        enabled: show anything at all (only the main rank shows progress).
        desc: name shown before the figures.
        unit: what one unit is.
        initial: units already done (a resumed run).
        every_s: seconds between lines when stderr is not a terminal; None for no lines.
    """

    def __init__(self, total: int, enabled: bool = True, *, desc: str | None = None, unit: str = "it",
                 initial: int = 0, every_s: float | None = 30.0):
        self.total, self.enabled, self.desc, self.unit, self.every_s = total, enabled, desc, unit, every_s
        self.n = initial
        self.start = self.last = time.time()
        self.initial = initial
        self.postfix: dict[str, Any] = {}
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # a line now and then instead
                return
            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int) -> None:
        """`n` more units done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.every_s is not None and time.time() - self.last >= self.every_s:
            self.last = time.time()
            rate = (self.n - self.initial) / max(self.last - self.start, 1e-9)
            eta = (self.total - self.n) / rate if rate > 0 else float("inf")
            figures = "".join(f", {k} {v}" for k, v in self.postfix.items())
            print(f"{self.desc or 'progress'}: {self.n}/{self.total} {self.unit}s, {rate:.3g}/s, ETA {eta:.0f}s{figures}",
                  file=sys.stderr, flush=True)

    def resume_at(self, n: int) -> None:
        """Units done before this process started (a resumed run): shown, not counted in the rate."""
        self.initial = n
        self.advance_to(n)

    def advance_to(self, n: int) -> None:
        """Units done so far (training counts steps, not increments)."""
        self.update(n - self.n)

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the bar, or at the end of each line (e.g. loss=...)."""
        self.postfix.update(values)
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def write(self, text: str) -> None:
        """A message line on stdout, printed above the bar when there is one."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
