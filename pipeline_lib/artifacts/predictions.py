"""Readers of the per-frame prediction files (HDF5, JSON metadata), free of torch: evaluate reads them without
importing the training code.

temporal: one group per model (`temporal`, `baseline`), a subgroup per video; fusion and compound: one group
per video."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline_lib.files import atomic_path
from pipeline_lib.mapped import map_dataset

__all__ = ["read_compound_predictions", "read_fusion_predictions", "read_predictions", "read_video_groups",
           "write_groups"]


def read_video_groups(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {dataset: array}} of every top-level group, and the file's `meta` attribute.

    The arrays are read-only memory maps of the file (`mapped.map_dataset`), not copies in RAM, so a reader of a
    whole corpus's predictions never holds them all; the file must stay in place while they are used (a stage's
    inputs do).
    """
    with h5py.File(path, "r") as h5:
        meta = json.loads(h5.attrs["meta"])
        videos = {name: {key: map_dataset(group[key]) for key in group} for name, group in h5.items()}
    return videos, meta


def read_predictions(path: Path, model: str = "temporal") -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """A temporal stage's file: {video: {"outputs", "valid", ["hidden"]}} of one model group (memory-mapped, as in
    `read_video_groups`), and the metadata."""
    with h5py.File(path, "r") as h5:
        meta = json.loads(h5.attrs["meta"])
        videos = {name: {key: map_dataset(group[key]) for key in group} for name, group in h5[model].items()}
    return videos, meta


def read_fusion_predictions(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {"va", "expr", "au", "hidden", "valid", ["pseudo_label"]}} and the file's metadata."""
    return read_video_groups(path)


def read_compound_predictions(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {"ce", "zero_shot", "valid", ["basic"]}} and the file's metadata."""
    return read_video_groups(path)


def write_groups(path: Path, meta: Mapping[str, Any],
                 groups: Iterable[tuple[str, Mapping[str, np.ndarray], str]]) -> None:
    """Write a prediction file atomically: `meta` as JSON, then per (group path, datasets, splits) one HDF5 group
    (`video` or `model/video`) holding the datasets in the given order, with a `splits` attribute (the
    video's split per task as the manifest writes it, "VA:train+EXPR:val"; empty for an unlabelled video).

    Written under a hidden `.partial` name and renamed, so an interrupted stage never leaves a file that looks
    finished; the partial file is removed when writing fails.
    """
    with atomic_path(path) as partial, h5py.File(partial, "w") as h5:
        h5.attrs["meta"] = json.dumps(dict(meta), sort_keys=True)
        for name, datasets, splits in groups:
            group = h5.create_group(name)
            for key, values in datasets.items():
                group.create_dataset(key, data=values)
            group.attrs["splits"] = splits
