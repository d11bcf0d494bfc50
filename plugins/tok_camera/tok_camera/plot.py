"""Pictures of camera trajectories: input against reconstruction (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcore.api import atomic_write_figure


def plot_trajectories(target: np.ndarray, recon: np.ndarray, path: Path,
                      extra: dict[str, np.ndarray] | None = None, max_clips: int = 4) -> Path:
    """One row per clip (at most `max_clips`): the camera path seen from above (x, z: the
    first frame's right and forward axes, OpenCV convention) with viewing directions, -y
    over time (up in the first frame's camera axes, tilted when that camera looks down), and
    the yaw over time. Poses `(B, T, 4, 4)`,
    relative to the first frame; `extra`: further reconstructions by name, drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_clips, len(target))
    fig, axes = plt.subplots(n, 3, figsize=(13, 3.4 * n), squeeze=False)
    series = {"input": target, "reconstruction": recon, **(extra or {})}
    styles = {"input": dict(color="black", lw=1.8), "reconstruction": dict(color="tab:red", lw=1.2)}
    for i in range(n):
        span = np.ptp(target[i, :, :3, 3], axis=0).max() + 1e-3
        for name, poses in series.items():
            style = styles.get(name, dict(lw=1.0, ls="--"))
            pos, fwd = poses[i, :, :3, 3], poses[i, :, :3, 2]
            axes[i, 0].plot(pos[:, 0], pos[:, 2], label=name, **style)
            every = slice(None, None, max(1, len(pos) // 10))
            if name != "input" and name != "reconstruction":
                continue
            axes[i, 0].quiver(pos[every, 0], pos[every, 2], fwd[every, 0], fwd[every, 2], color=style["color"],
                              angles="xy", scale_units="xy", scale=8 / span, width=0.004, alpha=0.6)
        for name, poses in series.items():
            style = styles.get(name, dict(lw=1.0, ls="--"))
            axes[i, 1].plot(-poses[i, :, 1, 3] * 100, label=name, **style)
            yaw = np.degrees(np.unwrap(np.arctan2(poses[i, :, 0, 2], poses[i, :, 2, 2])))
            axes[i, 2].plot(yaw, label=name, **style)
        axes[i, 0].set_aspect("equal", adjustable="datalim")
        axes[i, 0].set_xlabel("x (m)")
        axes[i, 0].set_ylabel(f"clip {i}\nz (m)")
        axes[i, 1].set_xlabel("frame")
        axes[i, 2].set_xlabel("frame")
    axes[0, 0].set_title("path from above, with viewing direction")
    axes[0, 1].set_title("-y in the first frame's camera axes (cm)")
    axes[0, 2].set_title("yaw (deg)")
    axes[0, 0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    return atomic_write_figure(fig, path)
