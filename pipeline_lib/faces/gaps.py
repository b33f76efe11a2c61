"""Short face gaps filled from their neighbours (opt-in, and always marked as filled).

A face missed for a frame or two inside a continuous shot (motion blur, a hand
passing) would otherwise punch holes into every temporal window over it. Only
gaps with a present face on both sides and at most `max_gap` frames long are
filled: the crop is copied from the nearer neighbour and boxes and landmarks
are interpolated linearly. Leading and trailing gaps are never filled.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fillable_gaps", "interpolate_gaps", "nearest_source"]


def fillable_gaps(present: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Half-open frame ranges [start, stop) of absent frames with a present frame on each side, at most `max_gap`
    long."""
    if max_gap <= 0:
        return []
    present = np.asarray(present, dtype=bool)
    edges = np.diff(np.concatenate([[1], present.astype(np.int8), [1]]))
    starts, stops = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return [(int(a), int(b)) for a, b in zip(starts, stops)
            if a > 0 and b < len(present) and b - a <= max_gap]


def interpolate_gaps(values: np.ndarray, gaps: list[tuple[int, int]]) -> np.ndarray:
    """Copy of `values` (T, ...) with each gap linearly interpolated between the frames around it."""
    out = values.copy()
    for start, stop in gaps:
        before, after = values[start - 1], values[stop]
        weights = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))  # (G,) in (0, 1)
        shape = (-1,) + (1,) * (values.ndim - 1)
        out[start:stop] = (1 - weights.reshape(shape)) * before + weights.reshape(shape) * after
    return out


def nearest_source(start: int, stop: int, t: int) -> int:
    """The present frame a gap frame copies its crop from: the nearer side, the earlier one on ties."""
    return start - 1 if t - (start - 1) <= stop - t else stop
