import pytest
import torch

from tokcore import InputError, registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-gaze")


def test_pixel_coordinates_are_caught():
    gaze = registry.build("modality", {"name": "gaze"})
    pixels = torch.tensor([[[320.0, 240.0], [330.0, 250.0]]])
    with pytest.raises(InputError, match=r"clip3: gaze values span \[240, 330\], outside the expected range \[0, 1\]"):
        gaze.validate(pixels, sample="clip3")


def test_a_blink_invalidates_the_whole_frame():
    gaze = registry.build("modality", {"name": "gaze"})
    x = torch.tensor([[[0.5, 0.5], [float("nan"), 0.2], [1.0, 0.0]]])
    assert gaze.valid_mask(x)[0, :, 0].tolist() == [True, False, True]
    n = gaze.normalize(gaze.validate(x))
    assert n.tolist() == [[[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]]]
