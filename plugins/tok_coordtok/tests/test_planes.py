"""The triplane layout and its bilinear reading, against a direct formula."""

import math

import pytest
import torch
from tok_coordtok.planes import Triplane, sample_plane, sample_triplane


def bilinear(plane: torch.Tensor, r: float, c: float) -> torch.Tensor:
    """The textbook formula on one plane `(R, C, D)`: coordinates in [0, 1] scaled by (size - 1)."""
    rows, cols = plane.shape[:2]
    y, x = r * (rows - 1), c * (cols - 1)
    y0, x0 = min(math.floor(y), rows - 1), min(math.floor(x), cols - 1)
    y1, x1 = min(y0 + 1, rows - 1), min(x0 + 1, cols - 1)
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * plane[y0, x0] + (1 - fy) * fx * plane[y0, x1]
            + fy * (1 - fx) * plane[y1, x0] + fy * fx * plane[y1, x1])


def test_corners_and_cell_centres_read_exactly_that_cell():
    plane = torch.randn(1, 5, 3, 4)  # 5 rows, 3 columns: not square
    rows, cols = torch.meshgrid(torch.arange(5) / 4, torch.arange(3) / 2, indexing="ij")
    out = sample_plane(plane, rows.reshape(1, -1), cols.reshape(1, -1))
    assert torch.allclose(out[0], plane[0].reshape(-1, 4), atol=1e-6)
    corners = sample_plane(plane, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 1.0, 0.0, 1.0]]))[0]
    assert torch.allclose(corners, torch.stack([plane[0, 0, 0], plane[0, 0, 2], plane[0, 4, 0], plane[0, 4, 2]]))


def test_points_between_cells_follow_the_bilinear_formula():
    g = torch.Generator().manual_seed(1)
    plane = torch.randn(2, 4, 7, 3, generator=g)
    r, c = torch.rand(2, 50, generator=g), torch.rand(2, 50, generator=g)
    out = sample_plane(plane, r, c)
    expected = torch.stack([torch.stack([bilinear(plane[b], float(r[b, n]), float(c[b, n])) for n in range(50)])
                            for b in range(2)])
    assert torch.allclose(out, expected, atol=1e-5)
    mid = sample_plane(plane, torch.full((2, 1), 1 / 6), torch.full((2, 1), 1 / 12))  # between 4 cells
    assert torch.allclose(mid[:, 0], plane[:, :2, :2].mean(dim=(1, 2)), atol=1e-6)


def test_each_plane_is_read_at_its_projection():
    tri = Triplane(t=3, h=4, w=5)
    planes = {k: torch.randn(1, *s, 2) for k, s in tri.shapes().items()}
    coords = torch.tensor([[[1.0, 0.0, 0.5]]])  # last time cell, first row, middle column
    feats = sample_triplane(planes, coords)[0, 0]
    expected = torch.cat([planes["hw"][0, 0, 2], planes["tw"][0, 2, 2], planes["th"][0, 2, 0]])
    assert torch.allclose(feats, expected, atol=1e-6)


def test_split_and_join_are_inverse_with_planes_of_different_shapes():
    tri = Triplane(t=6, h=4, w=2)
    assert tri.shapes() == {"hw": (4, 2), "tw": (6, 2), "th": (6, 4)} and tri.tokens == 8 + 12 + 24
    z = torch.randn(3, tri.tokens, 5)
    planes = tri.split(z)
    assert {k: tuple(v.shape) for k, v in planes.items()} == {"hw": (3, 4, 2, 5), "tw": (3, 6, 2, 5),
                                                             "th": (3, 6, 4, 5)}
    assert torch.equal(planes["tw"][1, 5, 1], z[1, 8 + 11])  # row-major, after the hw plane
    assert torch.equal(tri.join(planes), z)
    with pytest.raises(ValueError, match=r"\(B, 44, D\)"):
        tri.split(torch.randn(1, 43, 5))


def test_paper_triplane_is_1280_tokens():
    assert Triplane(t=32, h=16, w=16).tokens == 1280
