"""Pictures of gaze tracks: input against reconstruction (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcore.api import atomic_write_figure


def plot_gaze(target: np.ndarray, recon: np.ndarray, path: Path, extra: dict[str, np.ndarray] | None = None,
              max_clips: int = 4) -> Path:
    """One row per clip (at most `max_clips`): x(t), y(t), and the path in the image (y down).
    `target`/`recon`: (B, T, 2) normalized coordinates, NaN frames drawn as gaps; `extra`:
    further reconstructions by name (a baseline), drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_clips, len(target))
    fig, axes = plt.subplots(n, 3, figsize=(12, 3 * n), squeeze=False)
    series = {"input": target, "reconstruction": recon, **(extra or {})}
    styles = {"input": dict(color="black", lw=1.5), "reconstruction": dict(color="tab:red", lw=1.2)}
    for i in range(n):
        valid = np.isfinite(target[i]).all(-1)
        for name, arr in series.items():
            y = np.where(valid[:, None], arr[i], np.nan) if name != "input" else arr[i]
            style = styles.get(name, dict(lw=1.0, ls="--"))
            axes[i, 0].plot(y[:, 0], label=name, **style)
            axes[i, 1].plot(y[:, 1], label=name, **style)
            axes[i, 2].plot(y[:, 0], y[:, 1], marker=".", ms=3, label=name, **style)
        axes[i, 0].set_ylabel(f"clip {i}")
        for ax in axes[i, :2]:
            ax.set_ylim(0, 1)
            ax.set_xlabel("frame")
        axes[i, 2].set_xlim(0, 1)
        axes[i, 2].set_ylim(1, 0)  # image convention: y down
        axes[i, 2].set_aspect("equal")
    axes[0, 0].set_title("x (normalized)")
    axes[0, 1].set_title("y (normalized)")
    axes[0, 2].set_title("gaze path in the image")
    axes[0, 2].legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    return atomic_write_figure(fig, path)
