"""The evaluate stage end to end: score every model on validation, post-process, write the challenge files
for the test lists, draw the plots, and sum it all up in a few headline numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_lib.config import EvaluateSettings
from pipeline_lib.data.labels import AU_NAMES, BASIC_KEYS, TASKS
from pipeline_lib.evaluate.plots import au_f1_bars_png, confusion_matrix_png, va_scatter_png, va_timeseries_png
from pipeline_lib.evaluate.scores import Scored, decide, mtl_of, score_models, truth
from pipeline_lib.evaluate.sources import EvalData, load_eval_data
from pipeline_lib.evaluate.submissions import SubmissionReport, nearest_face_fill, write_submissions

__all__ = ["run_evaluate"]


def _predictor(data: EvalData, scored: Scored) -> Callable[[str, str], np.ndarray]:
    """predict(task, video): the challenge values of the task's submission model, face-less frames filled."""

    def predict(task: str, video: str) -> np.ndarray:
        model, post = scored.submitted(task)
        entry = data.videos[video]
        outputs = nearest_face_fill(data.models[task][model][video], entry.valid)
        return decide(post, outputs, np.ones(entry.n_frames, bool))
    return predict


def _plots(data: EvalData, scored: Scored, plots_dir: Path, timeseries_video: str | None) -> list[str]:
    written: list[Path] = []
    for task in (k for k, spec in TASKS.items() if spec.kind == "multiclass"):  # expr, ce
        if task not in scored.best:
            continue
        model, videos = scored.best[task], data.split("val", task)
        pred = np.concatenate([decide(scored.post[task][model], data.models[task][model][v.name], v.valid)
                               for v in videos])
        title = f"{task.upper()} on validation: {model}"
        written.append(confusion_matrix_png(truth(task, videos), pred, TASKS[task].names,
                                            plots_dir / f"{task}_confusion.png", title))
    if "au" in scored.scores:
        bars = {model: {name: s["post"][f"f1_{name}"] for name in AU_NAMES}
                for model, s in scored.scores["au"].items()}
        written.append(au_f1_bars_png(bars, plots_dir / "au_f1.png", "AU F1 on validation (tuned thresholds)"))
    if "va" in scored.best:
        model, videos = scored.best["va"], data.split("val", "va")
        smoothed = [decide(scored.post["va"][model], data.models["va"][model][v.name], v.valid) for v in videos]
        written.append(va_scatter_png(np.concatenate(smoothed), truth("va", videos), plots_dir / "va_scatter.png",
                                      f"VA on validation: {model}"))
        pick = next((i for i, v in enumerate(videos) if v.name == timeseries_video), 0)
        video = videos[pick]
        written.append(va_timeseries_png(video.name, data.models["va"][model][video.name], video.labels[:, :2],
                                         plots_dir / "va_timeseries.png", smoothed=smoothed[pick]))
    return [p.name for p in written]


def _summary(scored: Scored, submissions: SubmissionReport) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for task in scored.best:
        summary[task] = {"model": scored.best[task], "value": scored.headline(task)}
    fusion = mtl_of(scored, "fusion")
    if fusion is not None:
        summary["mtl_fusion"] = fusion["mtl"]
    best_mtl = [summary[t]["value"] for t in BASIC_KEYS if t in summary]
    if len(best_mtl) == 3:
        summary["mtl_best_per_task"] = round(sum(best_mtl), 4)
    summary["submissions_ok"] = not submissions.errors
    summary["submission_files"] = sum(submissions.files.values())
    return summary


def run_evaluate(raw_dir: Path, temporal_dir: Path, fusion_path: Path, compound_path: Path,
                 settings: EvaluateSettings, submissions_dir: Path, plots_dir: Path, features: Path | None = None
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(every score of every model, the headline summary); writes submissions and plots.

    `features`: the feature store, read only for the zero-shot AU baseline (when it holds `mesh`).
    """
    data = load_eval_data(raw_dir, temporal_dir, fusion_path, compound_path, features)
    scored = score_models(data, settings.va_smoothing)
    report = write_submissions(submissions_dir, raw_dir, _predictor(data, scored),
                               {name: video.n_frames for name, video in data.videos.items()})
    plots = _plots(data, scored, plots_dir, settings.timeseries_video)
    metrics: dict[str, Any] = {
        "va_smoothing": settings.va_smoothing,
        "val_videos": {task: len(data.split("val", task)) for task in scored.scores},
        "models": scored.scores, "best": scored.best,
        # tasks with test videos but no validation labels: what their submission used, unscored
        "unscored": {t: scored.submitted(t)[0] for t in TASKS if t not in scored.best and data.split("test", t)},
        "mtl": {m: mtl for m in ("frame-wise", "temporal", "fusion") if (mtl := mtl_of(scored, m)) is not None},
        "submissions": report.as_dict(), "plots": plots,
    }
    return metrics, _summary(scored, report)
