"""Inputs of the compound stage: frame features, the fusion model's EXPR stream and its zero-shot compound
scores, with basic (EXPR) and compound (CE) labels side by side.

Every video becomes one `VideoArrays` whose labels are (T, 2): column 0 the
EXPR class (the single-expression data the curriculum starts from), column 1
the CE class (-1 where not annotated). The fusion model's per-frame EXPR
probabilities give the zero-shot compound score of every frame, kept apart
for the "zero-shot alone" result and also fed in as a feature when
`fusion_features` is on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Final

import numpy as np
import torch

from pipeline_lib.artifacts.predictions import read_fusion_predictions
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import CLASS_INVALID, COL_EXPR, fit_frames
from pipeline_lib.data.manifest import VideoEntry, load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.mapped import Spill
from pipeline_lib.models.compound import zero_shot_scores
from pipeline_lib.train.fusion_data import frame_sources

__all__ = ["COL_BASIC", "COL_CE", "CompoundData", "load_compound_data"]

COL_BASIC: Final[int] = 0
COL_CE: Final[int] = 1


@dataclass(frozen=True)
class CompoundData:
    """Every video with basic + compound labels, its manifest entry, and the fusion zero-shot scores.

    The training and validation lists are views of `every` (the same features) whose labels keep only the
    tasks the video has in that split.
    """

    every: list[VideoArrays]  # labels of both tasks, each from its own split: for prediction
    entries: dict[str, VideoEntry]
    sources: list[str]  # "mae", ..., then "fusion_expr" and "zero_shot" when fusion features are fed in
    zero_shot: dict[str, np.ndarray]  # video -> (T, 7) compound scores from the fusion model's EXPR probabilities

    def _select(self, split: str, task: str) -> list[VideoArrays]:
        """Videos in `task`'s `split`, labels of the tasks of that split only."""
        views = []
        for video in self.every:
            entry = self.entries[video.name]
            if entry.split_of(task) != split:
                continue
            labels = video.labels.copy()
            for column, other in ((COL_BASIC, "EXPR"), (COL_CE, "CE")):
                if entry.split_of(other) != split:
                    labels[:, column] = CLASS_INVALID
            views.append(replace(video, labels=labels, label_mask=labels != CLASS_INVALID))
        return views

    @cached_property
    def basic_train(self) -> list[VideoArrays]:
        return self._select("train", "EXPR")

    @cached_property
    def compound_train(self) -> list[VideoArrays]:
        return self._select("train", "CE")

    @cached_property
    def val(self) -> list[VideoArrays]:
        """Validation videos annotated for CE: the epoch is chosen and the result reported on them."""
        return self._select("val", "CE")


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    """(T',) class labels as (n,) float32, cut or padded with the not-annotated marker."""
    return fit_frames(values, np.full(n, float(CLASS_INVALID), np.float32))


def load_compound_data(raw_dir: Path, store: FeatureStore, fusion_predictions: Path, extractors: list[str],
                       fusion_features: bool = True) -> CompoundData:
    """Read every video's inputs once, memory-mapped as in `load_fusion_data`. The fusion predictions must cover
    every video of the corpus."""
    if not fusion_predictions.is_file():
        raise DataError(fusion_predictions, "missing: run `abaw fusion` first (the compound stage starts from its "
                                            "expression predictions)")
    try:
        fused, _ = read_fusion_predictions(fusion_predictions)
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(fusion_predictions, f"unreadable fusion predictions ({type(exc).__name__}): re-run "
                                            f"`abaw fusion`") from None
    raw = load_raw(raw_dir)
    every: list[VideoArrays] = []
    spill = Spill(store.path.parent)
    zero_shot: dict[str, np.ndarray] = {}
    for entry in raw.entries:
        parts, valid = frame_sources(store, extractors, entry.name)
        n = len(valid)
        rows = fused.get(entry.name)
        if rows is None or len(rows["expr"]) != n:
            found = "no prediction" if rows is None else f"{len(rows['expr'])} frames for {n}"
            raise DataError(fusion_predictions, f"fusion predictions of video {entry.name!r}: {found} in the "
                                                f"feature store; re-run `abaw fusion`")
        scores = zero_shot_scores(torch.from_numpy(rows["expr"].astype(np.float32))).numpy()  # (T, 7)
        zero_shot[entry.name] = spill(scores)
        if fusion_features:
            parts += [rows["hidden"].astype(np.float16), scores.astype(np.float16)]
        labels15, compound, _ = load_labels(raw.raw_dir, entry)
        labels = np.stack([_fit(labels15[:, COL_EXPR], n), _fit(compound.astype(np.float32), n)], axis=1)  # (T, 2)
        every.append(VideoArrays(entry.name, spill(np.concatenate(parts, axis=1)), valid, labels,
                                 labels != CLASS_INVALID))
    sources = list(extractors) + (["fusion_expr", "zero_shot"] if fusion_features else [])
    return CompoundData(every, {e.name: e for e in raw.entries}, sources, zero_shot)
