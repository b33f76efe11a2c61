"""From a subject's clean track to what an annotator would have written.

Annotation noise: a lag of 0-2 frames, slowly varying valence/arousal error
(rounded to 3 decimals), short EXPR runs swapped for a confusable class,
AU boundaries moved by a frame and short AU flips. Then the official
invalid markers: every task is invalid where the face is absent, and some
videos get one extra invalid span in one task. Finally the per-task file
arrays get the planned length mismatch (1-3 lines more or fewer than frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, gaussian_filter1d

from pipeline_lib.data.demo.timeline import Track
from pipeline_lib.data.labels import CLASS_INVALID, COL_AU, COL_EXPR, EXPR_NAMES, VA_INVALID, empty_labels, task_spec

__all__ = ["SubjectLabels", "annotate", "file_values"]

_E = {name: i for i, name in enumerate(EXPR_NAMES)}
# What an annotator confuses each expression with.
_CONFUSABLE: Final[dict[int, tuple[int, ...]]] = {
    _E["Neutral"]: (_E["Other"], _E["Sadness"]), _E["Anger"]: (_E["Disgust"],), _E["Disgust"]: (_E["Anger"],),
    _E["Fear"]: (_E["Surprise"],), _E["Happiness"]: (_E["Neutral"],), _E["Sadness"]: (_E["Neutral"],),
    _E["Surprise"]: (_E["Fear"], _E["Happiness"]), _E["Other"]: (_E["Neutral"],),
}


@dataclass(frozen=True, eq=False)
class SubjectLabels:
    """Frame-aligned labels of one subject: `labels` (T, 15) float32 and `ce` (T,) int64, markers included.

    They hold every task whether or not it is written to disk; `clean`/`ce_clean` are the noise-free
    labels (still invalid where the face is absent).
    """

    labels: np.ndarray
    ce: np.ndarray
    clean: np.ndarray
    ce_clean: np.ndarray


def _lagged(values: np.ndarray, lag: int) -> np.ndarray:
    if lag == 0:
        return values.copy()
    return np.concatenate([np.repeat(values[:1], lag, axis=0), values[:-lag]])


def _runs(n: int, rate_per_frame: float, lengths: tuple[int, int], rng: np.random.Generator) -> list[slice]:
    starts = np.flatnonzero(rng.random(n) < rate_per_frame)
    return [slice(int(s), int(s) + int(rng.integers(*lengths))) for s in starts]


def _clean_labels(track: Track) -> np.ndarray:
    labels = empty_labels(len(track.expr))
    labels[:, :2] = track.va
    labels[:, COL_EXPR] = track.expr
    labels[:, COL_AU] = track.au_label
    return labels


def annotate(track: Track, present: np.ndarray, fps: float, tasks: tuple[str, ...], invalid_span: bool,
             rng: np.random.Generator) -> SubjectLabels:
    """Noisy, marker-carrying labels of one subject; `tasks` limits where the extra invalid span may fall."""
    n = len(track.expr)
    lag = int(rng.integers(0, 3))
    clean = _clean_labels(track)
    labels = _lagged(clean, lag)
    ce = _lagged(track.ce, lag)

    error = gaussian_filter1d(rng.normal(0, 1, size=(n, 2)), sigma=0.4 * fps, axis=0, mode="nearest")
    error *= 0.04 / max(float(error.std()), 1e-6)
    labels[:, :2] = np.round(np.clip(labels[:, :2] + error, -1, 1), 3)

    for run in _runs(n, 1 / (8 * fps), (2, 7), rng):
        current = int(labels[run.start, COL_EXPR])
        if current >= 0:
            labels[run, COL_EXPR] = rng.choice(_CONFUSABLE[current])
    aus = labels[:, COL_AU] > 0.5
    a: int | np.integer  # a range index below, then an index drawn by rng.integers
    for a in range(aus.shape[1]):
        move = rng.integers(-1, 2)
        if move > 0:
            aus[:, a] = binary_dilation(aus[:, a], iterations=1)
        elif move < 0:
            aus[:, a] = binary_erosion(aus[:, a], iterations=1, border_value=1)
    for run in _runs(n, 1 / (10 * fps), (2, 6), rng):
        a = rng.integers(aus.shape[1])
        aus[run, a] = ~aus[run, a]
    labels[:, COL_AU] = aus

    absent = ~np.asarray(present, dtype=bool)
    for array in (labels, clean):
        array[absent, :2] = VA_INVALID
        array[absent, 2:] = CLASS_INVALID
    ce_clean = np.where(absent, CLASS_INVALID, track.ce)
    ce = np.where(absent, CLASS_INVALID, ce)

    if invalid_span and tasks and n > 4:
        length = min(int(rng.uniform(0.5, 1.5) * fps), n // 2)
        start = int(rng.integers(0, n - length))
        task = tasks[int(rng.integers(len(tasks)))]
        span = slice(start, start + length)
        spec = task_spec(task)
        if spec.columns:
            labels[span, list(spec.columns)] = spec.invalid
        else:
            ce[span] = spec.invalid
    return SubjectLabels(labels=labels.astype(np.float32), ce=ce.astype(np.int64), clean=clean.astype(np.float32),
                         ce_clean=ce_clean.astype(np.int64))


def file_values(labels: SubjectLabels, task: str, count_delta: int) -> np.ndarray:
    """The array written to `task`'s file (as write_annotation takes it), `count_delta` lines off the frame count."""
    spec = task_spec(task)
    values = spec.values(labels.labels) if spec.columns else labels.ce.astype(np.int64)
    if count_delta < 0:
        return values[:count_delta]
    if count_delta > 0:
        return np.concatenate([values, np.repeat(values[-1:], count_delta, axis=0)])
    return values
