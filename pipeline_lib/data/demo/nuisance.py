"""Per-frame nuisance schedules: head motion, face exits, scene cuts, occluders, lighting, blur, noise.

Everything here is independent of the labels except the head "agitation":
a 1-2 Hz sway whose amplitude follows arousal, a cue visible only across
frames. All curves are smooth (sums of slow sinusoids, smoothstep ramps)
plus small per-frame jitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast

import numpy as np

__all__ = ["HeadPath", "Occluder", "SceneSchedule", "make_head_path", "make_occluders", "make_scene"]

OccluderKind = Literal["hand", "bar"]
_EXIT_RAMP_S: Final[float] = 0.4


def _wave(n: int, fps: float, amplitude: float, rng: np.random.Generator, freqs: tuple[float, float] = (0.05, 0.4),
          terms: int = 3) -> np.ndarray:
    """A smooth random curve: a sum of `terms` sinusoids with frequencies in `freqs` (Hz), max |value| ~ amplitude."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for _ in range(terms):
        out += np.sin(2 * np.pi * rng.uniform(*freqs) * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1.0)
    return amplitude * out / terms * 1.5


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass(frozen=True, eq=False)
class HeadPath:
    """Pose of one subject per frame: angles in radians, eye-midpoint position and IOD in frame px."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    iod: np.ndarray


def make_head_path(n: int, fps: float, centre: tuple[float, float], iod: float, arousal: np.ndarray,
                   rng: np.random.Generator, exits: Sequence[tuple[int, int, float]] = ()) -> HeadPath:
    """Slow pose wander + arousal-driven sway + jitter; `exits` are (start, end, distance px) moves out of frame."""
    agitation = np.clip(arousal, 0, 1) * 0.8 + 0.1
    sway = np.sin(2 * np.pi * rng.uniform(1.0, 2.0) * np.arange(n) / fps + rng.uniform(0, 6.3))
    nod = np.sin(2 * np.pi * rng.uniform(1.2, 2.2) * np.arange(n) / fps + rng.uniform(0, 6.3))
    yaw = _wave(n, fps, 0.16, rng) + 0.10 * agitation * sway + rng.normal(0, 0.01, n)
    pitch = _wave(n, fps, 0.08, rng) + 0.06 * agitation * nod + rng.normal(0, 0.008, n)
    roll = _wave(n, fps, 0.12, rng) + rng.normal(0, 0.008, n)
    cx = centre[0] + _wave(n, fps, 0.35 * iod, rng) + 0.12 * iod * agitation * sway + rng.normal(0, 0.25, n)
    cy = centre[1] + _wave(n, fps, 0.2 * iod, rng) + 0.08 * iod * agitation * nod + rng.normal(0, 0.25, n)
    scale = 1.0 + _wave(n, fps, 0.08, rng, freqs=(0.03, 0.15))
    ramp = max(int(_EXIT_RAMP_S * fps), 2)
    t = np.arange(n)
    for start, end, distance in exits:
        out = np.minimum(_smoothstep((t - start) / ramp), _smoothstep((end - t) / ramp))
        cx = cx + distance * out
    return HeadPath(yaw=yaw, pitch=pitch, roll=roll, cx=cx, cy=cy, iod=iod * scale)


@dataclass(frozen=True)
class Occluder:
    """Something in front of the face for frames [start, end): a hand or an object (bar).

    offset and size are in IODs relative to the eye midpoint, in the face's own frame.
    """

    start: int
    end: int
    kind: OccluderKind
    offset: tuple[float, float]
    size: tuple[float, float]
    angle: float
    colour: tuple[float, float, float]


def make_occluders(n: int, fps: float, count: int, skin: np.ndarray, rng: np.random.Generator) -> list[Occluder]:
    """`count` occluders of 0.6-1.5 s, each covering a moderate part of the face (mouth, cheek or chin)."""
    out: list[Occluder] = []
    for _ in range(count):
        length = int(rng.uniform(0.6, 1.5) * fps)
        if length >= n:
            continue
        start = int(rng.integers(0, n - length))
        if rng.random() < 0.6:
            where = [(0.0, 1.05), (-0.55, 0.8), (0.55, 0.8), (0.0, 1.45)][rng.integers(4)]
            colour = cast(tuple[float, float, float],  # an RGB colour: 3 channels
                          tuple(float(c) for c in np.clip(skin * rng.uniform(0.85, 1.05), 0, 255)))
            out.append(Occluder(start, start + length, "hand", (where[0] + rng.normal(0, 0.05), where[1]),
                                (rng.uniform(0.34, 0.48), rng.uniform(0.26, 0.36)), rng.uniform(-0.6, 0.6), colour))
        else:
            colour = cast(tuple[float, float, float], tuple(float(c) for c in rng.uniform(20, 200, size=3)))
            side = rng.choice([-1.0, 1.0])
            out.append(Occluder(start, start + length, "bar", (side * rng.uniform(0.5, 0.8), rng.uniform(0.6, 1.2)),
                                (rng.uniform(0.12, 0.2), rng.uniform(0.6, 0.9)), rng.uniform(-0.4, 0.4), colour))
    return out


@dataclass(frozen=True, eq=False)
class SceneSchedule:
    """Frame-wide nuisances per frame.

    gain (T,), gamma (scalar), cast (T, 3) colour multipliers, shade (T,) left-right face lighting,
    blur (T,) Gaussian sigma in px, noise (T,) pixel noise std, cut (T,) bool background-only frames,
    pan (T, 2) background offset in px.
    """

    gain: np.ndarray
    gamma: float
    cast: np.ndarray
    shade: np.ndarray
    blur: np.ndarray
    noise: np.ndarray
    cut: np.ndarray
    pan: np.ndarray


def make_scene(n: int, fps: float, n_cuts: int, rng: np.random.Generator) -> SceneSchedule:
    """Lighting drift with flicker, blur bursts, sensor noise, a slow camera pan and `n_cuts` cuts to background."""
    gain = rng.uniform(0.85, 1.1) * (1.0 + _wave(n, fps, 0.12, rng, freqs=(0.03, 0.2))) * (1 + rng.normal(0, 0.015, n))
    cast = rng.normal(1.0, 0.03, size=3)[None, :] + np.stack(
        [_wave(n, fps, 0.03, rng, freqs=(0.02, 0.1)) for _ in range(3)], -1)
    shade = _wave(n, fps, 0.25, rng, freqs=(0.02, 0.15))
    blur = np.clip(rng.uniform(0.0, 0.5) + _wave(n, fps, 0.25, rng), 0.0, None)
    for _ in range(rng.poisson(n / fps / 4)):  # motion-blur bursts
        start, length = int(rng.integers(0, n)), int(rng.integers(2, 6))
        blur[start:start + length] = np.maximum(blur[start:start + length], rng.uniform(1.2, 2.0))
    noise = np.clip(rng.uniform(1.0, 3.5) + _wave(n, fps, 0.8, rng), 0.5, None)
    cut = np.zeros(n, dtype=bool)
    for _ in range(n_cuts):
        length = int(rng.uniform(0.5, 1.2) * fps)
        if length <= 0.4 * n:
            start = int(rng.integers(1, n - length))
            cut[start:start + length] = True
    pan = np.stack([_wave(n, fps, 6.0, rng, freqs=(0.02, 0.1)), _wave(n, fps, 4.0, rng, freqs=(0.02, 0.1))], -1)
    return SceneSchedule(gain=gain, gamma=float(rng.uniform(0.85, 1.15)), cast=cast, shade=shade, blur=blur,
                         noise=noise, cut=cut, pan=pan)
