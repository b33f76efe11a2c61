"""Official metrics of every model on validation, with the challenge post-processing tuned there.

Post-processing, fitted on validation and applied unchanged to test:
- VA: centred moving average over `va_smoothing` frames (face frames only);
- AU: one decision threshold per AU (`metrics.tune_au_thresholds`);
- EXPR / CE: argmax.
Each task's submission model is the one with the best post-processed
validation score. Tuned-on-validation scores are optimistic for that split;
the untuned ones sit beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from pipeline_lib.data.labels import AU_NAMES, BASIC_KEYS, TASKS
from pipeline_lib.evaluate.sources import EvalData, EvalVideo
from pipeline_lib.metrics import (
    apply_au_thresholds,
    au_f1,
    macro_f1,
    mtl_score,
    smooth_va,
    tune_au_thresholds,
    va_score,
)

__all__ = ["UNSCORED_MODEL", "PostProcess", "Scored", "decide", "mtl_of", "score_models", "truth"]


@dataclass(frozen=True)
class PostProcess:
    """How one model's outputs become challenge predictions."""

    task: str
    va_smoothing: int = 1
    au_thresholds: np.ndarray = field(default_factory=lambda: np.full(len(AU_NAMES), 0.5))


def decide(post: PostProcess, outputs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """One video's (T, O) model outputs -> challenge values: VA (T, 2) float32, EXPR / CE (T,) int64,
    AU (T, 12) int64 0/1."""
    kind = TASKS[post.task].kind
    if kind == "regression":
        return np.clip(smooth_va(outputs.astype(np.float32), post.va_smoothing, valid), -1.0, 1.0)
    if kind == "multilabel":
        return apply_au_thresholds(outputs, post.au_thresholds)
    return outputs.argmax(1).astype(np.int64)


def truth(task: str, videos: list[EvalVideo]) -> np.ndarray:
    """Concatenated labels with the official invalid markers: VA (N, 2), EXPR / CE (N,), AU (N, 12)."""
    spec = TASKS[task]
    if not spec.columns:  # CE, kept apart from the (T, 15) layout
        return np.concatenate([v.ce for v in videos])
    return np.concatenate([spec.values(v.labels) for v in videos])


def _score(task: str, pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The official metric and its parts of decided predictions (`decide`), rounded as metrics files hold them."""
    spec = TASKS[task]
    if spec.kind == "regression":
        return {k: round(float(v), 4) for k, v in va_score(pred, true).items()}
    if spec.kind == "multilabel":
        scores = au_f1(pred, true)
        return {spec.metric: round(scores.pop("mean"), 4), **{f"f1_{k}": round(v, 4) for k, v in scores.items()}}
    return {spec.metric: round(macro_f1(task, pred, true), 4)}

# What a task without validation labels submits (C-EXPR-DB ships no CE labels): the last model of the chain,
# with the default post-processing.
UNSCORED_MODEL: Final[dict[str, str]] = {"va": "fusion", "expr": "fusion", "au": "fusion", "ce": "compound"}


@dataclass
class Scored:
    """Per task: each model's scores (raw and post-processed), its post-processing and the chosen model."""

    scores: dict[str, dict[str, dict[str, Any]]]
    post: dict[str, dict[str, PostProcess]]
    best: dict[str, str]

    def headline(self, task: str, model: str | None = None) -> float:
        return float(self.scores[task][model or self.best[task]]["post"][TASKS[task].metric])

    def submitted(self, task: str) -> tuple[str, PostProcess]:
        """The model and post-processing that answer `task`'s test list: the best on validation, or, for a
        task without validation labels, UNSCORED_MODEL[task] with the default post-processing."""
        if task in self.best:
            return self.best[task], self.post[task][self.best[task]]
        return UNSCORED_MODEL[task], PostProcess(task)


def _concat(data: EvalData, task: str, model: str, videos: list[EvalVideo]) -> np.ndarray:
    return np.concatenate([data.models[task][model][v.name] for v in videos])


def score_models(data: EvalData, va_smoothing: int) -> Scored:
    """Validation scores of every model of every task, before and after post-processing."""
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    post: dict[str, dict[str, PostProcess]] = {}
    best: dict[str, str] = {}
    for task, spec in TASKS.items():
        videos = data.split("val", task)
        if not videos:
            continue
        true = truth(task, videos)
        scores[task], post[task] = {}, {}
        for model in data.models[task]:
            outputs = _concat(data, task, model, videos)
            if spec.kind == "multilabel":
                keep = (true != spec.invalid).any(1)
                tuned = PostProcess(task, au_thresholds=tune_au_thresholds(outputs[keep], true[keep]))
            else:
                tuned = PostProcess(task, va_smoothing=va_smoothing if spec.kind == "regression" else 1)
            raw = _score(task, decide(PostProcess(task), outputs, np.ones(len(outputs), bool)), true)
            decided = np.concatenate([decide(tuned, data.models[task][model][v.name], v.valid) for v in videos])
            entry: dict[str, Any] = {"raw": raw, "post": _score(task, decided, true)}
            if spec.kind == "multilabel":
                entry["thresholds"] = {n: round(float(t), 2) for n, t in zip(AU_NAMES, tuned.au_thresholds,
                                                                             strict=True)}
            scores[task][model], post[task][model] = entry, tuned

        def headline(m: str, t: str = task) -> Any:  # the model's headline score after post-processing
            return scores[t][m]["post"][TASKS[t].metric]

        best[task] = max(scores[task], key=headline)
    return Scored(scores, post, best)


def mtl_of(scored: Scored, model: str) -> dict[str, float] | None:
    """The MTL score of `model` from its post-processed VA, EXPR and AU parts (None unless it does all three)."""
    if not all(t in scored.scores and model in scored.scores[t] for t in BASIC_KEYS):
        return None
    parts = {"ccc_mean": scored.headline("va", model), "expr_f1": scored.headline("expr", model),
             "au_f1_mean": scored.headline("au", model)}
    return {**parts, "mtl": round(mtl_score(*parts.values()), 4)}

