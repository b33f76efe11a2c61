"""Readers of the per-frame prediction files (HDF5, JSON metadata), free of torch: evaluate reads them without
importing the training code.

temporal: one group per model (`temporal`, `baseline`), a subgroup per video; fusion and compound: one group
per video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["read_predictions", "read_video_groups"]


def read_video_groups(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {dataset: array}} of every top-level group, and the file's `meta` attribute."""
    with h5py.File(path, "r") as h5:
        meta = json.loads(h5.attrs["meta"])
        videos = {name: {key: group[key][...] for key in group} for name, group in h5.items()}
    return videos, meta


def read_predictions(path: Path, model: str = "temporal") -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """A temporal stage's file: {video: {"outputs", "valid", ["hidden"]}} of one model group, and the metadata."""
    with h5py.File(path, "r") as h5:
        meta = json.loads(h5.attrs["meta"])
        videos = {name: {key: group[key][...] for key in group} for name, group in h5[model].items()}
    return videos, meta
