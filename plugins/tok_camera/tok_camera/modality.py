"""Camera trajectories: camera-to-world 4x4 poses (OpenCV convention), one per frame.

The model sees each clip relative to its first frame, as 9 numbers per frame: the
continuous 6D rotation representation (the first two columns of R; Zhou et al., CVPR 2019)
followed by the translation, optionally divided by a scale recorded in the checkpoint.
Decoding returns poses relative to the clip's first frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from tokcore.api import InputError, Modality, write_array_samples


def rotation_to_6d(r: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, column after column."""
    return torch.cat([r[..., :, 0], r[..., :, 1]], dim=-1)


def rotation_from_6d(d6: Tensor) -> Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; the nearest rotation for a noisy input."""
    a, b = d6[..., :3], d6[..., 3:]
    x = torch.nn.functional.normalize(a, dim=-1)
    y = torch.nn.functional.normalize(b - (x * b).sum(-1, keepdim=True) * x, dim=-1)
    return torch.stack([x, y, torch.cross(x, y, dim=-1)], dim=-1)


class CameraModality(Modality):
    """Camera-to-world poses `(T, 4, 4)`; checked for finite values, an orthonormal
    right-handed rotation and a last row of `0 0 0 1`, frame by frame.

    Args:
        scale: translations are divided by this before encoding and multiplied back after
            decoding (metres per unit), so trajectories of any size reach the model at
            a similar magnitude.
        tolerance: largest accepted deviation of R^T R from the identity and of the last row.
    """

    name = "camera"
    layout = "T44"

    def __init__(self, scale: float = 1.0, tolerance: float = 1e-3):
        if scale <= 0:
            raise InputError(f"modality 'camera': scale must be positive, got {scale}")
        self.scale = scale
        self.tolerance = tolerance
        self.mean, self.std, self.value_range = 0.0, 1.0, None

    def check(self, x: Tensor, *, sample: str, batched: bool) -> None:
        poses = x if batched else x.unsqueeze(0)
        r = poses[..., :3, :3]
        eye = torch.eye(3, dtype=x.dtype)
        checks = (
            ((poses[..., 3, :] - torch.tensor([0.0, 0.0, 0.0, 1.0])).abs().amax(-1),
             "last row is not 0 0 0 1; give camera-to-world 4x4 matrices"),
            ((r.transpose(-1, -2) @ r - eye).abs().amax((-1, -2)),
             "rotation is not orthonormal; re-orthonormalize it (e.g. by SVD)"),
            ((torch.linalg.det(r) - 1.0).abs(),
             "rotation has determinant -1 (a reflection); check the axis convention"),
        )
        for error, why in checks:
            bad = (error > self.tolerance).nonzero()
            if len(bad):
                b, t = bad[0].tolist()
                where = f"{sample}[{b}] frame {t}" if batched else f"{sample} frame {t}"
                raise InputError(f"{where}: {why} (deviation {float(error[b, t]):.3g} > tolerance {self.tolerance})")

    def normalize(self, x: Tensor, batched: bool = True) -> Tensor:
        """(B, T, 4, 4) poses -> (B, T, 9) relative to frame 0: 6D rotation, translation / scale."""
        poses = x if batched else x.unsqueeze(0)
        rel = torch.linalg.inv(poses[:, :1]) @ poses
        out = torch.cat([rotation_to_6d(rel[..., :3, :3]), rel[..., :3, 3] / self.scale], dim=-1)
        return out if batched else out[0]

    def denormalize(self, x: Tensor, batched: bool = True) -> Tensor:
        """(B, T, 9) -> (B, T, 4, 4) poses relative to the first frame."""
        y = x if batched else x.unsqueeze(0)
        poses = torch.zeros(*y.shape[:-1], 4, 4, dtype=y.dtype, device=y.device)
        poses[..., :3, :3] = rotation_from_6d(y[..., :6])
        poses[..., :3, 3] = y[..., 6:9] * self.scale
        poses[..., 3, 3] = 1.0
        return poses if batched else poses[0]

    def metrics(self, recon: Tensor, target: Tensor) -> dict[str, float]:
        """Mean over clips of `tok_camera.geometry.trajectory_errors` (both trajectories taken
        relative to their first frame): `ate`, `rte` (in the poses' units, metres for metric
        poses), `rre_deg` and `rot_deg` (degrees)."""
        from tok_camera.geometry import trajectory_errors

        return {k: float(v.mean()) for k, v in trajectory_errors(recon, target).items()}

    def write_samples(self, target: Tensor, recon: Tensor, path: Path) -> list[Path]:
        """`<path>.png`: input and reconstructed trajectories (relative to the first frame)
        seen from above and from the side, with viewing directions; `<path>.npz`: the arrays."""
        from tok_camera.geometry import relative_to_first
        from tok_camera.plot import plot_trajectories

        files = write_array_samples(target, recon, path)
        rel_t, rel_r = relative_to_first(target.double()), relative_to_first(recon.double())
        return [plot_trajectories(rel_t.numpy(), rel_r.numpy(), path.with_suffix(".png"))] + files

    def rate_units(self, x: Tensor) -> dict[str, float]:
        return {"frame": x.shape[0]}

    def to_signal(self, x: Tensor) -> Tensor:
        """Each clip relative to its first frame, as rotation vector + translation `(B, T, 6)`:
        a signal codec then never produces a non-rotation."""
        from tok_camera.geometry import matrix_to_rotvec, relative_to_first

        rel = relative_to_first(x.double())
        return torch.cat([matrix_to_rotvec(rel[..., :3, :3]), rel[..., :3, 3]], -1)

    def from_signal(self, signal: Tensor, like: Tensor) -> Tensor:
        """Poses from `to_signal`'s channels, relative to the first frame; the metrics compare
        trajectories relative to their first frames, so this is what is measured."""
        from tok_camera.geometry import rotvec_to_matrix

        poses = torch.zeros(*signal.shape[:-1], 4, 4, dtype=torch.float64)
        poses[..., :3, :3] = rotvec_to_matrix(signal[..., :3].double())
        poses[..., :3, 3] = signal[..., 3:6].double()
        poses[..., 3, 3] = 1.0
        return poses.to(like.dtype)

    def eval_pictures(self, inputs: Tensor, columns: Mapping[str, Tensor], path: Path) -> list[Path]:
        """`<path>.png`: a few camera paths from above and from the side, the input against
        each codec's reconstruction (all relative to their first frame)."""
        from tok_camera.geometry import relative_to_first
        from tok_camera.plot import plot_trajectories

        rel = {name: relative_to_first(x.double()).numpy() for name, x in columns.items()}
        (_, recon), *rest = rel.items()
        return [plot_trajectories(relative_to_first(inputs.double()).numpy(), recon, path.with_suffix(".png"),
                                  extra=dict(rest))]

    def example(self, batch_size: int = 2) -> Tensor:
        """A walk along z while turning slowly about the vertical axis, from a random start."""
        g = torch.Generator().manual_seed(0)
        t = torch.arange(16, dtype=torch.float32)
        poses = torch.zeros(batch_size, 16, 4, 4)
        for b in range(batch_size):
            yaw = 0.05 * t + float(torch.rand(1, generator=g)) * 3.0
            c, s = torch.cos(yaw), torch.sin(yaw)
            poses[b, :, 0, 0], poses[b, :, 0, 2], poses[b, :, 2, 0], poses[b, :, 2, 2] = c, s, -s, c
            poses[b, :, 1, 1] = 1.0
            poses[b, :, :3, 3] = torch.stack([0.1 * t, 0.0 * t, 1.2 * t + b], dim=-1)
            poses[b, :, 3, 3] = 1.0
        return poses

    def invalid_examples(self, x: Tensor) -> list[tuple[Tensor, str]]:
        skewed = x.clone()
        skewed[0, 3, :3, :3] *= 1.5
        return super().invalid_examples(x) + [(skewed, "a scaled rotation")]
