"""The fusion stage end to end: inputs and provenance checks, pseudo-labels, joint training (with and without
pseudo-labels when asked to compare), predictions for every video, checkpoint and metrics.

Outputs (DESIGN.md sections 3 and 4):
- `<models>/fusion.pt`: weights-only checkpoint (tensors + plain metadata).
- `<predictions>/fusion.h5`: per video `va` (T, 2), `expr` (T, 8) and `au` (T, 12) probabilities, `valid`,
  `hidden` (T, H) float16 (the EXPR stream, for the compound stage) and, where the teacher gave one,
  `pseudo_label` (T,) int64.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np

from pipeline_lib import __version__
from pipeline_lib.artifacts.checkpoints import save_spec_model
from pipeline_lib.artifacts.predictions import write_groups
from pipeline_lib.config import FusionSettings
from pipeline_lib.data.labels import BASIC_KEYS, COL_EXPR, EXPR_NAMES, TASKS
from pipeline_lib.data.manifest import format_splits
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.mapped import Spill
from pipeline_lib.train.fusion import TrainedFusion, expr_class_f1, predict_fusion, train_fusion
from pipeline_lib.train.fusion_data import FusionData, load_fusion_data, pseudo_pool, with_pseudo_labels
from pipeline_lib.train.pseudo import PseudoLabels, make_pseudo_labels, truth_agreement
from pipeline_lib.train.scoring import score_task
from pipeline_lib.train.task_data import task_labels

__all__ = ["demo_truth_classes", "individual_scores", "run_fusion"]

_COMPONENT = {"va": "ccc_mean", "expr": "expr_f1", "au": "au_f1_mean"}


def individual_scores(data: FusionData) -> dict[str, Any]:
    """Each task's best individual model (temporal or frame-wise) on validation, from its saved predictions."""
    out: dict[str, Any] = {}
    for task in BASIC_KEYS:
        key = task.upper()
        videos = [v for v in data.val if data.entries[v.name].split_of(key) == "val"]
        task_videos = [VideoArrays(v.name, v.features[:, :1], v.valid, *task_labels(v.labels[:, :15], task))
                       for v in videos]
        metric = TASKS[task].metric
        scores = {model: score_task(task, [preds[v.name][task] for v in videos], task_videos)[metric]
                  for model, preds in data.individual.items() if preds}
        best = max(scores, key=lambda m: scores[m])
        out[task] = {"metric": metric, "best_model": best, "value": round(scores[best], 4),
                     **{m: round(s, 4) for m, s in scores.items()}}
    out["sum"] = round(sum(out[t]["value"] for t in BASIC_KEYS), 4)
    return out


def _rarest_class(train: list[VideoArrays], val: list[VideoArrays]) -> int:
    """The EXPR class with the fewest labelled training frames among the classes present in validation."""
    counts = np.bincount(np.concatenate([v.labels[v.label_mask[:, COL_EXPR], COL_EXPR] for v in train]
                                        ).astype(np.int64), minlength=len(EXPR_NAMES))
    present = np.unique(np.concatenate([v.labels[v.label_mask[:, COL_EXPR], COL_EXPR] for v in val])).astype(int)
    return int(present[np.argmin(counts[present])])


def demo_truth_classes(raw_dir: Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """video -> (T,) true EXPR class (-1: no basic expression) from the demo corpus's hidden truth
    (`<raw>/demo_truth/<video>.npz`); empty for a real corpus, which ships none."""
    found: dict[str, np.ndarray] = {}
    for name in names:
        path = Path(raw_dir) / "demo_truth" / f"{name}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as truth:
                found[name] = truth["labels"][:, COL_EXPR].astype(np.int64)
    return found


def _write_predictions(path: Path, data: FusionData, predicted: list[dict[str, np.ndarray]],
                       pseudo: PseudoLabels | None, meta: dict[str, Any]) -> None:
    def datasets(video: VideoArrays, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = {task: rows[task].astype(np.float32) for task in BASIC_KEYS}
        found.update(hidden=rows["hidden"].astype(np.float16), valid=video.valid)
        if pseudo is not None and video.name in pseudo.labels:
            found["pseudo_label"] = pseudo.labels[video.name]
        return found

    write_groups(path, meta, ((video.name, datasets(video, rows), format_splits(data.entries[video.name].splits))
                              for video, rows in zip(data.every, predicted, strict=True)))



def _train(data: FusionData, train: list[VideoArrays], settings: FusionSettings, window: int, seed: int,
           pseudo: PseudoLabels | None, on_epoch: Callable[[int, float, float], None] | None) -> TrainedFusion:
    use = pseudo is not None  # (mypy does not narrow `pseudo` through `use`: the cast below)
    return train_fusion(train, data.val, data.widths, settings, window, seed=seed,
                        prior=cast(PseudoLabels, pseudo).prior if use and settings.pseudo.debias else None,
                        pseudo_weight=settings.pseudo.weight if use else 0.0,
                        uniform_sampling=use and settings.pseudo.uniform_sampling, on_epoch=on_epoch)


def _report(trained: TrainedFusion, data: FusionData, predicted_val: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    return {"best_epoch": trained.best_epoch + 1, **trained.best, "expr_class_f1": expr_class_f1(
        predicted_val, data.val), "curve": [round(v, 4) for v in trained.val_mtl], "seconds": round(trained.seconds, 1)}


def run_fusion(raw_dir: Path, store_path: Path, temporal_predictions: Path, settings: FusionSettings, window: int,
               models_dir: Path, predictions_path: Path, *, seed: int = 0,
               on_epoch: Callable[[str, int, float, float], None] | None = None,
               notice: Callable[[str], None] = lambda message: warnings.warn(message, stacklevel=2)
               ) -> dict[str, Any]:
    """Train the fusion model (and its no-pseudo-label twin when `pseudo.compare`); returns the stage metrics."""
    store = FeatureStore(store_path, mode="r")
    data = load_fusion_data(raw_dir, store, temporal_predictions, list(settings.extractors), settings.task_features,
                            predictions=settings.residual)
    individual = individual_scores(data)
    teacher = (individual["expr"]["best_model"] if settings.pseudo.teacher == "best" else settings.pseudo.teacher)
    pseudo: PseudoLabels | None = None
    if settings.pseudo.enabled:
        pseudo = make_pseudo_labels(data.teacher(teacher), pseudo_pool(data), settings.pseudo.threshold,
                                    settings.pseudo.per_class, settings.pseudo.debias_labels)
        if pseudo.kept == 0:
            notice(f"pseudo-labels skipped: the unlabelled pool has {pseudo.pool_frames} frame(s) and none reaches "
                   f"the teacher's confidence threshold")
            pseudo = None
    runs = {"on" if settings.pseudo.enabled else "off": pseudo}
    if pseudo is not None and settings.pseudo.compare:
        runs["off"] = None
    meta = {"sources": data.sources, "widths": data.widths, "window": window, "seed": seed,
            "settings": settings.model_dump(), "library": __version__,
            "task_models": {t: {"extractor": data.task_meta[t].get("extractor"),
                                "features": data.task_meta[t].get("features")} for t in BASIC_KEYS}}
    metrics: dict[str, Any] = {"fusion": settings.fusion, "dependency": settings.dependency, "sources": data.sources,
                               "window": window, "train_videos": len(data.train), "val_videos": len(data.val),
                               "individual": individual}
    main = next(iter(runs))
    spill = Spill(predictions_path.parent)  # predictions memory-mapped: the corpus is never in RAM
    for name, labels in runs.items():
        train = with_pseudo_labels(data, labels.labels) if labels is not None else data.train

        def run_epoch(e: int, loss: float, val: float, name: str = name) -> None:
            assert on_epoch is not None  # passed on only when there is one
            on_epoch(name, e, loss, val)

        trained = _train(data, train, settings, window, seed, labels, None if on_epoch is None else run_epoch)
        predicted = predict_fusion(trained.model, data.every, window, settings.device, keep=spill)
        by_name = {v.name: p for p, v in zip(predicted, data.every, strict=True)}
        val_rows = [by_name[v.name] for v in data.val]
        report = _report(trained, data, val_rows)
        if name == main:
            metrics["val"] = {k: report.pop(k) for k in ("ccc_valence", "ccc_arousal", "ccc_mean", "expr_f1",
                                                         "au_f1_mean", "mtl")}
            metrics.update(report)
            save_spec_model(models_dir / "fusion.pt", trained.model, {**meta, "best_epoch": trained.best_epoch + 1,
                                                            "val": metrics["val"]})
            _write_predictions(predictions_path, data, predicted, labels, meta)
        else:
            metrics[f"pseudo_{name}"] = report
    metrics["fusion_minus_individual_sum"] = round(metrics["val"]["mtl"] - individual["sum"], 4)
    metrics["fusion_beats_individual"] = bool(metrics["val"]["mtl"] >= individual["sum"])
    metrics["pseudo"] = {"enabled": settings.pseudo.enabled, "used": pseudo is not None, "teacher": teacher,
                         **({} if pseudo is None else pseudo.summary())}
    truth = {} if pseudo is None else demo_truth_classes(raw_dir, pseudo.labels)
    if truth:  # the demo corpus knows every frame's class: say how good the teacher's labels were
        assert pseudo is not None  # truth is only looked up for pseudo-labels
        metrics["pseudo"]["demo_truth"] = truth_agreement(pseudo.labels, truth)
    if "pseudo_off" in metrics:
        off = metrics["pseudo_off"]
        rarest = EXPR_NAMES[_rarest_class(data.train, data.val)]
        metrics["pseudo"]["comparison"] = {
            "expr_f1": {"on": metrics["val"]["expr_f1"], "off": off["expr_f1"]},
            "rarest_class": rarest,
            "rarest_f1": {"on": metrics["expr_class_f1"][rarest], "off": off["expr_class_f1"][rarest]},
            "mtl": {"on": metrics["val"]["mtl"], "off": off["mtl"]},
        }
    return metrics
