"""Per-task training data: cached features from the store paired with one task's labels.

A temporal model of one task (va, expr, au) sees only that task's columns of
the (T, 15) label layout and a mask of which entries are annotated (the
official invalid markers -5 / -1 are the mask's False). Each video's features
are read once, centred and memory-mapped from a scratch file (`mapped.Spill`),
so windows are numpy slices afterwards and the corpus is never held in RAM.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import BASIC_KEYS, SPLIT_FOLDERS, TASK_FOLDERS, TASKS, Task, fit_frames
from pipeline_lib.data.manifest import VideoEntry, load_labels
from pipeline_lib.data.raw import RawCorpus, load_raw
from pipeline_lib.features.normalize import center_per_video
from pipeline_lib.features.store import FeatureStore, FeatureStoreError
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.mapped import Spill

__all__ = ["TaskData", "check_finite", "load_task_data", "task_labels"]


def task_labels(labels: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(T, 15) labels -> (task labels (T, L) float32, annotated (T, L) bool) for `task` in va/expr/au."""
    spec = TASKS[task]
    values = labels[:, list(spec.columns)].astype(np.float32)  # (T, L)
    return values, np.isfinite(values) & (values != spec.invalid)


def check_finite(name: str, features: np.ndarray, valid: np.ndarray, source: Path) -> None:
    """NaN or inf in a video's face-frame features is an upstream fault: name the video, never train on it."""
    bad = ~np.isfinite(features[valid]).all(axis=1)
    if bad.any():
        frame = int(np.flatnonzero(valid)[np.flatnonzero(bad)[0]])
        raise DataError(source, f"{name}: {int(bad.sum())} frame(s) with NaN/inf features (first at frame {frame}); "
                                f"re-run `abaw features` for this video")


@dataclass(frozen=True)
class TaskData:
    """One task's videos: labelled train and val splits, and every video of the corpus for prediction."""

    task: str
    extractor: str
    train: list[VideoArrays]
    val: list[VideoArrays]
    every: list[VideoArrays]  # all entries (train, val, test, unlabeled), labels of this task where present
    entries: dict[str, VideoEntry]  # video -> its manifest entry (the split of each task)

    @property
    def width(self) -> int:
        return self.every[0].features.shape[1] if self.every else 0


def _video(store: FeatureStore, raw: RawCorpus, entry: VideoEntry, task: str, extractor: str,
           center: bool, spill: Spill) -> VideoArrays:
    try:
        features, valid = store.read(extractor, entry.name)  # (T, D) float16, (T,) bool
    except FeatureStoreError as exc:
        raise DataError(store.path, f"{exc}; run `abaw features` with extractor {extractor!r}") from None
    check_finite(entry.name, features, valid, store.path / extractor / entry.name)
    labels15, _, _ = load_labels(raw.raw_dir, entry)
    n = len(features)
    labels, annotated = task_labels(labels15, task)
    if len(labels) != n:  # the store follows the decoded frames; labels follow the manifest's count
        labels = fit_frames(labels, np.zeros((n, labels.shape[1]), np.float32))
        annotated = fit_frames(annotated, np.zeros((n, labels.shape[1]), bool))
    return VideoArrays(entry.name, spill(center_per_video(features, valid) if center else features), valid, labels,
                       annotated)


def load_task_data(raw_dir: Path, store: FeatureStore, task: str, extractor: str,
                   names: Iterable[str] | None = None, center: bool = True) -> TaskData:
    """Read every video's features once and pair them with `task`'s labels.

    Features are centred per video (`center_per_video`), as every stage trains on them; `center=False`
    keeps the stored values (for the ablation in benchmarks/downstream_variants.py).

    Raises DataError naming the task and its annotation folder when no training
    frame is labelled for it (nothing to learn from) or, on the whole corpus, no
    validation frame (no epoch could be chosen), and naming the video when its
    features hold NaN.
    """
    if task not in BASIC_KEYS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(BASIC_KEYS)}")
    raw = load_raw(raw_dir)
    wanted = set(names) if names is not None else None
    entries = [e for e in raw.entries if wanted is None or e.name in wanted]
    key = Task(task.upper()).value
    spill = Spill(store.path.parent)
    # unannotated entries: all-False masks
    every = [_video(store, raw, e, task, extractor, center, spill) for e in entries]
    # A video's split is this task's: it may be in another task's other split (README, "Splits per task").
    by_split = {s: [v for e, v in zip(entries, every, strict=True) if e.split_of(key) == s] for s in ("train", "val")}
    # The same check for both splits: training needs a labelled face frame to learn from, validation (on the
    # whole corpus) one to choose the epoch on.
    for split, what, why in (("train", "training", "nothing to train on"),
                             ("val", "validation", "the best epoch cannot be chosen")):
        if split == "val" and wanted is not None:
            continue
        if not any((v.label_mask.any(axis=1) & v.valid).any() for v in by_split[split]):
            folder = Path(raw_dir) / "annotations" / TASK_FOLDERS[Task(key)] / SPLIT_FOLDERS[split]
            raise DataError(folder, f"task {task}: no labelled {what} frame with a face ({len(by_split[split])} "
                                    f"{key} {what} video(s)); {why}")
    return TaskData(task, extractor, by_split["train"], by_split["val"], every, {e.name: e for e in entries})
