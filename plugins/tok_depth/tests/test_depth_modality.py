import torch

from tokcore import registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-depth")


def test_holes_are_masked_and_filled_not_propagated():
    depth = registry.build("modality", {"name": "depth", "mean": 2.0, "std": 2.0})
    x = torch.tensor([[[[0.0, 2.0], [float("inf"), float("nan")]]]])
    valid = depth.valid_mask(x)
    assert valid.tolist() == [[[[False, True], [False, False]]]]
    n = depth.normalize(depth.validate(x))
    assert torch.isfinite(n).all()
    assert n[0, 0, 0, 1] == 0.0 and n[0, 0, 0, 0] == depth.fill_value


def test_max_depth_clips_far_values():
    depth = registry.build("modality", {"name": "depth", "max_depth": 10.0})
    x = torch.tensor([[[[5.0, 50.0]]]])
    assert depth.valid_mask(x).tolist() == [[[[True, False]]]]
