"""Inputs of the fusion stage: frame features of one or more extractors, each task model's hidden features,
all three tasks' labels, and what the task models predicted (the EXPR teacher among them); checked against the
models' provenance.

Every video becomes one `VideoArrays` whose features are the sources
concatenated in a fixed order (`FusionData.sources`, widths in `widths`) and
whose labels are the house (T, 15) layout plus one column for EXPR
pseudo-labels (`COL_PSEUDO`), filled later by the pseudo-label step. Masks
follow the official invalid markers, so a frame labelled for only some tasks
still teaches those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import h5py
import numpy as np

from pipeline_lib.artifacts.predictions import read_predictions
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import (
    BASIC_KEYS,
    CLASS_INVALID,
    COL_AROUSAL,
    COL_EXPR,
    COL_VALENCE,
    VA_INVALID,
    empty_labels,
    fit_frames,
)
from pipeline_lib.data.manifest import BASIC_TASKS, VideoEntry, labels_in_split, load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.features.normalize import center_per_video
from pipeline_lib.features.store import FeatureStore, FeatureStoreError, features_digest
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.mapped import Spill
from pipeline_lib.train.task_data import check_finite

__all__ = ["COL_PSEUDO", "FusionData", "frame_sources", "label_mask", "load_fusion_data", "prediction_source",
           "pseudo_pool", "with_pseudo_labels"]

COL_PSEUDO: Final[int] = 15  # EXPR pseudo-label column appended to the house layout
N_COLUMNS: Final[int] = 16


def label_mask(labels: np.ndarray) -> np.ndarray:
    """(T, 16) bool: which entries carry a label (VA != -5, classes and AUs != -1)."""
    mask = labels != CLASS_INVALID
    mask[:, [COL_VALENCE, COL_AROUSAL]] = labels[:, [COL_VALENCE, COL_AROUSAL]] != VA_INVALID
    return mask & np.isfinite(labels)


def _fit(labels: np.ndarray, n: int) -> np.ndarray:
    """Labels (T', 15) cut or padded (with invalid markers) to the store's n frames, plus the pseudo column."""
    return np.concatenate([fit_frames(labels, empty_labels(n)), np.full((n, 1), float(CLASS_INVALID), np.float32)],
                          axis=1)


@dataclass(frozen=True)
class FusionData:
    """Every video as fused inputs with all-task labels, its split per task, and what the task models predicted.

    `train` and `val` are views of `every` (the same feature arrays) whose labels keep only the tasks the video
    has in that split: a video that is VA train and EXPR val trains VA and validates EXPR.
    """

    every: list[VideoArrays]  # labels of every task, each from its own split: for prediction and the pseudo pool
    entries: dict[str, VideoEntry]  # video -> its manifest entry
    train: list[VideoArrays]  # videos with a VA / EXPR / AU training split, labels of those tasks only
    val: list[VideoArrays]  # videos with a VA / EXPR / AU validation split, labels of those tasks only
    sources: list[str]  # "mae", "random", ..., then "va", "expr", "au" (hidden features), then "predictions"
    widths: list[int]
    individual: dict[str, dict[str, dict[str, np.ndarray]]]  # model -> video -> task -> outputs (T, O)
    task_meta: dict[str, dict[str, object]]  # task -> metadata of its temporal predictions

    def teacher(self, model: str) -> dict[str, np.ndarray]:
        """video -> (T, 8) EXPR probabilities of the temporal stage's `model` ("temporal" or "baseline")."""
        if not self.individual.get(model):
            raise ValueError(f"the EXPR temporal stage saved no {model!r} predictions (temporal.common.baseline?)")
        return {name: tasks["expr"] for name, tasks in self.individual[model].items()}


def _split_views(every: list[VideoArrays], entries: dict[str, VideoEntry], split: str) -> list[VideoArrays]:
    """The videos with a basic task in `split`, their labels cut to the tasks of that split (pseudo column kept)."""
    views = []
    for video in every:
        entry = entries[video.name]
        if not any(task in BASIC_TASKS for task in entry.tasks_in(split)):
            continue
        labels = video.labels.copy()
        labels[:, :15] = labels_in_split(video.labels[:, :15], entry, split)
        views.append(replace(video, labels=labels, label_mask=label_mask(labels)))
    return views


def _task_predictions(predictions_dir: Path, task: str, store: FeatureStore, extractors: list[str]
                      ) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], dict[str, object]]:
    """Both model groups of one task's temporal predictions, after the provenance checks."""
    path = predictions_dir / f"{task}.h5"
    if not path.is_file():
        raise DataError(path, f"individual task model {task!r} is missing: run `abaw temporal --task {task}` first")
    groups: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    try:
        groups["temporal"], meta = read_predictions(path, "temporal")
        if "baseline" in _groups(path):
            groups["baseline"], _ = read_predictions(path, "baseline")
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(path, f"individual task model {task!r}: unreadable predictions ({type(exc).__name__}); "
                              f"re-run `abaw temporal --task {task}`") from None
    extractor = str(meta.get("extractor"))
    if extractor not in extractors:
        raise DataError(path, f"individual task model {task!r} was trained on extractor {extractor!r}, but "
                              f"fusion.extractors is {extractors}: re-run `abaw temporal --task {task}` on one of "
                              f"them or add {extractor!r} to fusion.extractors")
    names = list(groups["temporal"])
    try:
        current = features_digest(store, extractor, names)
    except FeatureStoreError as exc:
        raise DataError(path, f"individual task model {task!r}: its features are gone from the store ({exc})") from None
    if current != meta.get("features"):
        raise DataError(path, f"individual task model {task!r} was trained on {extractor!r} features that have "
                              f"changed since (provenance {meta.get('features')} != {current}): re-run "
                              f"`abaw temporal --task {task}`")
    return groups, meta


def _groups(path: Path) -> list[str]:
    with h5py.File(path, "r") as h5:
        return list(h5)


def frame_sources(store: FeatureStore, extractors: list[str], name: str) -> tuple[list[np.ndarray], np.ndarray]:
    """One video's frame features of each extractor ((T, D_k) float16 each, NaN-checked, centred per video as the
    task models saw them) and its (T,) face mask."""
    parts, valid = [], None
    for extractor in extractors:
        try:
            features, ok = store.read(extractor, name)  # (T, D) float16, (T,) bool
        except FeatureStoreError as exc:
            raise DataError(store.path, f"{exc}; run `abaw features` with extractor {extractor!r}") from None
        check_finite(name, features, ok, store.path / extractor / name)
        parts.append(center_per_video(features.astype(np.float16), ok))
        valid = ok if valid is None else valid
    if valid is None:
        raise ValueError("frame_sources needs at least one extractor")
    return parts, valid


def prediction_source(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Task -> that task model's (T, O) outputs, joined into the residual model's (T, 22) float16 `predictions`
    source (VA values, EXPR and AU probabilities, in BASIC_KEYS order): the same at training and predict time."""
    return np.concatenate([outputs[t] for t in BASIC_KEYS], axis=1).astype(np.float16)


def load_fusion_data(raw_dir: Path, store: FeatureStore, predictions_dir: Path, extractors: list[str],
                     task_features: bool = True, predictions: bool = False) -> FusionData:
    """Read every video's sources and labels once, after checking each task model's provenance. The joined
    sources are memory-mapped (`mapped.Spill`, beside the feature store) and the task models' predictions mapped
    from their files, so the corpus is never held in RAM; labels (64 bytes a frame) are.

    Sources, in order: the frame features of `extractors`, the temporal task models' hidden features
    (`task_features`), then with `predictions` their per-frame outputs as one (T, 22) source
    ("predictions": VA values, EXPR and AU probabilities), which a residual fusion model starts from.
    """
    raw = load_raw(raw_dir)
    per_task = {task: _task_predictions(predictions_dir, task, store, extractors) for task in BASIC_KEYS}
    sources = list(extractors) + (list(BASIC_KEYS) if task_features else []) + (["predictions"] if predictions else [])
    every, widths = [], None
    spill = Spill(store.path.parent)
    individual: dict[str, dict[str, dict[str, np.ndarray]]] = {"temporal": {}, "baseline": {}}
    for entry in raw.entries:
        parts, valid = frame_sources(store, extractors, entry.name)
        for task in BASIC_KEYS:
            groups, _ = per_task[task]
            for model, videos in groups.items():
                if entry.name not in videos:
                    raise DataError(predictions_dir / f"{task}.h5", f"individual task model {task!r} has no "
                                    f"prediction for video {entry.name!r}: re-run `abaw temporal --task {task}`")
                individual[model].setdefault(entry.name, {})[task] = videos[entry.name]["outputs"]
            if task_features:
                hidden = groups["temporal"][entry.name]["hidden"]  # (T, H) float16
                if len(hidden) != len(valid):
                    raise DataError(predictions_dir / f"{task}.h5", f"{entry.name}: {len(hidden)} frames of hidden "
                                    f"features but {len(valid)} in the feature store: re-run `abaw temporal`")
                parts.append(hidden.astype(np.float16))
        if predictions:
            outputs = prediction_source(individual["temporal"][entry.name])  # (T, 22)
            if len(outputs) != len(valid):
                raise DataError(predictions_dir, f"{entry.name}: {len(outputs)} frames of task-model predictions "
                                f"but {len(valid)} in the feature store: re-run `abaw temporal`")
            parts.append(outputs)
        labels = _fit(load_labels(raw.raw_dir, entry)[0], len(valid))
        features = spill(np.concatenate(parts, axis=1))  # (T, sum of widths), memory-mapped
        widths = [p.shape[1] for p in parts] if widths is None else widths
        every.append(VideoArrays(entry.name, features, valid, labels, label_mask(labels)))
    assert widths is not None, "the corpus holds no video"
    entries = {e.name: e for e in raw.entries}
    return FusionData(every, entries, _split_views(every, entries, "train"), _split_views(every, entries, "val"),
                      sources, widths, individual, {t: per_task[t][1] for t in BASIC_KEYS})


def with_pseudo_labels(data: FusionData, labels: dict[str, np.ndarray]) -> list[VideoArrays]:
    """The training views plus every unlabelled video with a pseudo-label, their pseudo column set from
    `labels` (video -> (T,) class or -1), in corpus order."""
    train = {v.name: v for v in data.train}
    out = []
    for video in data.every:
        pseudo = labels.get(video.name)
        base = train.get(video.name)
        if base is None:
            if pseudo is None or not (pseudo != CLASS_INVALID).any():
                continue
            base = replace(video, labels=_fit(np.zeros((0, 15), np.float32), len(video.valid)))  # pseudo only
        if pseudo is not None:
            values = base.labels.copy()
            values[:, COL_PSEUDO] = pseudo
            base = replace(base, labels=values, label_mask=label_mask(values))
        out.append(base)
    return out


def pseudo_pool(data: FusionData) -> dict[str, np.ndarray]:
    """video -> (T,) bool: frames the teacher may label (a face, no EXPR label).

    The pool is the training videos (a VA / EXPR / AU training split) and the unlabelled ones, less every video
    in EXPR's validation or test split: pseudo-labels are never made where EXPR is scored. Training videos
    annotated for compound expressions only are left out too: their faces show compound expressions, so a
    basic-class label is wrong by construction on most of their frames (on the demo corpus they held 572 of
    the 1,242 kept pseudo-labels, 367 of them on frames with no basic expression).
    """
    train = {v.name for v in data.train}
    pool = {}
    for video in data.every:
        entry = data.entries[video.name]
        if entry.split_of("EXPR") in (None, "train") and (video.name in train or entry.unlabeled):
            pool[video.name] = video.valid & ~video.label_mask[:, COL_EXPR]
    return pool
