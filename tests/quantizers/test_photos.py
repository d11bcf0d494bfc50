"""On patches of real photos, dead-code restarts keep a small VQ's codebook in use, where
the same VQ without restarts collapses onto a few codes."""

import numpy as np
import pytest
import torch

from tokcore.builtins.quantizers import VQ

skimage_data = pytest.importorskip("skimage.data")


def photo_patches(size=4):
    """Non-overlapping RGB patches of three photos, flattened to (N, 3 * size * size) in [0, 1]."""
    out = []
    for image in (skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee()):
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        x = x.unfold(1, size, size).unfold(2, size, size)  # (3, H/size, W/size, size, size)
        out.append(x.permute(1, 2, 0, 3, 4).reshape(-1, 3 * size * size))
    return torch.cat(out)


def final_usage(restart: bool, patches: torch.Tensor) -> float:
    torch.manual_seed(0)
    q = VQ(dim=patches.shape[1], codebook_size=64, kmeans_init=False, decay=0.9,
           dead_after_steps=5, restart_dead_codes=restart)
    batches = torch.Generator().manual_seed(1)
    for _ in range(100):
        q(patches[torch.randint(len(patches), (1024,), generator=batches)])
    return float(q.eval()(patches).stats["usage"])  # fraction of codes used on all patches


def test_restarts_keep_codebook_usage_on_real_photos():
    patches = photo_patches()
    with_restarts, without = final_usage(True, patches), final_usage(False, patches)
    assert with_restarts >= 0.95
    assert without < 0.5, "the baseline should collapse, else this test shows nothing"
