"""A generator of realistic gaze clips: the embedded default data of tok-gaze.

Gaze is generated in degrees of visual angle from the scene camera's optical axis, then
projected through a pinhole camera with the given field of view to image coordinates
normalized to [0, 1] (x right, y down: the OpenCV image convention). Clip `i` of seed `s`
comes from its own random stream `numpy.random.default_rng([s, i])`, so a clip does not
depend on how many clips are generated, and the same seed always gives the same data.

What a clip is made of (defaults of `GazeParams`, from the eye-movement literature):

* fixations lasting a log-normal time (median 250 ms, sigma 0.45), with slow drift
  (a random walk of 0.03 deg per frame) and tremor (0.03 deg of white noise);
* saccades between them whose amplitude is gamma-distributed (shape 2, scale 5 deg: mean
  10 deg), whose direction is uniform but turned back toward the centre when the target
  would leave 80% of the field of view, and whose duration follows the main sequence,
  D = 21 ms + 2.2 ms/deg * A (Carpenter 1988), with a minimum-jerk position profile (so the
  peak velocity is 1.875 A / D: about 440 deg/s for a 10 deg saccade);
* smooth pursuit instead of a fixation with probability 0.2: a target moving at 5-25 deg/s
  in a random direction for 300-1000 ms, followed with a gain of 0.9;
* blinks as a Poisson process of 0.25 per second (15 per minute), each 100-300 ms long,
  and isolated tracking losses with probability 0.01 per frame: these frames are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class GazeParams:
    """Parameters of the gaze generator (see the module docstring for their meaning)."""

    fps: float = 30.0
    fov: tuple[float, float] = (90.0, 70.0)  # horizontal, vertical field of view, degrees
    fixation_median_ms: float = 250.0
    fixation_sigma: float = 0.45
    saccade_shape: float = 2.0
    saccade_scale_deg: float = 5.0
    main_sequence_intercept_ms: float = 21.0
    main_sequence_slope_ms_per_deg: float = 2.2
    pursuit_probability: float = 0.2
    pursuit_speed_deg_s: tuple[float, float] = (5.0, 25.0)
    pursuit_ms: tuple[float, float] = (300.0, 1000.0)
    pursuit_gain: float = 0.9
    drift_deg: float = 0.03
    tremor_deg: float = 0.03
    blink_rate_hz: float = 0.25
    blink_ms: tuple[float, float] = (100.0, 300.0)
    dropout_probability: float = 0.01
    extent: float = 0.8  # gaze stays within this share of the half field of view


def degrees_to_normalized(angles: np.ndarray, fov: Sequence[float]) -> np.ndarray:
    """(..., 2) visual angles in degrees (x right, y down) -> [0, 1] image coordinates."""
    half = np.tan(np.radians(np.asarray(fov, dtype=np.float64) / 2))
    return 0.5 + np.tan(np.radians(angles)) / (2 * half)


def normalized_to_degrees(xy: np.ndarray, fov: Sequence[float]) -> np.ndarray:
    """The inverse of `degrees_to_normalized`."""
    half = np.tan(np.radians(np.asarray(fov, dtype=np.float64) / 2))
    return np.degrees(np.arctan((np.asarray(xy, dtype=np.float64) - 0.5) * 2 * half))


def _min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def gaze_clip(frames: int, rng: np.random.Generator, p: GazeParams = GazeParams()) -> np.ndarray:
    """One clip `(frames, 2)` in normalized image coordinates, NaN where the eye is lost."""
    dt = 1000.0 / p.fps
    t = np.arange(frames) * dt  # frame times, ms
    total = frames * dt
    bound = p.extent * np.asarray(p.fov) / 2
    pos = np.empty((frames, 2))
    here = rng.uniform(-0.5, 0.5, 2) * bound
    now = -rng.uniform(0, p.fixation_median_ms)  # the clip starts in the middle of something
    while now < total:
        # a fixation (with drift) or a smooth pursuit
        if rng.random() < p.pursuit_probability:
            dur = rng.uniform(*p.pursuit_ms)
            angle = rng.uniform(0, 2 * np.pi)
            vel = p.pursuit_gain * rng.uniform(*p.pursuit_speed_deg_s) * np.array([np.cos(angle), np.sin(angle)])
            end = here + vel * dur / 1000.0
            if np.any(np.abs(end) > bound):  # move toward the centre instead
                vel = -vel
                end = here + vel * dur / 1000.0
            sel = (t >= now) & (t < now + dur)
            pos[sel] = here + vel * (t[sel] - now)[:, None] / 1000.0
        else:
            dur = float(np.exp(np.log(p.fixation_median_ms) + p.fixation_sigma * rng.standard_normal()))
            sel = (t >= now) & (t < now + dur)
            drift = np.cumsum(rng.normal(0, p.drift_deg, (int(sel.sum()), 2)), axis=0)
            pos[sel] = here + drift
            end = here + (drift[-1] if len(drift) else 0.0)
        now += dur
        here = np.clip(end, -bound, bound)
        # a saccade to the next target, timed by the main sequence
        amp = rng.gamma(p.saccade_shape, p.saccade_scale_deg)
        angle = rng.uniform(0, 2 * np.pi)
        step = amp * np.array([np.cos(angle), np.sin(angle)])
        target = here + step
        if np.any(np.abs(target) > bound):
            target = here - step
        target = np.clip(target, -bound, bound)
        amp = float(np.linalg.norm(target - here))
        dur = p.main_sequence_intercept_ms + p.main_sequence_slope_ms_per_deg * amp
        sel = (t >= now) & (t < now + dur)
        pos[sel] = here + (target - here) * _min_jerk((t[sel] - now) / dur)[:, None]
        now += dur
        here = target
    pos += rng.normal(0, p.tremor_deg, pos.shape)
    xy = degrees_to_normalized(pos, p.fov)
    # blinks and tracking losses
    start = -rng.uniform(0, 1000.0 / p.blink_rate_hz)
    while True:
        start += rng.exponential(1000.0 / p.blink_rate_hz)
        if start >= total:
            break
        length = rng.uniform(*p.blink_ms)
        xy[(t >= start) & (t < start + length)] = np.nan
    xy[rng.random(frames) < p.dropout_probability] = np.nan
    return np.clip(xy, 0.0, 1.0).astype(np.float32)
