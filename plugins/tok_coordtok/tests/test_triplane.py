import torch

from tokcore import registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-coordtok")


def test_queries_at_plane_corners_read_exactly_those_cells():
    dec = registry.build("decoder", {"name": "triplane", "in_dim": 4, "resolution": 5})
    z = torch.randn(1, 3, 5, 5, 4)
    coords = torch.tensor([[[1.0, -1.0, 1.0]]])  # x at the right edge, y at the top, t at the end
    feats = dec.sample_features(z, coords)[0, 0]
    # xy plane: row y=0, column x=R-1; xt plane: row t=R-1, column x=R-1; yt plane: row t=R-1, column y=0
    expected = z[0, 0, 0, 4] + z[0, 1, 4, 4] + z[0, 2, 4, 0]
    assert torch.allclose(feats, expected, atol=1e-6)


def test_decodes_any_number_of_queries():
    dec = registry.build("decoder", {"name": "triplane", "in_dim": 8, "out_dim": 12, "depth": 2})
    z = dec.example_input(2)
    for n in (1, 37, 500):
        assert dec(z, coords=torch.rand(2, n, 3) * 2 - 1).shape == (2, n, 12)
