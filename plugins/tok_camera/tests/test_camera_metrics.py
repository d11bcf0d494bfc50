"""Geometry and metrics cross-checked against independent computations: scipy's Rotation
for rotations, and a direct closed-form alignment for the ATE."""

import numpy as np
import pytest
import torch

from tok_camera.geometry import (euler_zyx_to_matrix, matrix_to_rotvec, quaternion_to_matrix, rotation_angle,
                                 rotvec_to_matrix, trajectory_errors, umeyama)
from tok_camera.losses import CameraPoseLoss
from tok_camera.modality import rotation_to_6d
from tok_camera.synthetic import camera_clips

Rotation = pytest.importorskip("scipy.spatial.transform").Rotation


def test_rotation_conversions_match_scipy():
    rots = Rotation.random(200, random_state=0)
    m = torch.from_numpy(rots.as_matrix())
    assert np.allclose(rotation_angle(m).numpy(), rots.magnitude(), atol=1e-9)
    assert np.allclose(quaternion_to_matrix(torch.from_numpy(rots.as_quat())).numpy(), rots.as_matrix(), atol=1e-9)
    assert np.allclose(matrix_to_rotvec(m).numpy(), rots.as_rotvec(), atol=1e-7)
    assert np.allclose(rotvec_to_matrix(torch.from_numpy(rots.as_rotvec())).numpy(), rots.as_matrix(), atol=1e-9)
    ypr = np.random.default_rng(0).uniform(-1.5, 1.5, (50, 3))
    ours = euler_zyx_to_matrix(*torch.from_numpy(ypr).unbind(-1)).numpy()
    assert np.allclose(ours, Rotation.from_euler("ZYX", ypr).as_matrix(), atol=1e-12)
    small = Rotation.from_rotvec(np.array([[1e-7, 0, 0], [0, 2e-5, 1e-5]]))  # acos would lose these
    assert np.allclose(rotation_angle(torch.from_numpy(small.as_matrix())).numpy(), small.magnitude(), rtol=1e-6)


def test_umeyama_matches_a_direct_kabsch_solution():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(40, 3))
    truth = Rotation.random(random_state=3)
    dst = truth.apply(src) + np.array([0.3, -1.0, 2.0]) + rng.normal(scale=0.01, size=(40, 3))
    s, r, t = umeyama(torch.from_numpy(src)[None], torch.from_numpy(dst)[None])
    # direct: the rotation by SVD of the centred cross-covariance (scipy), then the centroids
    ref, _ = Rotation.align_vectors(dst - dst.mean(0), src - src.mean(0))
    assert np.allclose(r[0].numpy(), ref.as_matrix(), atol=1e-9)
    assert np.allclose(t[0].numpy(), dst.mean(0) - ref.apply(src.mean(0)), atol=1e-9)
    assert float(s) == 1.0
    s2, _, _ = umeyama(torch.from_numpy(src)[None], torch.from_numpy(2.5 * dst)[None], with_scale=True)
    assert abs(float(s2) - 2.5) < 0.01


def _poses(rots: Rotation, trans: np.ndarray) -> torch.Tensor:
    p = np.tile(np.eye(4), (len(trans), 1, 1))
    p[:, :3, :3], p[:, :3, 3] = rots.as_matrix(), trans
    return torch.from_numpy(p)[None]


def test_trajectory_errors_match_direct_computations():
    target = torch.from_numpy(camera_clips(1, 30, seed=5))
    rng = np.random.default_rng(2)
    rel = torch.linalg.inv(target[:, :1]) @ target
    noise_r, noise_t = rng.normal(scale=0.01, size=(30, 3)), rng.normal(scale=0.005, size=(30, 3))
    noise_r[0] = noise_t[0] = 0.0  # the first frame stays the identity, as the metrics take it
    noisy_rot = Rotation.from_matrix(rel[0, :, :3, :3].numpy()) * Rotation.from_rotvec(noise_r)
    noisy_pos = rel[0, :, :3, 3].numpy() + noise_t
    recon = _poses(noisy_rot, noisy_pos)
    errs = {k: float(v) for k, v in trajectory_errors(recon, target).items()}

    # ATE: rigid alignment from scipy's Kabsch, then the RMSE
    tgt_pos = rel[0, :, :3, 3].numpy()
    align, _ = Rotation.align_vectors(tgt_pos - tgt_pos.mean(0), noisy_pos - noisy_pos.mean(0))
    aligned = align.apply(noisy_pos - noisy_pos.mean(0)) + tgt_pos.mean(0)
    assert errs["ate"] == pytest.approx(np.sqrt(np.mean(np.sum((aligned - tgt_pos) ** 2, -1))), rel=1e-6)
    # RRE and rotation error from scipy's composition and magnitude
    tgt_rot = Rotation.from_matrix(rel[0, :, :3, :3].numpy())
    rre = [np.degrees(((tgt_rot[i].inv() * tgt_rot[i + 1]).inv() * (noisy_rot[i].inv() * noisy_rot[i + 1])).magnitude())
           for i in range(29)]
    assert errs["rre_deg"] == pytest.approx(np.mean(rre), rel=1e-6)
    assert errs["rot_deg"] == pytest.approx(np.degrees((tgt_rot.inv() * noisy_rot).magnitude()).mean(), rel=1e-6)
    # RTE: translation of inv(dP_target) dP_recon, written out
    rte = []
    for i in range(29):
        dt = tgt_rot[i].inv().apply(tgt_pos[i + 1] - tgt_pos[i])
        dr = noisy_rot[i].inv().apply(noisy_pos[i + 1] - noisy_pos[i])
        rte.append(np.linalg.norm((tgt_rot[i].inv() * tgt_rot[i + 1]).inv().apply(dr - dt)))
    assert errs["rte"] == pytest.approx(np.mean(rte), rel=1e-6)


def test_a_rigidly_moved_copy_has_no_error():
    target = torch.from_numpy(camera_clips(3, 20, seed=1))
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3] = torch.from_numpy(Rotation.random(random_state=4).as_matrix())
    world[:3, 3] = torch.tensor([5.0, -2.0, 1.0])
    errs = trajectory_errors(world @ target, target)
    assert all(float(v.abs().max()) < 1e-6 for v in errs.values())


def test_pose_loss_geodesic_is_the_angle_and_respects_the_mask():
    rots = Rotation.random(8, random_state=5)
    delta = Rotation.from_rotvec(np.random.default_rng(3).normal(scale=0.2, size=(8, 3)))
    target = torch.cat([rotation_to_6d(torch.from_numpy(rots.as_matrix())).float(), torch.zeros(8, 3)], -1)[None]
    pred = torch.cat([rotation_to_6d(torch.from_numpy((rots * delta).as_matrix())).float(), torch.ones(8, 3)], -1)[None]
    out = CameraPoseLoss(translation="l1", rotation="geodesic")(pred, target)
    assert float(out.terms["rotation"]) == pytest.approx(delta.magnitude().mean(), rel=1e-4)
    assert float(out.terms["translation"]) == pytest.approx(1.0)
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, :3] = True
    masked = CameraPoseLoss()(pred, target, mask)
    assert float(masked.terms["rotation"]) == pytest.approx(delta[:3].magnitude().mean(), rel=1e-4)
    exact = target.clone().requires_grad_(True)
    CameraPoseLoss()(exact, target).loss.backward()
    assert torch.isfinite(exact.grad).all()
    six = CameraPoseLoss(translation="l2", rotation="6d")(pred, target)
    assert float(six.terms["translation"]) == pytest.approx(1.0)


def test_velocity_term_sees_jitter_that_per_frame_errors_hide():
    target = torch.zeros(1, 6, 9)
    target[..., 0] = target[..., 4] = 1.0
    smooth, jitter = target.clone(), target.clone()
    smooth[..., 6] += 0.1
    jitter[..., 6] += torch.tensor([0.1, -0.1, 0.1, -0.1, 0.1, -0.1])
    loss = CameraPoseLoss(velocity_weight=1.0)
    a, b = loss(smooth, target), loss(jitter, target)
    assert float(a.terms["translation"]) == pytest.approx(float(b.terms["translation"]))
    assert float(a.terms["velocity"]) == 0.0 and float(b.terms["velocity"]) > 0.0
