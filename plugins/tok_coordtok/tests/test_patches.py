"""Patches of a clip: the layout shared by the trainer's targets and the decoder's output."""

import torch
from tok_coordtok.patches import (
    all_patches,
    from_patches,
    gather_patches,
    random_patches,
    random_slabs,
    to_patches,
)


def test_to_and_from_patches_are_inverse():
    clip = torch.randn(2, 3, 8, 12, 16)
    patches = to_patches(clip, 2, 4)
    assert patches.shape == (2, 4, 3, 4, 2 * 4 * 4 * 3)
    assert torch.equal(from_patches(patches, 3, 2, 4), clip)


def test_gathered_patches_are_the_clip_pixels_in_t_y_x_c_order():
    clip = torch.randn(2, 3, 8, 12, 16)
    index = torch.tensor([[[3, 2, 0], [0, 0, 3]], [[1, 1, 1], [3, 2, 3]]])
    got = gather_patches(clip, index, 2, 4)
    for b in range(2):
        for n, (t, y, x) in enumerate(index[b].tolist()):
            block = clip[b, :, 2 * t:2 * t + 2, 4 * y:4 * y + 4, 4 * x:4 * x + 4]  # (C, pt, p, p)
            assert torch.equal(got[b, n], block.permute(1, 2, 3, 0).reshape(-1))


def test_random_draws_stay_in_the_grid():
    g = torch.Generator().manual_seed(0)
    index = random_patches(3, (5, 2, 7), 400, generator=g)
    assert index.shape == (3, 400, 3)
    assert all(0 <= int(index[..., a].min()) and int(index[..., a].max()) == n - 1 for a, n in enumerate((5, 2, 7)))
    slabs, frames = random_slabs(2, (5, 2, 3), 2, generator=g)
    assert frames.shape == (2, 2 * 6, 3) and (slabs[:, 0] < slabs[:, 1]).all()
    for b in range(2):  # every patch of each drawn slab, row-major
        for s in range(2):
            block = frames[b, 6 * s:6 * s + 6]
            assert (block[:, 0] == slabs[b, s]).all() and torch.equal(block[:, 1:], all_patches((1, 2, 3))[:, 1:])
