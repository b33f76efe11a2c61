"""A task's official score over whole videos, as every training loop selects its best epoch by it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline_lib.data.labels import TASKS
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.metrics import task_scores

__all__ = ["score_task"]


def score_task(task: str, outputs: Sequence[np.ndarray], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """The official metric and its parts on every annotated frame of `videos` (predictions exist for all frames).

    AU uses a 0.5 threshold here; tuned per-AU thresholds are the evaluate stage's business.
    """
    pred = np.concatenate(outputs)  # (N, O)
    labels = np.concatenate([np.where(v.label_mask, v.labels, TASKS[task].invalid) for v in videos])  # (N, L)
    return task_scores(task, pred, labels)
