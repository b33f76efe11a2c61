"""Semi-supervised EXPR pseudo-labels: a teacher labels unlabelled frames, with the class imbalance kept in check.

The ABAW6 expression recipe (SEEDS.md) has three parts, each switchable:

- Pseudo-labels with per-class confidence thresholds. The teacher (an EXPR
  model of the temporal stage) is far less sure of rare classes, so one global threshold
  keeps almost only frequent classes. Each class's threshold is the global
  one scaled by the teacher's mean confidence on that class relative to its
  most confident class (the class-wise thresholds of FlexMatch).
- Class-uniform sampling: training windows are drawn with weights that make
  every expression class about equally frequent among the frames seen.
- Debiased feedback, in two halves as in DebiasPL (Wang et al. 2022):
  - counterfactual labels: the teacher's mean probability over the pool is
    its response bias, what it answers whatever the frame shows; a frame's
    label comes from log p - strength * log(that mean), the teacher's evidence
    with the bias taken out, so over-predicted classes stop taking the
    borderline frames of rare ones (`debias_labels`);
  - adaptive margins: the kept labels still lean to frequent classes, so the
    student's logits on pseudo-labelled frames get + log(prior of the kept
    labels) before the loss (logit adjustment, Menon et al. 2021) and the raw
    logits used at inference are not pushed towards the pool's majority
    (`debias`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline_lib.data.labels import CLASS_INVALID, EXPR_NAMES

__all__ = ["PseudoLabels", "class_thresholds", "counterfactual_probs", "make_pseudo_labels", "truth_agreement",
           "uniform_window_weights"]

N_CLASSES = len(EXPR_NAMES)


def class_thresholds(probs: np.ndarray, threshold: float, per_class: bool = True) -> np.ndarray:
    """(K,) confidence thresholds from teacher probabilities (N, K).

    Without `per_class` every class gets `threshold`. With it, class c gets
    threshold * mean_conf_c / max_k mean_conf_k, where mean_conf_c is the mean
    top probability of the frames the teacher assigns to c; a class the
    teacher never predicts keeps `threshold`.
    """
    k = probs.shape[1] if probs.ndim == 2 else N_CLASSES
    flat = np.full(k, float(threshold))
    if not per_class or len(probs) == 0:
        return flat
    predicted, confidence = probs.argmax(1), probs.max(1)
    sums = np.bincount(predicted, weights=confidence, minlength=k)
    counts = np.bincount(predicted, minlength=k)
    mean = np.divide(sums, counts, out=np.zeros(k), where=counts > 0)
    if not mean.any():
        return flat
    return np.where(counts > 0, threshold * mean / mean.max(), threshold)


def counterfactual_probs(probs: np.ndarray, bias: np.ndarray, strength: float) -> np.ndarray:
    """(T, K) probabilities with the teacher's response bias divided out: softmax(log probs - strength * log bias).

    bias: (K,) the teacher's mean probability over the pool it labels. Strength 0
    returns `probs` unchanged; 1 fully equalises what the teacher hands out on average.
    """
    if strength == 0 or len(probs) == 0:
        return probs
    # probs / bias**strength is the softmax of the shifted logits; a zero probability stays zero. Float64:
    # float16 probabilities would turn a tiny bias into an infinite weight.
    weights = np.clip(np.asarray(bias, np.float64), 1e-12, None) ** -strength  # (K,)
    adjusted = np.asarray(probs, np.float64) * weights  # (T, K)
    return (adjusted / adjusted.sum(1, keepdims=True)).astype(probs.dtype)


@dataclass(frozen=True)
class PseudoLabels:
    """Teacher labels per video ((T,) int64, -1 where none) and what the pool looked like."""

    labels: dict[str, np.ndarray]
    thresholds: np.ndarray  # (K,)
    prior: np.ndarray  # (K,) class shares among the kept pseudo-labels (add-one smoothed)
    pool_frames: int  # frames the teacher was asked about
    kept_per_class: np.ndarray  # (K,) int64
    teacher_mean: np.ndarray  # (K,) the teacher's mean probability over the pool (its response bias)

    @property
    def kept(self) -> int:
        return int(self.kept_per_class.sum())

    def summary(self) -> dict[str, object]:
        return {"pool_frames": self.pool_frames, "kept_frames": self.kept,
                "kept_per_class": {n: int(c) for n, c in zip(EXPR_NAMES, self.kept_per_class, strict=True)},
                "thresholds": {n: round(float(t), 4) for n, t in zip(EXPR_NAMES, self.thresholds, strict=True)},
                "prior": {n: round(float(p), 4) for n, p in zip(EXPR_NAMES, self.prior, strict=True)},
                "teacher_mean": {n: round(float(p), 4) for n, p in zip(EXPR_NAMES, self.teacher_mean, strict=True)}}


def make_pseudo_labels(teacher: Mapping[str, np.ndarray], eligible: Mapping[str, np.ndarray], threshold: float,
                       per_class: bool = True, counterfactual: float = 0.0) -> PseudoLabels:
    """Label the eligible frames the teacher is confident about.

    teacher: video -> (T, K) class probabilities; eligible: video -> (T,) bool
    (a face, no EXPR label, a training or unlabelled video). With
    `counterfactual` > 0 the probabilities first lose the teacher's response
    bias (`counterfactual_probs` with its mean over the eligible frames). A
    frame is kept when its top probability reaches its predicted class's threshold.
    """
    names = [n for n in teacher if n in eligible]
    pooled = [teacher[n][eligible[n]] for n in names]
    pool = np.concatenate(pooled) if pooled else np.zeros((0, N_CLASSES), np.float32)  # (N, K)
    teacher_mean = pool.mean(0) if len(pool) else np.full(N_CLASSES, 1.0 / N_CLASSES)  # (K,)
    adjusted = {n: counterfactual_probs(teacher[n], teacher_mean, counterfactual) for n in names}
    thresholds = class_thresholds(counterfactual_probs(pool, teacher_mean, counterfactual), threshold, per_class)
    labels: dict[str, np.ndarray] = {}
    kept = np.zeros(N_CLASSES, np.int64)
    for name in names:
        probs = adjusted[name]  # (T, K)
        predicted = probs.argmax(1)
        keep = eligible[name] & (probs.max(1) >= thresholds[predicted])
        labels[name] = np.where(keep, predicted, CLASS_INVALID).astype(np.int64)
        kept += np.bincount(predicted[keep], minlength=N_CLASSES)
    prior = (kept + 1.0) / (kept.sum() + N_CLASSES)
    return PseudoLabels(labels, thresholds, prior, len(pool), kept, teacher_mean)


def uniform_window_weights(window_classes: Sequence[np.ndarray], n_classes: int = N_CLASSES) -> np.ndarray:
    """(N,) sampling weights for class-uniform training: each window's mean inverse class frequency.

    window_classes: per window, the EXPR class of each frame (-1 = none, real
    or pseudo labels alike). Frequencies count frames over all windows. A
    window without an EXPR frame (it still teaches VA and AU) gets the median
    weight of the others. Weights sum to 1.
    """
    if not window_classes:
        return np.zeros(0)
    labelled = [c[c != CLASS_INVALID].astype(np.int64) for c in window_classes]
    counts = np.bincount(np.concatenate(labelled), minlength=n_classes).astype(np.float64)
    inverse = np.divide(1.0, counts, out=np.zeros(n_classes), where=counts > 0)
    weights = np.array([inverse[c].mean() if len(c) else np.nan for c in labelled])
    filler = np.nanmedian(weights) if np.isfinite(weights).any() else 1.0
    weights = np.where(np.isfinite(weights), weights, filler)
    return weights / weights.sum()


def truth_agreement(labels: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray]) -> dict[str, object]:
    """How the kept pseudo-labels compare with the true classes, where a corpus knows them (the demo does).

    labels: video -> (T,) pseudo class or -1; truth: video -> (T',) true class, -1 where the frame shows no
    basic expression (a compound one, an unannotated span). Videos without truth and frames past either end
    are skipped. Precision is over kept frames that have a true class; `chance` is what always guessing
    the most frequent true class among them would score, the floor a useful teacher must clear.
    """
    predicted, actual = [], []
    for name, pseudo in labels.items():
        if name not in truth:
            continue
        n = min(len(pseudo), len(truth[name]))
        kept = pseudo[:n] != CLASS_INVALID
        predicted.append(pseudo[:n][kept])
        actual.append(np.asarray(truth[name][:n], np.int64)[kept])
    pred = np.concatenate(predicted) if predicted else np.zeros(0, np.int64)
    true = np.concatenate(actual) if actual else np.zeros(0, np.int64)
    has = true != CLASS_INVALID
    right = pred[has] == true[has]
    per_class = {}
    for k, name in enumerate(EXPR_NAMES):
        given = pred[has] == k
        per_class[name] = round(float(right[given].mean()), 4) if given.any() else None
    counts = np.bincount(true[has], minlength=N_CLASSES)
    return {"frames": int(len(pred)), "frames_with_truth": int(has.sum()),
            "frames_without_basic_truth": int((~has).sum()),
            "precision": round(float(right.mean()), 4) if has.any() else None,
            "chance": round(float(counts.max() / has.sum()), 4) if has.any() else None,
            "per_class_precision": per_class}
