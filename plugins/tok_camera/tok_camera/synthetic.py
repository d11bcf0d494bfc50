"""A generator of realistic head-mounted camera trajectories: the embedded default data of
tok-camera.

Poses are camera-to-world 4x4 matrices in the OpenCV convention (camera x right, y down, z
forward), in metres, with a world frame whose y axis points down (gravity). Clip `i` of
seed `s` comes from its own stream `numpy.random.default_rng([s, i])`.

A wearer is either walking (probability `walk_fraction`) or seated:

* walking: the body moves at 0.9-1.6 m/s along a heading that turns smoothly (a sum of
  random sinusoids below 0.3 Hz, 0.3 rad standard deviation); the head bobs vertically at
  the step frequency (1.6-2.1 Hz, 1.5-3 cm amplitude) and sways sideways at half of it
  (1-2 cm), with a little pitch and roll coupled to the gait;
* seated: the body stays put apart from a slow 1 cm torso sway;
* in both, the head looks around: yaw relative to the body (0.25 rad walking, 0.4 rad
  seated, below 0.5 Hz), pitch around a resting downward angle of 0-0.3 rad (0.08 rad, below
  0.5 Hz) and roll (0.03 rad); the camera sits 10 cm above and 8 cm in front of the neck
  pivot it turns about, so head rotations move it too;
* quick head turns on top (people turn the head with large gaze shifts): a Poisson process
  of 0.4 per second, each a minimum-jerk turn of 10-50 deg in yaw (random sign) and up to
  +-10 deg in pitch lasting 0.3-0.6 s.

"A sum of random sinusoids" is `smooth`: four sinusoids with frequencies uniform in
(0.02 Hz, f_max), random phases, scaled to the given standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraParams:
    """Parameters of the trajectory generator (see the module docstring)."""

    fps: float = 30.0
    walk_fraction: float = 0.6
    speed_m_s: tuple[float, float] = (0.9, 1.6)
    heading_std_rad: float = 0.3
    heading_max_hz: float = 0.3
    step_hz: tuple[float, float] = (1.6, 2.1)
    bob_m: tuple[float, float] = (0.015, 0.03)
    sway_m: tuple[float, float] = (0.01, 0.02)
    look_yaw_rad: tuple[float, float] = (0.25, 0.4)  # walking, seated
    look_max_hz: float = 0.5
    pitch_rest_rad: tuple[float, float] = (0.0, 0.3)
    pitch_std_rad: float = 0.08
    roll_std_rad: float = 0.03
    torso_sway_m: float = 0.01
    neck_offset_m: tuple[float, float, float] = (0.0, -0.10, 0.08)  # camera from the pivot (y down)
    turn_rate_hz: float = 0.4
    turn_yaw_deg: tuple[float, float] = (10.0, 50.0)
    turn_pitch_deg: float = 10.0
    turn_s: tuple[float, float] = (0.3, 0.6)


def smooth(rng: np.random.Generator, t: np.ndarray, std: float, max_hz: float, n: int = 4) -> np.ndarray:
    """A smooth random signal: n sinusoids below `max_hz`, standard deviation `std`."""
    f = rng.uniform(0.02, max_hz, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    return std * np.sqrt(2.0 / n) * np.sin(2 * np.pi * f[:, None] * t[None] + phase[:, None]).sum(0)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def camera_clip(frames: int, rng: np.random.Generator, p: CameraParams = CameraParams()) -> np.ndarray:
    """One clip of camera-to-world poses `(frames, 4, 4)` (float64)."""
    t = np.arange(frames) / p.fps
    walking = rng.random() < p.walk_fraction
    yaw0 = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(-5, 5, 3) * np.array([1.0, 0.0, 1.0]) + np.array([0.0, -1.6, 0.0])
    body = np.tile(start, (frames, 1))
    heading = np.full(frames, yaw0)
    pitch = np.full(frames, rng.uniform(*p.pitch_rest_rad) * -1.0)  # negative: looking down (y down)
    roll = np.zeros(frames)
    if walking:
        heading = yaw0 + smooth(rng, t, p.heading_std_rad, p.heading_max_hz)
        heading -= heading[0] - yaw0
        speed = rng.uniform(*p.speed_m_s)
        vel = speed * np.stack([np.sin(heading), np.zeros(frames), np.cos(heading)], -1)
        body = start + np.concatenate([np.zeros((1, 3)), np.cumsum(vel[:-1] / p.fps, 0)])
        step = rng.uniform(*p.step_hz)
        phase = rng.uniform(0, 2 * np.pi)
        bob = rng.uniform(*p.bob_m) * np.cos(2 * np.pi * step * t + phase)
        sway = rng.uniform(*p.sway_m) * np.sin(np.pi * step * t + phase)
        right = np.stack([np.cos(heading), np.zeros(frames), -np.sin(heading)], -1)
        body = body + sway[:, None] * right + np.stack([np.zeros(frames), bob, np.zeros(frames)], -1)
        pitch = pitch + 0.01 * np.sin(2 * np.pi * step * t + phase + 0.5)
        roll = roll + 0.02 * np.sin(np.pi * step * t + phase)
        look = p.look_yaw_rad[0]
    else:
        body = body + np.stack([smooth(rng, t, p.torso_sway_m, 0.3), 0.3 * smooth(rng, t, p.torso_sway_m, 0.3),
                                smooth(rng, t, p.torso_sway_m, 0.3)], -1)
        look = p.look_yaw_rad[1]
    yaw = heading + smooth(rng, t, look, p.look_max_hz)
    pitch = pitch + smooth(rng, t, p.pitch_std_rad, p.look_max_hz)
    turn_start = -rng.uniform(0, 1 / p.turn_rate_hz)
    while True:
        turn_start += rng.exponential(1 / p.turn_rate_hz)
        if turn_start >= t[-1]:
            break
        s = np.clip((t - turn_start) / rng.uniform(*p.turn_s), 0.0, 1.0)
        profile = s**3 * (10 - 15 * s + 6 * s**2)
        yaw = yaw + np.radians(rng.uniform(*p.turn_yaw_deg) * rng.choice([-1.0, 1.0])) * profile
        pitch = pitch + np.radians(rng.uniform(-p.turn_pitch_deg, p.turn_pitch_deg)) * profile
    roll = roll + smooth(rng, t, p.roll_std_rad, p.look_max_hz)
    r = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)
    poses = np.tile(np.eye(4), (frames, 1, 1))
    poses[:, :3, :3] = r
    poses[:, :3, 3] = body + r @ np.asarray(p.neck_offset_m)
    return poses


def camera_clips(num_clips: int, frames: int = 60, seed: int = 0, params: CameraParams = CameraParams()) -> np.ndarray:
    """Clips `(num_clips, frames, 4, 4)`, clip i from `default_rng([seed, i])`."""
    return np.stack([camera_clip(frames, np.random.default_rng([seed, i]), params) for i in range(num_clips)])
