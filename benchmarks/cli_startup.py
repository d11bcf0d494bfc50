"""Cold-start time of `tokcore list` next to `python -c pass`, measured in the same run.

    python benchmarks/cli_startup.py [--repeats 15]

`tokcore list` reads package metadata only; the target is under 0.3 s above a bare
interpreter start. The script also reports `tokcore list quantizers`, `tokcore plugins` and
`import torch` (what listing would cost if it imported components) for scale.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_seconds(cmd: list[str], repeats: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache once
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("tokcore") or "tokcore"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "tokcore list": [exe, "list"],
        "tokcore list quantizers": [exe, "list", "quantizers"],
        "tokcore plugins": [exe, "plugins"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    results = {name: median_seconds(cmd, args.repeats) for name, cmd in cases.items()}
    base = results["python -c pass"]
    print(f"{'command':28s} {'median s':>9s} {'above python':>13s} {'x python':>9s}")
    for name, sec in results.items():
        print(f"{name:28s} {sec:9.3f} {sec - base:+13.3f} {sec / base:9.2f}")
    over = results["tokcore list"] - base
    print(f"\ntokcore list: {over:+.3f} s above a bare interpreter (target < 0.300 s): {'met' if over < 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
