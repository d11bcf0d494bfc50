"""Pictures of depth maps: input, reconstruction and error, holes shown (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tokcore.api import atomic_write_figure


def plot_depth(target: np.ndarray, recon: np.ndarray, valid: np.ndarray, path: Path, max_images: int = 6,
               titles: list[str] | None = None) -> Path:
    """One row per image (at most `max_images`): the input with its holes in grey, the
    reconstruction (dense: the decoder fills holes too), the reconstruction where the input
    is valid, and the relative error |recon - input| / input on valid pixels (holes grey).

    Args:
        target: input depths `(B, H, W)`.
        recon: reconstructed depths `(B, H, W)`.
        valid: the input's valid pixels `(B, H, W)`.
        path: the PNG to write.
        max_images: rows drawn at most.
        titles: a label per image (its key), or None.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(max_images, len(target))
    depth_cmap = matplotlib.colormaps["turbo_r"].with_extremes(bad="0.55")
    error_cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.55")
    fig, axes = plt.subplots(n, 4, figsize=(11, 2.6 * n), squeeze=False)
    for i in range(n):
        ok = valid[i]
        lo, hi = (np.percentile(target[i][ok], [1, 99]) if ok.any() else (0.0, 1.0))
        holes = np.where(ok, target[i], np.nan)
        err = np.where(ok, np.abs(recon[i] - target[i]) / np.where(ok, target[i], 1.0), np.nan)
        panels = [(holes, depth_cmap, lo, hi), (recon[i], depth_cmap, lo, hi),
                  (np.where(ok, recon[i], np.nan), depth_cmap, lo, hi), (err, error_cmap, 0.0, 0.1)]
        for ax, (img, cmap, vmin, vmax) in zip(axes[i], panels):
            shown = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(axes[i, 2].images[0], ax=axes[i, 2], fraction=0.046, pad=0.02, label="depth")
        fig.colorbar(shown, ax=axes[i, 3], fraction=0.046, pad=0.02, label="abs. rel. error")
        label = titles[i] if titles else f"image {i}"
        axes[i, 0].set_ylabel(f"{label}\n{100 * ok.mean():.0f}% valid", fontsize="small")
    for ax, title in zip(axes[0], ["input (holes grey)", "reconstruction", "reconstruction on valid",
                                   "|error| / depth (holes grey)"]):
        ax.set_title(title, fontsize="small")
    fig.tight_layout()
    return atomic_write_figure(fig, path)
