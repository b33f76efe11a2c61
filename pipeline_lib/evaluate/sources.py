"""Everything the evaluate stage reads: every model's per-frame predictions and the labels they are scored on.

Models by task (names as they appear in metrics and plots):
- va, expr, au: `frame-wise` and `temporal` (temporal stage), `fusion` (fusion stage);
- ce: `compound` (the curriculum model) and `zero-shot` (fusion EXPR probabilities, two constituents summed);
- au also `blendshapes` when the feature store holds the `mesh` extractor: MediaPipe's blendshapes mapped to
  AUs by a fixed table (`features.mesh.AU_BLENDSHAPES`), no training: what face geometry alone gives.
Predictions follow the feature store's frames; labels are cut or padded to them with the invalid markers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import h5py
import numpy as np

from pipeline_lib.artifacts.predictions import read_predictions, read_video_groups
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import BASIC_KEYS, TASKS, empty_compound, empty_labels, fit_frames
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.features.mesh import MESH, blendshape_au_scores
from pipeline_lib.features.store import FeatureStore

__all__ = ["BLENDSHAPE_MODEL", "EvalData", "EvalVideo", "load_eval_data"]

BLENDSHAPE_MODEL: Final[str] = "blendshapes"  # the zero-shot AU baseline's model name

_T = TypeVar("_T")
_TEMPORAL_GROUPS: Final[dict[str, str]] = {"baseline": "frame-wise", "temporal": "temporal"}


@dataclass(frozen=True, eq=False)
class EvalVideo:
    """One video's labels on the store's frames: labels (T, 15) house layout, ce (T,) int64, valid (T,) bool.

    Each task's labels come from that task's own split (`splits`), so scoring task T on the videos whose T
    split is "val" reads only T's validation labels.
    """

    name: str
    splits: Mapping[str, str]  # task ("VA", ..., "CE") -> "train" | "val" | "test"
    labels: np.ndarray
    ce: np.ndarray
    valid: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.valid)


@dataclass(frozen=True)
class EvalData:
    videos: dict[str, EvalVideo]
    models: dict[str, dict[str, dict[str, np.ndarray]]]  # task -> model -> video -> (T, O)

    def split(self, split: str, task: str) -> list[EvalVideo]:
        """Videos in `task`'s ("va", ..., "ce") `split`, in corpus order."""
        key = task.upper()
        return [v for v in self.videos.values() if v.splits.get(key) == split]


def _read(path: Path, what: str, command: str, reader: Callable[[Path], _T]) -> _T:
    if not path.is_file():
        raise DataError(path, f"{what} missing: run `{command}` first")
    try:
        return reader(path)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(path, f"unreadable {what} ({type(exc).__name__}): re-run `{command}`") from None


def _temporal_outputs(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """model name -> video -> (T, O) outputs of both groups of one task's temporal predictions."""
    with h5py.File(path, "r") as h5:
        groups = [g for g in _TEMPORAL_GROUPS if g in h5]
    return {_TEMPORAL_GROUPS[g]: {name: rows["outputs"] for name, rows in read_predictions(path, g)[0].items()}
            for g in groups}


def _blendshape_scores(features: Path, names: list[str]) -> dict[str, np.ndarray]:
    """video -> (T, 12) zero-shot AU scores from the store's `mesh` arrays; {} unless it holds every video."""
    if not features.is_dir():
        return {}
    store = FeatureStore(features, mode="r")
    if not set(names) <= set(store.videos(MESH)):
        return {}
    return {name: blendshape_au_scores(store.read(MESH, name)[0]) for name in names}


def load_eval_data(raw_dir: Path, temporal_dir: Path, fusion_path: Path, compound_path: Path,
                   features: Path | None = None) -> EvalData:
    """Read every model's predictions and every video's labels; each prediction file must cover every video.

    With `features` (the feature store) holding the `mesh` extractor, AU also gets the BLENDSHAPE_MODEL.
    """
    models: dict[str, dict[str, dict[str, np.ndarray]]] = {task: {} for task in TASKS}
    for task in BASIC_KEYS:
        models[task].update(_read(temporal_dir / f"{task}.h5", f"{task} temporal predictions",
                                  f"abaw temporal --task {task}", _temporal_outputs))
    fused, _ = _read(fusion_path, "fusion predictions", "abaw fusion", read_video_groups)
    for task in BASIC_KEYS:
        models[task]["fusion"] = {name: rows[task] for name, rows in fused.items()}
    compound, _ = _read(compound_path, "compound predictions", "abaw compound", read_video_groups)
    models["ce"]["compound"] = {name: rows["ce"] for name, rows in compound.items()}
    models["ce"]["zero-shot"] = {name: rows["zero_shot"] for name, rows in compound.items()}
    valid = {name: rows["valid"].astype(bool) for name, rows in fused.items()}
    raw = load_raw(raw_dir)
    if features is not None and (zero_shot := _blendshape_scores(features, [e.name for e in raw.entries])):
        models["au"][BLENDSHAPE_MODEL] = zero_shot
    videos: dict[str, EvalVideo] = {}
    for entry in raw.entries:
        if entry.name not in valid:
            raise DataError(fusion_path, f"no prediction for video {entry.name!r}: re-run `dvc repro`")
        n = len(valid[entry.name])
        for task, by_model in models.items():
            for model, per_video in by_model.items():
                if entry.name not in per_video or len(per_video[entry.name]) != n:
                    raise DataError(raw_dir, f"{task} model {model!r}: predictions of {entry.name!r} missing or of "
                                             f"another length than the fusion ones ({n} frames): re-run `dvc repro`")
        labels15, ce, _ = load_labels(raw.raw_dir, entry)
        videos[entry.name] = EvalVideo(entry.name, dict(entry.splits),
                                       fit_frames(labels15, empty_labels(n)), fit_frames(ce, empty_compound(n)),
                                       valid[entry.name])
    return EvalData(videos, models)
