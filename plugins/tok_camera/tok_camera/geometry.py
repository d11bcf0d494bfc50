"""Pose geometry in plain torch (float64 where accuracy matters): rotation angles,
quaternions, rotation vectors, trajectory alignment and the trajectory metrics.

Poses are camera-to-world 4x4 matrices `(..., 4, 4)`; a trajectory is `(B, T, 4, 4)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def relative_to_first(poses: Tensor) -> Tensor:
    """`(B, T, 4, 4)` -> the same trajectories expressed in their first frame's camera frame."""
    return torch.linalg.inv(poses[:, :1]) @ poses


def rotation_angle(r: Tensor) -> Tensor:
    """Geodesic angle (radians) of rotation matrices `(..., 3, 3)`, accurate near 0 and pi:
    atan2(|axis * sin|, cos) from the skew and symmetric parts."""
    skew = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    trace = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    return torch.atan2(skew.norm(dim=-1) / 2, ((trace - 1) / 2))


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternions `(..., 4)` in (x, y, z, w) order (TUM, scipy) -> `(..., 3, 3)`."""
    q = torch.nn.functional.normalize(q, dim=-1)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_rotvec(r: Tensor) -> Tensor:
    """`(..., 3, 3)` -> rotation vectors `(..., 3)` (axis times angle; angles below pi)."""
    angle = rotation_angle(r)
    skew = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    sin = torch.sin(angle)
    # angle / (2 sin angle) -> 1/2 as angle -> 0
    factor = torch.where(sin.abs() > 1e-6, angle / (2 * sin.where(sin.abs() > 1e-6, torch.ones_like(sin))),
                         0.5 + angle**2 / 12)
    return skew * factor.unsqueeze(-1)


def rotvec_to_matrix(v: Tensor) -> Tensor:
    """Rotation vectors `(..., 3)` -> `(..., 3, 3)` (Rodrigues)."""
    angle = v.norm(dim=-1, keepdim=True)
    axis = v / angle.clamp_min(1e-12)
    k = torch.zeros(*v.shape[:-1], 3, 3, dtype=v.dtype, device=v.device)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - k.transpose(-1, -2)
    s, c = torch.sin(angle).unsqueeze(-1), torch.cos(angle).unsqueeze(-1)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def umeyama(source: Tensor, target: Tensor, with_scale: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """The similarity (s, R, t) minimizing sum |s R source_i + t - target_i|^2 (Umeyama 1991),
    batched: points `(B, N, 3)` -> s `(B,)`, R `(B, 3, 3)`, t `(B, 3)`. Scale is 1 unless
    `with_scale`."""
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    cov = xt.transpose(1, 2) @ xs / source.shape[1]
    u, d, vh = torch.linalg.svd(cov)
    sign = torch.ones_like(d)
    sign[:, 2] = torch.sign(torch.linalg.det(u @ vh))
    sign[sign == 0] = 1.0
    r = u @ torch.diag_embed(sign) @ vh
    if with_scale:
        var = xs.square().sum((1, 2)) / source.shape[1]
        s = (d * sign).sum(-1) / var.clamp_min(1e-12)
    else:
        s = torch.ones(source.shape[0], dtype=source.dtype, device=source.device)
    t = mu_t[:, 0] - s[:, None] * (r @ mu_s[:, 0, :, None])[..., 0]
    return s, r, t


def trajectory_errors(recon: Tensor, target: Tensor, align_scale: bool = False) -> dict[str, Tensor]:
    """Per-clip errors of reconstructed against input trajectories `(B, T, 4, 4)`, both taken
    relative to their own first frame:

    * `ate`: absolute trajectory error, the RMSE of camera positions after aligning the
      reconstruction to the input with the best rigid motion (Umeyama; similarity with
      `align_scale`), in the poses' units;
    * `rte`: relative translation error, the mean over consecutive frame pairs of the
      translation of inv(dP_input) dP_recon, dP = inv(P_i) P_i+1;
    * `rre_deg`: relative rotation error, the mean rotation angle of the same, in degrees;
    * `rot_deg`: mean rotation angle between reconstructed and input orientations, degrees.

    Returns tensors `(B,)` in float64.
    """
    rec, tgt = relative_to_first(recon.double()), relative_to_first(target.double())
    s, r, t = umeyama(rec[..., :3, 3], tgt[..., :3, 3], align_scale)
    aligned = s[:, None, None] * (r[:, None] @ rec[..., :3, 3, None])[..., 0] + t[:, None]
    ate = (aligned - tgt[..., :3, 3]).square().sum(-1).mean(-1).sqrt()
    d_rec = torch.linalg.inv(rec[:, :-1]) @ rec[:, 1:]
    d_tgt = torch.linalg.inv(tgt[:, :-1]) @ tgt[:, 1:]
    err = torch.linalg.inv(d_tgt) @ d_rec
    rte = err[..., :3, 3].norm(dim=-1).mean(-1)
    rre = torch.rad2deg(rotation_angle(err[..., :3, :3])).mean(-1)
    rot = torch.rad2deg(rotation_angle(tgt[..., :3, :3].transpose(-1, -2) @ rec[..., :3, :3])).mean(-1)
    return {"ate": ate, "rte": rte, "rre_deg": rre, "rot_deg": rot}


def euler_zyx_to_matrix(yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """R = Rz(yaw) Ry(pitch) Rx(roll) (MRPT's and ROS's yaw-pitch-roll), `(..., 3, 3)`."""
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    return torch.stack([
        cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
        sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
        -sp, cp * sr, cp * cr,
    ], -1).reshape(*yaw.shape, 3, 3)


# Columns: the camera's x, y, z axes (OpenCV: right, down, forward) in the source convention.
CONVENTIONS = {
    "opencv": torch.eye(3, dtype=torch.float64),
    # OpenGL / Blender / ARKit camera: x right, y up, z backward
    "opengl": torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)),
    # a robot or vehicle body (ROS REP-103, MRPT): x forward, y left, z up
    "robot": torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64),
}

DEG = 180.0 / math.pi
