"""Per-frame prediction files of the fusion and compound stages: one HDF5 group per video, JSON metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["read_video_groups"]


def read_video_groups(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {dataset: array}} of every top-level group, and the file's `meta` attribute."""
    with h5py.File(path, "r") as h5:
        meta = json.loads(h5.attrs["meta"])
        videos = {name: {key: group[key][...] for key in group} for name, group in h5.items()}
    return videos, meta
