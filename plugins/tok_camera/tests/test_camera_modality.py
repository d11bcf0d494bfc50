import pytest
import torch

from tok_camera.modality import rotation_from_6d, rotation_to_6d
from tokcore import InputError, registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-camera")


def random_rotations(n: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q * torch.linalg.det(q).sign().reshape(n, 1, 1)  # proper rotations only


def test_6d_representation_round_trips_rotations():
    r = random_rotations(100)
    assert torch.allclose(rotation_from_6d(rotation_to_6d(r)), r, atol=1e-12)


def test_poses_are_made_relative_to_the_first_frame_and_scaled():
    cam = registry.build("modality", {"name": "camera", "scale": 2.0})
    poses = torch.eye(4).repeat(1, 3, 1, 1)
    poses[0, :, :3, :3] = random_rotations(3).float()
    poses[0, :, :3, 3] = torch.tensor([[1.0, 2, 3], [1, 2, 5], [1, 4, 3]])
    y = cam.normalize(cam.validate(poses))
    assert y.shape == (1, 3, 9)
    assert torch.allclose(y[0, 0], torch.tensor([1.0, 0, 0, 0, 1, 0, 0, 0, 0]), atol=1e-6)
    expected = torch.linalg.inv(poses[:, :1]) @ poses
    assert torch.allclose(cam.denormalize(y), expected, atol=1e-5)
    assert torch.allclose(y[0, 1, 6:].norm(), torch.tensor(1.0), atol=1e-5)  # moved 2 m, scale 2


def test_invalid_poses_name_item_and_frame():
    cam = registry.build("modality", {"name": "camera"})
    poses = cam.example(2)
    poses[1, 4, 3, 0] = 0.5
    with pytest.raises(InputError, match=r"walk\[1\] frame 4: last row is not 0 0 0 1"):
        cam.validate(poses, sample="walk")
    poses = cam.example(2)
    poses[0, 2, :3, 0] *= -1
    with pytest.raises(InputError, match=r"walk\[0\] frame 2: rotation has determinant -1"):
        cam.validate(poses, sample="walk")
