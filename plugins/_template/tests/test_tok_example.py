import torch

from tokcore import registry
from tokcore.testing import contract_test

# One test per component this distribution registers: build, forward, backward, state.
test_contract = contract_test(dist="tok-example")


def test_charbonnier_is_near_l1_for_large_errors_and_ignores_masked_elements():
    loss = registry.build("loss", {"name": "charbonnier", "eps": 1e-6})
    pred, target = torch.tensor([[3.0, 100.0]]), torch.zeros(1, 2)
    mask = torch.tensor([[True, False]])
    assert torch.isclose(loss(pred, target, mask).loss, torch.tensor(3.0))
    assert torch.isclose(loss(pred, target).loss, torch.tensor(51.5))
