"""A finished run in a dozen lines: the best model per task on validation, the MTL scores, where the
submissions and plots are. What `abaw summary` (and so `make demo`) prints; the full tables stay in
metrics/*.json and `dvc metrics show`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import TASKS

__all__ = ["Headline", "read_headline"]

# How each official metric is named in the table.
_METRIC_NAMES = {"ccc_mean": "CCC (mean of V, A)", "f1_macro": "macro F1", "f1_mean": "mean F1 over 12 AUs"}


@dataclass(frozen=True)
class Headline:
    """Rows (task, metric, best model on validation, its score, validation videos) and the run's totals."""

    rows: list[tuple[str, str, str, float, int]]
    unscored: dict[str, str]  # task -> the model its test submission used, without validation labels to score it
    mtl: dict[str, float]  # "fusion" / "best per task" -> VA CCC + EXPR F1 + AU F1
    submission_files: int
    submissions_ok: bool
    plots: list[str]


def _read(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "missing: run the pipeline first (`dvc repro`, or `abaw evaluate`)") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable: {exc}; re-run `abaw evaluate`") from None
    if not isinstance(content, dict):
        raise DataError(path, "not a JSON object; re-run `abaw evaluate`")
    return content


def read_headline(summary_path: Path, evaluate_path: Path) -> Headline:
    """The headline of the run whose `abaw evaluate` wrote `summary_path` and `evaluate_path`."""
    summary, report = _read(summary_path), _read(evaluate_path)
    rows = []
    for key, spec in TASKS.items():
        if key in summary:
            rows.append((spec.task.value, _METRIC_NAMES.get(spec.metric, spec.metric), str(summary[key]["model"]),
                         float(summary[key]["value"]), int(report.get("val_videos", {}).get(key, 0))))
    mtl = {name: float(summary[field]) for name, field in (("fusion", "mtl_fusion"),
                                                           ("best per task", "mtl_best_per_task"))
           if field in summary}
    return Headline(rows, {t.upper(): m for t, m in report.get("unscored", {}).items()}, mtl,
                    int(summary.get("submission_files", 0)), bool(summary.get("submissions_ok", False)),
                    list(report.get("plots", [])))
