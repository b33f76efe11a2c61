"""One subject's affect over time: expression segments, AU activations, valence/arousal.

A track is a sequence of 1-4 s segments. Each segment has one expression
(or a compound one) with an onset-apex-offset intensity curve; the
expression's EMFACS prototype turns intensity into AU activations, and the
circumplex turns it into valence/arousal (smoothed in time). These smooth
latent values define the labels.

What is *rendered* differs from the labels on purpose, frame by frame:
per-frame intensity jitter, short AU twitches (2-3 frames, never labelled)
and blinks. A single frame is therefore ambiguous; a window of frames is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from scipy.ndimage import gaussian_filter1d

from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, CE_PARTS, EXPR_NAMES

__all__ = ["AU_LABEL_THRESHOLD", "COMPOUND_PARTS", "EXPR_LABEL_THRESHOLD", "PROTOTYPES", "Track", "make_track"]

TrackKind = Literal["basic", "compound", "mixed"]

EXPR_LABEL_THRESHOLD: Final[float] = 0.3  # intensity above which a frame shows its segment's expression
AU_LABEL_THRESHOLD: Final[float] = 0.35  # AU activation above which the AU is labelled present
_AU = {name: i for i, name in enumerate(AU_NAMES)}
_EXPR = {name: i for i, name in enumerate(EXPR_NAMES)}

# Expression -> AU -> (weight, probability that the segment uses it).
PROTOTYPES: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "Neutral": {},
    "Anger": {"AU4": (1.0, 1.0), "AU7": (0.85, 1.0), "AU23": (0.8, 1.0), "AU24": (0.7, 0.6)},
    "Disgust": {"AU4": (0.6, 1.0), "AU10": (1.0, 1.0), "AU15": (0.7, 1.0), "AU25": (0.5, 0.3)},
    "Fear": {"AU1": (0.9, 1.0), "AU2": (0.7, 1.0), "AU4": (0.7, 1.0), "AU7": (0.6, 1.0), "AU25": (0.9, 1.0),
             "AU26": (0.5, 0.4)},
    "Happiness": {"AU6": (0.85, 1.0), "AU12": (1.0, 1.0), "AU25": (0.7, 0.5)},
    "Sadness": {"AU1": (0.9, 1.0), "AU4": (0.7, 1.0), "AU15": (1.0, 1.0)},
    "Surprise": {"AU1": (1.0, 1.0), "AU2": (1.0, 1.0), "AU25": (0.9, 1.0), "AU26": (0.9, 1.0)},
}
# "Other" uses a random pair of these (never the smile or cheek raiser).
_OTHER_POOL: Final[tuple[str, ...]] = ("AU1", "AU2", "AU4", "AU7", "AU10", "AU15", "AU23", "AU24", "AU25", "AU26")
CIRCUMPLEX: Final[dict[str, tuple[float, float]]] = {
    "Neutral": (0.0, 0.0), "Anger": (-0.6, 0.6), "Disgust": (-0.6, 0.2), "Fear": (-0.6, 0.7),
    "Happiness": (0.7, 0.4), "Sadness": (-0.6, -0.3), "Surprise": (0.2, 0.8),
}
COMPOUND_PARTS: Final[dict[str, tuple[str, str]]] = CE_PARTS
_BASIC_PROBS: Final[np.ndarray] = np.array([0.16, 0.11, 0.09, 0.09, 0.17, 0.13, 0.13, 0.12])  # EXPR_NAMES order
_COMPOUND_SHARE: Final[dict[str, float]] = {"basic": 0.0, "compound": 0.6, "mixed": 0.3}


@dataclass(frozen=True, eq=False)
class Track:
    """Per-frame affect of one subject (T frames). Labels are clean (no annotation noise).

    expr: (T,) int64 EXPR class, -1 where a compound expression shows (no basic label).
    ce: (T,) int64 compound class or -1.
    au_label: (T, 12) int64 0/1.  va: (T, 2) float32 in [-1, 1].
    au_render: (T, 12) float32 AU intensities as drawn (jitter and twitches included).
    blink: (T,) float32 eyelid closure 0..1 as drawn.  intensity: (T,) float32 expression intensity.
    """

    expr: np.ndarray
    ce: np.ndarray
    au_label: np.ndarray
    va: np.ndarray
    au_render: np.ndarray
    blink: np.ndarray
    intensity: np.ndarray


def _curve(n: int, fps: float, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Onset-apex-offset intensity of one segment (n frames), smoothstep ramps, apex wobble."""
    onset = min(int(rng.uniform(0.25, 0.7) * fps), n // 3)
    offset = min(int(rng.uniform(0.25, 0.7) * fps), n // 3)
    t = np.arange(n, dtype=np.float64)
    rise = np.clip((t + 1) / max(onset, 1), 0, 1)
    fall = np.clip((n - t) / max(offset, 1), 0, 1)
    ramp = np.minimum(rise, fall)
    wobble = 1.0 + 0.08 * np.sin(2 * np.pi * t / fps * rng.uniform(0.3, 0.8) + rng.uniform(0, 2 * np.pi))
    return peak * ramp * ramp * (3 - 2 * ramp) * wobble


def _prototype_weights(expr: str, rng: np.random.Generator) -> np.ndarray:
    weights = np.zeros(len(AU_NAMES))
    if expr == "Other":
        for au in rng.choice(_OTHER_POOL, size=2, replace=False):
            weights[_AU[str(au)]] = rng.uniform(0.75, 1.0)
        return weights
    for au, (weight, prob) in PROTOTYPES[expr].items():
        if rng.random() < prob:
            weights[_AU[au]] = min(1.0, weight * rng.uniform(0.85, 1.1))
    return weights


def _segment_content(kind: TrackKind, previous: str, next_compound: list[int],
                     rng: np.random.Generator) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, AU weights (12,), target valence/arousal (2,)) of a new segment, never repeating `previous`.

    Compound classes come in turn from `next_compound[0]` on (advanced in place), so a few
    short CE videos still cover all seven classes.
    """
    while True:
        if rng.random() < _COMPOUND_SHARE[kind]:
            name = CE_NAMES[next_compound[0] % len(CE_NAMES)]
            next_compound[0] += 1
        else:
            name = EXPR_NAMES[rng.choice(len(EXPR_NAMES), p=_BASIC_PROBS / _BASIC_PROBS.sum())]
        if name != previous:
            break
    if name in COMPOUND_PARTS:
        first, second = COMPOUND_PARTS[name]
        weights = np.maximum(_prototype_weights(first, rng), _prototype_weights(second, rng))
        va = (np.array(CIRCUMPLEX[first]) + np.array(CIRCUMPLEX[second])) / 2
    elif name == "Other":
        weights, va = _prototype_weights(name, rng), np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.5)])
    else:
        weights, va = _prototype_weights(name, rng), np.array(CIRCUMPLEX[name])
    return name, weights, va + rng.normal(0, 0.08, size=2)


def _au_events(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(T, 12) labelled single-AU activations independent of the expression (talking, brow flashes)."""
    events = np.zeros((n, len(AU_NAMES)))
    for _ in range(rng.poisson(n / fps / 6)):
        length = int(rng.uniform(0.6, 1.5) * fps)
        if length >= n:
            continue
        start = int(rng.integers(0, n - length))
        au = rng.integers(len(AU_NAMES))
        events[start:start + length, au] = np.maximum(events[start:start + length, au],
                                                      _curve(length, fps, rng.uniform(0.6, 1.0), rng))
    return events


def _spikes(n: int, rate: float, profile: list[float], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-timed short pulses: (T,) amplitude and the start frames."""
    signal = np.zeros(n)
    starts = np.flatnonzero(rng.random(n) < rate)
    for s in starts:
        piece = np.array(profile[: n - s]) * rng.uniform(0.7, 1.0)
        signal[s:s + len(piece)] = np.maximum(signal[s:s + len(piece)], piece)
    return signal, starts


def make_track(n: int, fps: float, kind: TrackKind, rng: np.random.Generator, compound_start: int = 0) -> Track:
    """Draw one subject's affect for `n` frames: 'basic' (VA/EXPR/AU videos), 'compound' (CE), 'mixed' (test).

    Compound segments cycle through CE_NAMES starting at `compound_start`.
    """
    next_compound = [compound_start]
    intensity = np.zeros(n)
    au_latent = np.zeros((n, len(AU_NAMES)))
    va_target = np.zeros((n, 2))
    expr = np.zeros(n, dtype=np.int64)
    ce = np.full(n, -1, dtype=np.int64)
    start, previous = 0, "Neutral"
    while start < n:
        length = min(int(rng.uniform(1.0, 4.0) * fps), n - start)
        name, weights, va = _segment_content(kind, previous, next_compound, rng)
        curve = np.zeros(length) if name == "Neutral" else _curve(length, fps, rng.uniform(0.55, 1.0), rng)
        span = slice(start, start + length)
        intensity[span] = curve
        au_latent[span] = curve[:, None] * weights[None, :]
        va_target[span] = curve[:, None] * va[None, :]
        shown = curve >= EXPR_LABEL_THRESHOLD
        if name in COMPOUND_PARTS:
            ce[span] = np.where(shown, CE_NAMES.index(name), -1)
            expr[span] = np.where(shown, -1, 0)
        else:
            expr[span] = np.where(shown, _EXPR[name], 0)
        start, previous = start + length, name

    au_latent = np.maximum(au_latent, _au_events(n, fps, rng))
    drift = gaussian_filter1d(rng.normal(0, 1, size=(n, 2)), sigma=1.5 * fps, axis=0, mode="nearest")
    drift *= 0.08 / max(float(drift.std()), 1e-6)
    baseline = rng.normal([0.05, -0.05], 0.08)
    va = np.clip(gaussian_filter1d(va_target + baseline + drift, sigma=0.2 * fps, axis=0, mode="nearest"), -1, 1)

    # What is drawn: jittered intensities, unlabelled twitches, blinks.
    jitter = 1.0 + 0.3 * rng.normal(size=au_latent.shape)
    au_render = au_latent * jitter + 0.04 * np.abs(rng.normal(size=au_latent.shape))
    twitch, starts = _spikes(n, 0.8 / fps, [0.6, 1.0, 0.6], rng)
    for s in starts:
        au = rng.integers(len(AU_NAMES))
        au_render[s:s + 3, au] += twitch[s:s + 3] * rng.uniform(0.6, 1.0)
    blink, _ = _spikes(n, 0.35 / fps, [0.5, 1.0, 1.0, 0.4], rng)
    return Track(
        expr=expr, ce=ce, au_label=(au_latent >= AU_LABEL_THRESHOLD).astype(np.int64),
        va=va.astype(np.float32), au_render=np.clip(au_render, 0, 1.25).astype(np.float32),
        blink=np.clip(blink, 0, 1).astype(np.float32), intensity=intensity.astype(np.float32),
    )
