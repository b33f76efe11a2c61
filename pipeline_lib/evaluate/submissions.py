"""Challenge-format prediction files for the test lists, checked by reading them back with the ingest readers.

Layout under the submissions folder (the official per-track formats):
- `VA/<video>.txt`, `EXPR/<video>.txt`, `AU/<video>.txt`, `CE/<video>.txt`: the task's header line, then one
  line per frame of the video (1-based frame k on line k + 1), as the annotation files are;
- `MTL/predictions.txt`: header `image,valence,arousal,expression,aus`, one row per frame of every MTL test video.

Every frame gets a prediction, as the challenge requires: a frame without a face takes the prediction of the
nearest frame with one (a video without any face keeps the model's own output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from pipeline_lib.data.annotations import read_annotation, write_annotation
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import COL_AU, COL_EXPR, empty_labels
from pipeline_lib.data.layout import AffWild2Layout, read_test_list
from pipeline_lib.data.mtl import read_mtl, write_mtl

__all__ = ["MTL_FILE", "SubmissionReport", "nearest_face_fill", "write_submissions"]

MTL_FILE: Final[str] = "predictions.txt"
_TRACKS: Final[dict[str, str]] = {"VA": "va", "EXPR": "expr", "AU": "au", "CE": "ce"}


def nearest_face_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, ...) values with every face-less frame replaced by the nearest face frame's (earlier on ties)."""
    faces = np.flatnonzero(valid)
    if len(faces) == 0 or len(faces) == len(valid):
        return values.copy()
    frames = np.arange(len(valid))
    right = np.clip(np.searchsorted(faces, frames), 0, len(faces) - 1)  # first face at or after t
    left = np.clip(right - 1, 0, len(faces) - 1)
    nearest = np.where(np.abs(faces[left] - frames) <= np.abs(faces[right] - frames), faces[left], faces[right])
    return values[nearest]


@dataclass(frozen=True)
class SubmissionReport:
    """What was written and what reading it back found (errors must stay empty)."""

    files: dict[str, int]  # track -> files written
    rows: dict[str, int]  # track -> frames written
    errors: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "rows": self.rows, "errors": self.errors, "ok": not self.errors}


def _check(path: Path, got: int, expected: int, errors: list[str]) -> None:
    if got != expected:
        errors.append(f"{path}: {got} prediction lines for {expected} frames")


Predict = Callable[[str, str], np.ndarray]


def _write_track(out: Path, track: str, names: list[str], predict: Predict, n_frames: Mapping[str, int],
                 errors: list[str]) -> tuple[int, int]:
    """One per-video file for each test video of `track`, each read back: (files, frame lines)."""
    files = rows = 0
    for name in names:
        path = out / track / f"{name}.txt"
        write_annotation(path, track, predict(_TRACKS[track], name))
        back = read_annotation(path, track)
        _check(path, len(back), n_frames[name], errors)
        files, rows = files + 1, rows + len(back)
    return files, rows


def _write_mtl(out: Path, names: list[str], predict: Predict, n_frames: Mapping[str, int],
               errors: list[str]) -> tuple[int, int]:
    """The single MTL file for the MTL test videos, read back: (1, frame lines)."""
    path = out / "MTL" / MTL_FILE
    labels = {}
    for name in names:
        table = empty_labels(n_frames[name])
        table[:, :2] = predict("va", name)
        table[:, COL_EXPR] = predict("expr", name)
        table[:, COL_AU] = predict("au", name)
        labels[name] = table
    write_mtl(path, labels)
    back = read_mtl(path)
    for name in names:
        _check(path, len(back.get(name, ())), n_frames[name], errors)
    return 1, sum(len(v) for v in back.values())


def write_submissions(out: Path, raw_dir: Path, predict: Predict, n_frames: Mapping[str, int]
                      ) -> SubmissionReport:
    """Write every track whose test list exists under data/raw/test_set, then read each file back.

    predict(task, video) -> the challenge values of one test video for task "va" | "expr" | "au" | "ce"
    (post-processing and face-less filling already applied); n_frames: video -> its frame count, for every
    video of the corpus. A listed video the corpus lacks (missing or unreadable at import) gets no file and
    an error in the report: the challenge would reject the submission.
    """
    layout = AffWild2Layout(raw_dir)
    files: dict[str, int] = {}
    rows: dict[str, int] = {}
    errors: list[str] = []
    for track in ("VA", "EXPR", "AU", "CE", "MTL"):
        test_list = layout.test_list_path(track)
        if not test_list.is_file():
            continue
        names = read_test_list(test_list)
        missing = [name for name in names if name not in n_frames]
        if missing:
            errors.append(f"{test_list}: {len(missing)} listed video(s) not in the corpus (first: {missing[0]!r}; "
                          f"see the warnings of `abaw corpus`): no prediction for them")
            names = [name for name in names if name in n_frames]
        files[track], rows[track] = 0, 0
        try:
            if track == "MTL":
                files[track], rows[track] = _write_mtl(out, names, predict, n_frames, errors)
            else:
                files[track], rows[track] = _write_track(out, track, names, predict, n_frames, errors)
        except (DataError, ValueError) as exc:
            errors.append(f"{track}: {exc}")
    return SubmissionReport(files, rows, errors)
