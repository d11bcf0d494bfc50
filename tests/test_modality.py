import pytest
import torch

from tokcore import InputError
from tokcore.interfaces.modality import Modality


class Trajectory(Modality):
    """Test modality: (T, 3) tracks with per-channel statistics."""

    name = "trajectory"
    layout = "TC"
    channels = 3

    def example(self, batch_size=2):
        return torch.rand(batch_size, 8, 3)


class Poses(Modality):
    name = "poses"
    layout = "T44"

    def example(self, batch_size=2):
        return torch.eye(4).repeat(batch_size, 5, 1, 1)


def test_per_channel_normalization_round_trips():
    m = Trajectory(mean=[1.0, 2.0, 3.0], std=[1.0, 2.0, 4.0])
    x = torch.tensor([[[1.0, 4.0, 11.0]]])
    n = m.normalize(m.validate(x))
    assert n.tolist() == [[[0.0, 1.0, 2.0]]]
    assert torch.equal(m.denormalize(n), x)


def test_statistics_must_fit_the_channels():
    with pytest.raises(InputError, match="mean has 2 values; give 1 or 3"):
        Trajectory(mean=[0.0, 1.0])
    with pytest.raises(InputError, match="std must be positive"):
        Trajectory(std=0.0)


def test_validation_errors_name_the_sample_and_the_problem():
    m = Trajectory(value_range=[0.0, 1.0])
    with pytest.raises(InputError, match=r"^s1: trajectory input must have shape \(B, T, C\), got \(8, 3\)$"):
        m.validate(torch.rand(8, 3), sample="s1")
    with pytest.raises(InputError, match=r"^s1: trajectory input needs 3 channels on axis 2 of \(B, T, C\), got shape \(1, 8, 2\)$"):
        m.validate(torch.rand(1, 8, 2), sample="s1")
    bad = torch.rand(1, 8, 3)
    bad[0, 5, 1] = float("nan")
    with pytest.raises(InputError, match=r"^s1: trajectory input has NaN or inf \(at index \[0, 5, 1\], sample 0 of the batch\); clean or mask"):
        m.validate(bad, sample="s1")
    with pytest.raises(InputError, match=r"values span \[0, 7\], outside the expected range \[0, 1\]"):
        m.validate(torch.tensor([[[0.0, 7.0, 0.5]]]), sample="s1")
    with pytest.raises(InputError, match="has dtype torch.bool"):
        m.validate(torch.zeros(1, 8, 3, dtype=torch.bool), sample="s1")


def test_digits_in_the_layout_are_fixed_axis_sizes():
    m = Poses()
    assert m.validate(m.example(2)).shape == (2, 5, 4, 4)
    with pytest.raises(InputError, match=r"must have shape \(B, T, 4, 4\), got \(2, 5, 3, 4\)"):
        m.validate(torch.zeros(2, 5, 3, 4))


def test_config_records_the_parameters():
    assert Trajectory(mean=(1.0, 2.0, 3.0)).config() == {
        "name": "trajectory", "mean": [1.0, 2.0, 3.0], "std": 1.0, "value_range": None}
