"""Official ABAW metrics, per-AU threshold tuning and VA temporal smoothing.

One place computes every score the challenge reports, so training loops that
pick a best epoch, the evaluate stage and the tests agree on the numbers:
CCC for valence/arousal, macro F1 over 8 expressions or 7 compound classes,
mean binary F1 over 12 AUs, and the MTL sum of the three. Frames carrying the
official "not annotated" markers (VA -5, EXPR/AU/CE -1) are dropped exactly
as the challenge drops them: per VA dimension and per AU column, not per row.
Pure numpy + scikit-learn, so it runs anywhere the labels do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from sklearn.metrics import f1_score

from pipeline_lib.data.labels import (
    AU_NAMES,
    CLASS_INVALID,
    COL_AROUSAL,
    COL_AU,
    COL_EXPR,
    COL_VALENCE,
    VA_INVALID,
    Task,
    task_spec,
)

__all__ = [
    "apply_au_thresholds", "au_f1", "ccc", "ce_f1", "expr_f1", "macro_f1", "mtl_from_predictions",
    "mtl_score", "smooth_va", "task_scores", "tune_au_thresholds", "va_score",
]

N_AU: Final[int] = len(AU_NAMES)
DEFAULT_AU_GRID: Final[np.ndarray] = np.linspace(0.05, 0.95, 19)


def ccc(pred: np.ndarray, true: np.ndarray) -> float:
    """Concordance correlation coefficient (population statistics, ddof=0), as the challenge computes it.

    Unlike Pearson's r it also punishes shifted or rescaled predictions, which
    is why ABAW ranks VA with it. Degenerate input never yields NaN: two
    identical constants score 1.0, otherwise a zero denominator scores 0.0.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"ccc needs equal shapes, got pred {p.shape} and true {t.shape}")
    if p.size == 0:
        raise ValueError("ccc of empty input is undefined")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("ccc input holds non-finite values; filter invalid frames first")
    p, t = p.ravel(), t.ravel()
    # Decide constants exactly: rounding leaves ~1e-34 variances on constant 0.1s.
    if (p == p[0]).all() and (t == t[0]).all():
        return 1.0 if p[0] == t[0] else 0.0
    mean_p, mean_t = p.mean(), t.mean()
    cov = np.mean((p - mean_p) * (t - mean_t))
    denominator = p.var() + t.var() + (mean_p - mean_t) ** 2
    return float(2.0 * cov / denominator) if denominator > 0 else 0.0


def va_score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """CCC of valence and arousal (N, 2) and their mean; invalid frames dropped per dimension.

    A frame whose valence is -5 but whose arousal is annotated still counts
    for arousal, as in the official evaluation. Non-finite labels are dropped too.
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape != t.shape:
        raise ValueError(f"va_score needs pred and true of shape (N, 2), got {p.shape} and {t.shape}")
    scores = {}
    for column, name in enumerate(("valence", "arousal")):
        keep = (t[:, column] != VA_INVALID) & np.isfinite(t[:, column])  # (N,)
        if not keep.any():
            raise ValueError(f"va_score: no annotated {name} frames")
        scores[f"ccc_{name}"] = ccc(p[keep, column], t[keep, column])
    scores["ccc_mean"] = (scores["ccc_valence"] + scores["ccc_arousal"]) / 2.0
    return scores


def _macro_f1(pred: np.ndarray, true: np.ndarray, n_classes: int, what: str) -> float:
    """Macro F1 over classes 0..n_classes-1 on the frames whose label is not the -1 marker."""
    p, t = np.asarray(pred), np.asarray(true)
    if p.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"{what} needs pred and true of shape (N,), got {p.shape} and {t.shape}")
    keep = t != CLASS_INVALID  # (N,)
    if not keep.any():
        raise ValueError(f"{what}: no annotated frames")
    return float(f1_score(t[keep].astype(np.int64), p[keep].astype(np.int64), labels=list(range(n_classes)),
                          average="macro", zero_division=0))


def macro_f1(task: str | Task, pred: np.ndarray, true: np.ndarray) -> float:
    """Macro F1 over the classes of a multiclass task (EXPR 8, CE 7) on the frames not marked -1."""
    spec = task_spec(task)
    return _macro_f1(pred, true, spec.outputs, f"{spec.key}_f1")


def expr_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """Macro F1 over the 8 expressions (classes absent from both sides count as 0, as officially)."""
    return macro_f1("expr", pred, true)


def ce_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """Macro F1 over the 7 compound expressions."""
    return macro_f1("ce", pred, true)


def _check_au(pred: np.ndarray, true: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred), np.asarray(true)
    if p.ndim != 2 or p.shape[1] != N_AU or p.shape != t.shape:
        raise ValueError(f"{what} needs pred and true of shape (N, {N_AU}), got {p.shape} and {t.shape}")
    return p, t


def au_f1(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Binary F1 per AU (keys AU1 .. AU26) and their mean ("mean"); -1 frames dropped per AU column.

    `pred` must hold hard 0/1 decisions (see `apply_au_thresholds`): a
    probability passed by mistake would otherwise be scored silently. An AU
    with no annotated frame scores 0.0, like an AU never present.
    """
    p, t = _check_au(pred, true, "au_f1")
    if not np.isin(p, (0, 1)).all():
        raise ValueError("au_f1 needs 0/1 predictions; threshold probabilities with apply_au_thresholds")
    scores = {}
    for column, name in enumerate(AU_NAMES):
        keep = t[:, column] != CLASS_INVALID  # (N,)
        scores[name] = float(f1_score(t[keep, column].astype(np.int64), p[keep, column].astype(np.int64),
                                      average="binary", pos_label=1, zero_division=0)) if keep.any() else 0.0
    scores["mean"] = float(np.mean([scores[name] for name in AU_NAMES]))
    return scores


def mtl_score(ccc_mean: float, expr_f1: float, au_f1_mean: float) -> float:
    """The MTL challenge score: CCC_mean + F1_EXPR + F1_AU (at most 3.0)."""
    return float(ccc_mean + expr_f1 + au_f1_mean)


def mtl_from_predictions(va_pred: np.ndarray, expr_pred: np.ndarray, au_pred: np.ndarray,
                         labels: np.ndarray) -> dict[str, float]:
    """All MTL components and their sum from predictions and (N, 15) labels in the house layout."""
    labels = np.asarray(labels)
    va = va_score(va_pred, labels[:, [COL_VALENCE, COL_AROUSAL]])
    expr = expr_f1(expr_pred, labels[:, COL_EXPR])
    au = au_f1(au_pred, labels[:, COL_AU])["mean"]
    return {**va, "expr_f1": expr, "au_f1_mean": au, "mtl": mtl_score(va["ccc_mean"], expr, au)}


def tune_au_thresholds(probs: np.ndarray, true: np.ndarray,
                       grid: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """(12,) per-AU decision thresholds that maximise F1 on these (validation) frames.

    AU base rates differ a lot, so one global 0.5 costs F1 on rare AUs; the
    strong ABAW entries tune per AU on validation. Predictions are
    `probs >= threshold`. Ties go to the threshold nearest 0.5 (then the lower
    one), so a flat F1 curve does not drift to an extreme; an AU without
    annotated frames or without a positive keeps 0.5.
    """
    p, t = _check_au(probs, true, "tune_au_thresholds")
    thresholds_grid = np.asarray(DEFAULT_AU_GRID if grid is None else grid, dtype=np.float64)  # (G,)
    if thresholds_grid.ndim != 1 or thresholds_grid.size == 0:
        raise ValueError("tune_au_thresholds needs a non-empty 1-D grid")
    # Preference order for ties: nearest to 0.5, then lower (rounding makes 0.45/0.55 tie).
    order = np.lexsort((thresholds_grid, np.round(np.abs(thresholds_grid - 0.5), 9)))  # (G,)
    best = np.full(N_AU, 0.5)
    for column in range(N_AU):
        keep = t[:, column] != CLASS_INVALID
        positive = t[keep, column] == 1  # (n,)
        if not positive.any():
            continue
        predicted = p[keep, column][:, None] >= thresholds_grid[None, :]  # (n, G)
        tp = (predicted & positive[:, None]).sum(axis=0)  # (G,)
        fp = predicted.sum(axis=0) - tp
        fn = positive.sum() - tp
        f1 = 2.0 * tp / np.maximum(2 * tp + fp + fn, 1)  # (G,); exact ties for equal ratios
        candidates = order[f1[order] == f1.max()]
        best[column] = thresholds_grid[candidates[0]]
    return best


def apply_au_thresholds(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(N, 12) int64 0/1 decisions `probs >= thresholds`, the rule `tune_au_thresholds` optimised."""
    p, th = np.asarray(probs), np.asarray(thresholds, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_AU or th.shape != (N_AU,):
        raise ValueError(f"apply_au_thresholds needs probs (N, {N_AU}) and thresholds ({N_AU},), "
                         f"got {p.shape} and {th.shape}")
    return (p >= th[None, :]).astype(np.int64)


def smooth_va(values: np.ndarray, window: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Centred moving average along time of (T,) or (T, C) predictions; same shape back.

    Labels change slowly while per-frame predictions jitter, so averaging a
    few frames raises CCC. Frame t averages frames t-(window-1)//2 .. t+window//2
    (even windows lean one frame to the future) that exist and are valid:
    the window shrinks at the ends instead of padding, and invalid (no-face)
    or non-finite frames are neither averaged in nor changed.
    Window 0 or 1 returns a copy. O(T) via cumulative sums.
    """
    x = np.asarray(values)
    if x.ndim not in (1, 2):
        raise ValueError(f"smooth_va needs values of shape (T,) or (T, C), got {x.shape}")
    if window < 0:
        raise ValueError(f"smooth_va window must be >= 0, got {window}")
    n_frames = x.shape[0]
    mask = np.ones(n_frames, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if mask.shape != (n_frames,):
        raise ValueError(f"smooth_va valid mask must be ({n_frames},), got {mask.shape}")
    if window <= 1 or n_frames == 0:
        return x.copy()
    columns = x.reshape(n_frames, -1).astype(np.float64)  # (T, C)
    use = mask[:, None] & np.isfinite(columns)  # (T, C)
    zero_row = np.zeros((1, columns.shape[1]))
    sums = np.concatenate([zero_row, np.cumsum(np.where(use, columns, 0.0), axis=0)])  # (T+1, C)
    counts = np.concatenate([zero_row, np.cumsum(use, axis=0)])  # (T+1, C)
    frames = np.arange(n_frames)
    lo = np.clip(frames - (window - 1) // 2, 0, n_frames)  # (T,)
    hi = np.clip(frames + window // 2 + 1, 0, n_frames)  # (T,)
    means = (sums[hi] - sums[lo]) / np.maximum(counts[hi] - counts[lo], 1)  # (T, C)
    smoothed = np.where(use, means, columns).reshape(x.shape)
    return smoothed.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else smoothed


def task_scores(task: str | Task, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The official metric of `task` (keyed by its record's `metric`) and its parts, from activated outputs.

    outputs: VA (N, 2) values, EXPR (N, 8) / CE (N, 7) probabilities, AU (N, 12) probabilities; labels in the
    official layout with its "not annotated" markers: VA (N, 2), EXPR / CE (N,) or (N, 1), AU (N, 12).
    Classes are the argmax; AUs use a 0.5 threshold (tuned per-AU thresholds are evaluate's business).
    """
    spec = task_spec(task)
    if spec.kind == "regression":
        return va_score(outputs, labels)
    if spec.kind == "multiclass":
        true = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)  # (N,)
        return {spec.metric: macro_f1(spec.key, np.asarray(outputs).argmax(1), true)}
    scores = au_f1((np.asarray(outputs) >= 0.5).astype(np.int64), np.asarray(labels).astype(np.int64))
    return {spec.metric: scores.pop("mean"), **{f"f1_{k}": v for k, v in scores.items()}}
