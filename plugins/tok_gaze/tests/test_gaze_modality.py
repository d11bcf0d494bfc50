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


def test_interpolate_fills_gaps_along_the_line_and_holds_the_ends():
    gaze = registry.build("modality", {"name": "gaze", "fill": "interpolate"})
    nan = float("nan")
    x = torch.tensor([[[nan, nan], [0.5, 0.5], [nan, 0.9], [nan, nan], [1.0, 0.0], [nan, nan]],
                      [[nan, nan]] * 6])
    n = gaze.normalize(gaze.validate(x))
    # clip 0: held at 0.5 before the first valid frame, 1/3 and 2/3 of the way across the gap,
    # held at the last valid frame after it; clip 1 has no valid frame: the image centre
    assert torch.allclose(n[0], torch.tensor([[0.0, 0.0], [0.0, 0.0], [1 / 3, -1 / 3], [2 / 3, -2 / 3],
                                              [1.0, -1.0], [1.0, -1.0]]))
    assert n[1].eq(0).all()
    # metrics still count valid frames only
    assert gaze.metrics(gaze.denormalize(n), x)["error"] == pytest.approx(0.0, abs=1e-6)


def test_unknown_fill_is_rejected():
    with pytest.raises(InputError, match="fill must be 'mean' or 'interpolate', got 'zero'"):
        registry.build("modality", {"name": "gaze", "fill": "zero"})
