"""Reader and writer of the official MTL annotation file.

One file per split, header ``image,valence,arousal,expression,aus`` and one row
per annotated frame: ``video/00001.jpg,v,a,e,au1,...,au12`` (15 fields). Frames
absent from the file are not annotated. In memory each video is the (T, 15)
float32 layout of labels.py, T being the highest frame number listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np

from pipeline_lib.data.annotations import format_va_value, parse_class_value, parse_va_value
from pipeline_lib.data.errors import AnnotationError
from pipeline_lib.data.labels import (
    AU_NAMES,
    CLASS_INVALID,
    COL_AROUSAL,
    COL_AU,
    COL_EXPR,
    COL_VALENCE,
    EXPR_NAMES,
    MTL_HEADER,
    N_LABEL_COLUMNS,
    VA_INVALID,
    empty_labels,
)
from pipeline_lib.data.layout import read_text_lines, safe_video_name
from pipeline_lib.files import write_text_atomic

__all__ = ["check_labels", "frame_is_annotated", "parse_image_name", "read_mtl", "write_mtl"]

# Frame files are written %05d, so numbers past 99999 legitimately have more digits.
_FRAME_FILE: Final[re.Pattern[str]] = re.compile(r"(\d{5,})\.jpg")
_N_FIELDS: Final[int] = 4 + len(AU_NAMES)  # image, V, A, EXPR, then 12 AUs: 16 in all


def parse_image_name(image: str, path: Path, line: int) -> tuple[str, int]:
    """Split ``video/00001.jpg`` into (video, frame index 0-based), validating both."""
    video, sep, frame_file = image.rpartition("/")
    match = _FRAME_FILE.fullmatch(frame_file)
    if not sep or match is None:
        raise AnnotationError(path, f"image name {image!r} is not <video>/<5 digits>.jpg", line)
    safe_video_name(video, path, line)
    number = int(match.group(1))
    if number < 1:
        raise AnnotationError(path, f"image name {image!r}: frame numbers start at 00001", line)
    return video, number - 1


def read_mtl(path: Path) -> dict[str, np.ndarray]:
    """Map each video of an MTL file to its (T, 15) float32 labels, sorted by name."""
    lines = read_text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise AnnotationError(path, f"empty file (expected the MTL header {MTL_HEADER!r})")
    if [f.strip() for f in lines[0].split(",")] != MTL_HEADER.split(","):
        raise AnnotationError(path, f"wrong MTL header: expected {MTL_HEADER!r}, found {lines[0].strip()[:80]!r}", 1)

    rows: dict[str, dict[int, list[float]]] = {}
    first_line: dict[tuple[str, int], int] = {}  # to name both lines of a duplicate
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue  # rows are keyed by image name, so a blank line shifts nothing
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != _N_FIELDS:
            raise AnnotationError(path, f"expected {_N_FIELDS} comma-separated values, found {len(fields)}", lineno)
        video, frame = parse_image_name(fields[0], path, lineno)
        if (video, frame) in first_line:
            raise AnnotationError(
                path, f"duplicate image {fields[0]!r} (first at line {first_line[video, frame]})", lineno
            )
        first_line[video, frame] = lineno
        values: list[float] = [
            parse_va_value(fields[1], path, lineno, "valence"),
            parse_va_value(fields[2], path, lineno, "arousal"),
            parse_class_value(fields[3], len(EXPR_NAMES), path, lineno, "expression"),
        ]
        values += [parse_class_value(f, 2, path, lineno, au) for f, au in zip(fields[4:], AU_NAMES)]
        rows.setdefault(video, {})[frame] = values

    labels: dict[str, np.ndarray] = {}
    for video in sorted(rows):
        frames = rows[video]
        array = empty_labels(max(frames) + 1)
        index = np.fromiter(frames.keys(), dtype=np.int64, count=len(frames))
        array[index] = np.array(list(frames.values()), dtype=np.float32)
        labels[video] = array
    return labels


def check_labels(labels: np.ndarray, what: str) -> np.ndarray:
    """Validate a (T, 15) label array and return it as float32; ValueError names `what`."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != N_LABEL_COLUMNS:
        raise ValueError(f"{what}: labels must have shape (T, {N_LABEL_COLUMNS}); got {labels.shape}")
    labels = labels.astype(np.float32)
    va = labels[:, [COL_VALENCE, COL_AROUSAL]]
    classes = labels[:, COL_EXPR:]
    checks = [
        (np.isfinite(labels).all(), "values must be finite"),
        (((np.abs(va) <= 1.0) | (va == VA_INVALID)).all(), f"valence/arousal must be in [-1, 1] or {VA_INVALID:g}"),
        ((classes == np.round(classes)).all(), "expression and AU values must be integers"),
        (((labels[:, COL_EXPR] >= CLASS_INVALID) & (labels[:, COL_EXPR] < len(EXPR_NAMES))).all(),
         f"expression must be in 0..{len(EXPR_NAMES) - 1} or {CLASS_INVALID}"),
        (np.isin(labels[:, COL_AU], (0, 1, CLASS_INVALID)).all(), f"AUs must be 0, 1 or {CLASS_INVALID}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{what}: {message}")
    return labels


def frame_is_annotated(labels: np.ndarray) -> np.ndarray:
    """(T,) bool: the frame carries at least one valid label of the (T, 15) layout."""
    return (
        (labels[:, COL_VALENCE] != VA_INVALID)
        | (labels[:, COL_AROUSAL] != VA_INVALID)
        | (labels[:, COL_EXPR] != CLASS_INVALID)
        | (labels[:, COL_AU] != CLASS_INVALID).any(axis=1)
    )


def write_mtl(path: Path, labels: Mapping[str, np.ndarray]) -> None:
    """Write an MTL file: one row per frame with at least one valid label.

    Videos are written in name order; frames never annotated are left out, as
    in the official file, so read_mtl(write_mtl(x)) reproduces every annotated
    frame exactly (trailing unannotated frames are not representable).
    """
    out = [MTL_HEADER]
    for video in sorted(labels):
        safe_video_name(video, path)
        array = check_labels(labels[video], f"{path}: video {video!r}")
        for frame in np.flatnonzero(frame_is_annotated(array)).tolist():
            row = array[frame]
            classes = ",".join(str(int(v)) for v in row[COL_EXPR:])
            out.append(f"{video}/{frame + 1:05d}.jpg,{format_va_value(row[0])},{format_va_value(row[1])},{classes}")
    write_text_atomic(path, "".join(f"{line}\n" for line in out))
