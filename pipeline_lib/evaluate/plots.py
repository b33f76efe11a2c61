"""Evaluate-stage figures: confusion matrices, per-AU F1 bars, VA scatter and VA time series.

Each function draws one figure on a bare `Figure` with the Agg canvas (no
pyplot, so no global figure registry to leak or close and no display needed),
writes it as a PNG atomically and returns the path. Invalid markers are
dropped the way `pipeline_lib.metrics` drops them, so a plot never shows
frames the reported score ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from pipeline_lib.data.labels import CLASS_INVALID, VA_INVALID, VA_NAMES
from pipeline_lib.files import atomic_path
from pipeline_lib.metrics import ccc

__all__ = ["au_f1_bars_png", "confusion_counts", "confusion_matrix_png", "va_scatter_png", "va_timeseries_png"]

MAX_SCATTER_POINTS: Final[int] = 20_000  # beyond this a scatter is an opaque blob and slow to rasterise
DPI: Final[int] = 100


def _save(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` via a hidden partial file, so a crash never leaves a truncated PNG."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path, keep_suffix=True) as partial:
        fig.savefig(partial, format="png", dpi=DPI)
    return path


def _class_labels(values: np.ndarray, what: str) -> np.ndarray:
    """(N,) int64 copy of integral class labels; float label arrays (the (T, 15) layout) are accepted."""
    v = np.asarray(values)
    if v.ndim != 1:
        raise ValueError(f"{what} must have shape (N,), got {v.shape}")
    if not (np.isfinite(v).all() and (v == np.round(v)).all()):
        raise ValueError(f"{what} must hold integer class indices")
    return v.astype(np.int64)


def confusion_counts(true: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = annotated class, columns = predicted; frames with true == -1 dropped.

    Raises ValueError on shape mismatch, labels outside 0..C-1 (sklearn would
    silently ignore them) or when no annotated frame remains.
    """
    t, p = _class_labels(true, "true"), _class_labels(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"true and pred need equal shapes, got {t.shape} and {p.shape}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    keep = t != CLASS_INVALID  # (N,)
    if not keep.any():
        raise ValueError("confusion matrix: no annotated frames (every true label is -1)")
    t, p = t[keep], p[keep]  # (n,)
    for arr, what in ((t, "true"), (p, "pred")):
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{what} labels must lie in 0..{n_classes - 1}, got {arr.min()}..{arr.max()}")
    return confusion_matrix(t, p, labels=list(range(n_classes))).astype(np.int64)


def confusion_matrix_png(true: np.ndarray, pred: np.ndarray, names: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix (colour = share of the true class) with raw counts in the cells."""
    counts = confusion_counts(true, pred, len(names))  # (C, C)
    totals = counts.sum(axis=1, keepdims=True)  # (C, 1)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)  # absent classes stay 0
    n = len(names)
    side = max(5.0, 0.6 * n + 2.5)
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            # Dark text would vanish on the darkest cells.
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels=list(names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=list(names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("annotated")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of annotated class")
    return _save(fig, path)


def au_f1_bars_png(scores: Mapping[str, Mapping[str, float]], path: Path, title: str) -> Path:
    """Grouped bars: one group per AU (the first model's key order), one colour per model, y in [0, 1]."""
    if not scores:
        raise ValueError("au_f1_bars_png needs at least one model")
    models = list(scores)
    aus = list(scores[models[0]])
    if not aus:
        raise ValueError(f"model {models[0]!r} has no AU scores")
    for model in models:
        missing = [au for au in aus if au not in scores[model]]
        if missing:
            raise ValueError(f"model {model!r} lacks scores for {missing}")
    x = np.arange(len(aus))  # (A,)
    width = 0.8 / len(models)
    fig = Figure(figsize=(max(6.0, 0.5 * len(aus) * max(1, len(models)) ** 0.5 + 2.0), 4.5), layout="constrained")
    ax = fig.add_subplot()
    for k, model in enumerate(models):
        heights = [float(scores[model][au]) for au in aus]  # (A,)
        ax.bar(x + (k - (len(models) - 1) / 2) * width, heights, width, label=model)
    ax.set_xticks(x, labels=aus, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _va_pair(pred: np.ndarray, true: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape != t.shape:
        raise ValueError(f"{what} needs pred and true of shape (N, 2), got {p.shape} and {t.shape}")
    if p.shape[0] == 0:
        raise ValueError(f"{what}: no frames")
    return p, t


def _annotated(t: np.ndarray) -> np.ndarray:
    """(N, 2) bool: per-column annotation mask, as va_score drops frames per dimension."""
    return (t != VA_INVALID) & np.isfinite(t)


def va_scatter_png(pred: np.ndarray, true: np.ndarray, path: Path, title: str) -> Path:
    """Predicted vs annotated valence and arousal (N, 2), CCC per panel; a column with no annotation is left blank."""
    p, t = _va_pair(pred, true, "va_scatter_png")
    keep = _annotated(t)  # (N, 2)
    if not keep.any():
        raise ValueError("va_scatter_png: no annotated valence or arousal frames")
    fig = Figure(figsize=(10.0, 5.0), layout="constrained")
    fig.suptitle(title)
    for column, (ax, name) in enumerate(zip(fig.subplots(1, 2), VA_NAMES, strict=True)):
        ax.plot([-1, 1], [-1, 1], color="grey", linewidth=1, linestyle="--")
        ax.set(xlim=(-1, 1), ylim=(-1, 1), aspect="equal", xlabel=f"annotated {name}", ylabel=f"predicted {name}")
        if not keep[:, column].any():
            ax.set_title(f"{name}: no annotated frames")
            continue
        p_col, t_col = p[keep[:, column], column], t[keep[:, column], column]  # (n,)
        # CCC on every frame; only the drawing is thinned.
        ax.set_title(f"{name}: CCC {ccc(p_col, t_col):.3f} (n={p_col.size})")
        step = math.ceil(p_col.size / MAX_SCATTER_POINTS)
        ax.scatter(t_col[::step], p_col[::step], s=3, alpha=0.3, linewidths=0)
    return _save(fig, path)


def va_timeseries_png(video: str, pred: np.ndarray, true: np.ndarray, path: Path,
                      smoothed: np.ndarray | None = None) -> Path:
    """Valence and arousal of one video against frame index: annotation (gaps where -5), raw and smoothed prediction."""
    p, t = _va_pair(pred, true, "va_timeseries_png")  # (T, 2)
    s = None
    if smoothed is not None:
        s = np.asarray(smoothed, dtype=np.float64)
        if s.shape != p.shape:
            raise ValueError(f"smoothed must match pred's shape {p.shape}, got {s.shape}")
    # NaN breaks the line, so unannotated stretches show as gaps instead of dives to -5.
    annotation = np.where(_annotated(t), t, np.nan)  # (T, 2)
    frames = np.arange(p.shape[0])  # (T,)
    fig = Figure(figsize=(12.0, 6.0), layout="constrained")
    fig.suptitle(video)
    for column, (ax, name) in enumerate(zip(fig.subplots(2, 1, sharex=True), VA_NAMES, strict=True)):
        ax.plot(frames, annotation[:, column], color="black", linewidth=1.5, label="annotation", zorder=3)
        ax.plot(frames, p[:, column], color="tab:blue", linewidth=0.6, alpha=0.7, label="prediction")
        if s is not None:
            ax.plot(frames, s[:, column], color="tab:orange", linewidth=1.8, label="smoothed")
        ax.set(ylim=(-1.05, 1.05), ylabel=name)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("frame")
    return _save(fig, path)
