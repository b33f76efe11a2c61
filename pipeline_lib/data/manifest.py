"""The per-video manifest: which videos exist, their split, tasks, fps and length.

`build_manifest` scans an official Aff-Wild2 tree once; later stages read its
CSV instead of re-probing every video. Faults real copies always have a few of
(an annotated video missing on disk, an undecodable file, label lines not
matching the decoded frame count) become one-line warnings, never crashes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

import av
import numpy as np

from pipeline_lib.data.annotations import read_annotation
from pipeline_lib.data.errors import DataError, LayoutError
from pipeline_lib.data.labels import (
    CLASS_INVALID, COL_AROUSAL, COL_AU, COL_EXPR, COL_VALENCE, SPLIT_FOLDERS, VA_INVALID, Task, empty_compound,
    empty_labels,
)
from pipeline_lib.data.layout import (
    TEST_LIST_TASKS, VIDEO_SUFFIXES, AffWild2Layout, read_test_list, read_text_lines, safe_video_name,
    write_text_atomic,
)
from pipeline_lib.data.mtl import read_mtl

__all__ = [
    "LABEL_TASKS", "MANIFEST_COLUMNS", "VideoEntry", "build_manifest", "load_labels", "probe_video",
    "read_manifest", "write_manifest",
]

Split = Literal["train", "val", "test", "unlabeled"]
Side = Literal["left", "right"]
LABEL_TASKS: Final[tuple[str, ...]] = tuple(t.value for t in Task)  # VA, EXPR, AU, CE
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "unlabeled")
MANIFEST_COLUMNS: Final[tuple[str, ...]] = ("name", "video_path", "split", "tasks", "side", "fps", "n_frames")
# Columns of the (T, 15) layout each task fills; CE is kept apart as (T,).
_COLUMNS: Final[dict[str, list[int]]] = {
    "VA": [COL_VALENCE, COL_AROUSAL], "EXPR": [COL_EXPR], "AU": list(range(COL_AU.start, COL_AU.stop)),
}


@dataclass(frozen=True)
class VideoEntry:
    """One subject track of one video file (a `_left`/`_right` pair shares a file)."""

    name: str
    video_path: str  # relative to the dataset root, posix separators
    split: Split
    tasks: tuple[str, ...]  # subset of LABEL_TASKS, in that order
    side: Side | None
    fps: float
    n_frames: int


def probe_video(path: Path) -> tuple[float, int]:
    """(fps, frame count) of the first video stream of `path`, read with PyAV.

    The count is the container's if it states one, else the number of decoded
    frames. Raises DataError (one line, naming the file) if it cannot be read.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            n_frames = stream.frames
            if n_frames <= 0:
                n_frames = sum(1 for _ in container.decode(stream))
    except DataError:
        raise
    # PyAV reports corrupt input as FFmpegError subclasses, some of which are
    # also OSError or ValueError; all of them mean "this file is unusable".
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise DataError(path, f"cannot read video: {exc}") from exc
    if not rate or float(rate) <= 0:
        raise DataError(path, "video stream has no frame rate")
    if n_frames <= 0:
        raise DataError(path, "video stream has no frames")
    return float(rate), int(n_frames)


class _Scan:
    """Video name -> split, tasks and the first file naming it, while scanning."""

    def __init__(self) -> None:
        self.split: dict[str, tuple[str, Path]] = {}
        self.tasks: dict[str, set[str]] = {}
        self.warnings: list[str] = []

    def add(self, video: str, split: str, tasks: tuple[str, ...], source: Path) -> None:
        try:
            safe_video_name(video, source)
        except LayoutError as err:
            self.warnings.append(f"{err}; skipped")
            return
        if video in self.split and self.split[video][0] != split:
            other_split, other = self.split[video]
            raise LayoutError(source, f"video {video!r} is {split} here but {other_split} in {other}")
        self.split.setdefault(video, (split, source))
        self.tasks.setdefault(video, set()).update(tasks)


def _scan_labels(layout: AffWild2Layout, scan: _Scan) -> None:
    """Record annotated videos; the MTL file stands in for absent per-task folders."""
    for split in SPLIT_FOLDERS:
        mtl_path = layout.mtl_path(split)
        mtl: dict[str, np.ndarray] | None = None  # read at most once per split
        for task in Task:
            folder = layout.annotation_dir(task, split)
            if folder.is_dir():
                for file in sorted(folder.glob("*.txt")):
                    scan.add(file.stem, split, (task.value,), file)
            elif task is not Task.CE and mtl_path.is_file():
                mtl = read_mtl(mtl_path) if mtl is None else mtl
                for video, labels in mtl.items():
                    columns = labels[:, _COLUMNS[task.value]]
                    invalid = VA_INVALID if task is Task.VA else CLASS_INVALID
                    if (columns != invalid).any():
                        scan.add(video, split, (task.value,), mtl_path)


def _scan_test_lists(layout: AffWild2Layout, scan: _Scan) -> None:
    """Record test videos; an MTL test list stands for VA, EXPR and AU."""
    for task_name in TEST_LIST_TASKS:
        path = layout.test_list_path(task_name)
        if not path.is_file():
            continue
        for video in read_test_list(path):
            if video in scan.split and scan.split[video][0] != "test":
                split, other = scan.split[video]
                raise LayoutError(path, f"video {video!r} is in this test list but annotated for {split} in {other}")
            scan.add(video, "test", ("VA", "EXPR", "AU") if task_name == "MTL" else (task_name,), path)


def _probe_once(path: Path, probed: dict[Path, tuple[float, int] | DataError]) -> tuple[float, int]:
    """probe_video, remembering the outcome: a _left/_right pair shares one file."""
    if path not in probed:
        try:
            probed[path] = probe_video(path)
        except DataError as err:
            probed[path] = err
    result = probed[path]
    if isinstance(result, DataError):
        raise result
    return result


def build_manifest(root: Path) -> tuple[list[VideoEntry], list[str]]:
    """Scan an official Aff-Wild2 tree into entries sorted by name, plus warnings.

    Raises LayoutError when a video is in two splits (naming both files), and
    a DataError for a malformed MTL file or test list; a missing or unreadable
    video, or an annotation file with an unsafe name, is skipped with a warning.
    """
    layout = AffWild2Layout(root)
    scan = _Scan()
    _scan_labels(layout, scan)
    _scan_test_lists(layout, scan)

    # Files no annotation or test list refers to; sorting by suffix preference
    # makes `x.mp4` win over `x.avi` here exactly as in find_video_file.
    videos_dir = layout.videos_dir()
    files = [p for p in videos_dir.iterdir() if p.suffix in VIDEO_SUFFIXES] if videos_dir.is_dir() else []
    referenced = {layout.base_video(video) for video in scan.split}
    for file in sorted(files, key=lambda p: (p.stem, VIDEO_SUFFIXES.index(p.suffix))):
        if file.stem not in referenced:
            scan.add(file.stem, "unlabeled", (), file)

    probed: dict[Path, tuple[float, int] | DataError] = {}
    entries: list[VideoEntry] = []
    for video, (split, source) in sorted(scan.split.items()):
        try:
            path = source if split == "unlabeled" else layout.find_video_file(video, referenced_by=source)
            if not path.resolve().is_relative_to(root.resolve()):
                raise LayoutError(path, f"video file resolves outside the dataset root {root}")
            fps, n_frames = _probe_once(path, probed)
        except DataError as err:
            scan.warnings.append(f"{err}; {video!r} skipped")
            continue
        entries.append(VideoEntry(
            name=video,
            video_path=path.relative_to(root).as_posix(),
            split=cast(Split, split),
            tasks=tuple(t for t in LABEL_TASKS if t in scan.tasks[video]),
            side=None if split == "unlabeled" else layout.subject_side(video),
            fps=fps,
            n_frames=n_frames,
        ))
    return entries, scan.warnings


def write_manifest(path: Path, entries: list[VideoEntry]) -> None:
    """Write entries as CSV with MANIFEST_COLUMNS; tasks joined with '+'."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for e in entries:
        writer.writerow([e.name, e.video_path, e.split, "+".join(e.tasks), e.side or "", repr(e.fps), e.n_frames])
    write_text_atomic(path, buffer.getvalue())


def _parse_row(row: list[str], path: Path, line: int) -> VideoEntry:
    if len(row) != len(MANIFEST_COLUMNS):
        raise DataError(path, f"expected {len(MANIFEST_COLUMNS)} columns, found {len(row)}", line)
    name, video_path, split, tasks_text, side, fps_text, n_text = row
    tasks = tuple(tasks_text.split("+")) if tasks_text else ()
    if split not in SPLITS:
        raise DataError(path, f"unknown split {split!r} (expected one of {', '.join(SPLITS)})", line)
    if tasks != tuple(t for t in LABEL_TASKS if t in tasks):
        raise DataError(path, f"tasks {tasks_text!r} are not a '+'-joined subset of {'+'.join(LABEL_TASKS)}", line)
    if side not in ("", "left", "right"):
        raise DataError(path, f"side must be left, right or empty; found {side!r}", line)
    if not video_path or video_path.startswith("/") or ".." in video_path.split("/"):
        raise DataError(path, f"video_path {video_path!r} must be relative to the dataset root", line)
    try:
        fps, n_frames = float(fps_text), int(n_text)
    except ValueError:
        raise DataError(path, f"fps {fps_text!r} or n_frames {n_text!r} is not a number", line) from None
    if not (fps > 0 and np.isfinite(fps)) or n_frames < 0:
        raise DataError(path, f"fps must be positive and n_frames non-negative; found {fps_text}, {n_text}", line)
    return VideoEntry(
        name=safe_video_name(name, path, line), video_path=video_path, split=cast(Split, split), tasks=tasks,
        side=cast(Side, side) if side else None, fps=fps, n_frames=n_frames,
    )


def read_manifest(path: Path) -> list[VideoEntry]:
    """Entries of a manifest CSV written by write_manifest, validated row by row."""
    rows: list[list[str]] = []
    for line, text in enumerate(read_text_lines(path), start=1):
        # One CSV record per text line (safe names hold no newlines), so the
        # line numbers in errors are the ones an editor shows.
        try:
            rows.append(next(csv.reader([text]), []))
        except csv.Error as exc:
            raise DataError(path, f"malformed CSV: {exc}", line) from None
    if not rows or tuple(rows[0]) != MANIFEST_COLUMNS:
        raise DataError(path, f"wrong manifest header: expected {','.join(MANIFEST_COLUMNS)!r}", 1)
    return [_parse_row(row, path, line) for line, row in enumerate(rows[1:], start=2) if row]


def _aligned(values: np.ndarray, n_frames: int, source: str, warnings: list[str]) -> np.ndarray:
    """First min(len, n_frames) rows of `values`; a length mismatch is reported, not fatal."""
    if len(values) != n_frames:
        warnings.append(f"{source}: {len(values)} label lines for {n_frames} decoded frames; aligned by frame index")
    return values[:n_frames]


def load_labels(
    root: Path, entry: VideoEntry, *, mtl: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(T, 15) float32 labels, (T,) int64 compound labels and warnings of one entry.

    T = entry.n_frames. Labels come from the per-task files of the entry's
    split, or from the split's MTL file for tasks without one; pass `mtl`
    (read_mtl of that file) to avoid re-reading it for every video. Test and
    unlabeled entries get all-invalid arrays.
    """
    n = entry.n_frames
    labels, compound = empty_labels(n), empty_compound(n)
    warnings: list[str] = []
    if entry.split not in SPLIT_FOLDERS:
        return labels, compound, warnings
    layout = AffWild2Layout(root)
    from_mtl: list[str] = []
    for task in entry.tasks:
        file = layout.annotation_path(task, entry.split, entry.name)
        source = file.relative_to(root).as_posix()
        if file.is_file():
            values = _aligned(read_annotation(file, task), n, source, warnings)
            if task == "CE":
                compound[: len(values)] = values
            else:
                labels[: len(values), _COLUMNS[task]] = values.reshape(len(values), -1)
        elif task != "CE" and layout.mtl_path(entry.split).is_file():
            from_mtl.append(task)
        else:
            warnings.append(f"{source}: missing; {entry.name} has no {task} labels")
    if from_mtl:
        mtl_path = layout.mtl_path(entry.split)
        mtl = read_mtl(mtl_path) if mtl is None else mtl
        source = mtl_path.relative_to(root).as_posix()
        if entry.name not in mtl:
            warnings.append(f"{source}: no rows for {entry.name}; {'+'.join(from_mtl)} left unannotated")
            return labels, compound, warnings
        columns = [c for task in from_mtl for c in _COLUMNS[task]]
        rows = mtl[entry.name][:, columns]
        if len(rows) > n:
            warnings.append(f"{source}: {entry.name} labelled up to frame {len(rows)} "
                            f"for {n} decoded frames; aligned by frame index")
        labels[: min(len(rows), n), columns] = rows[:n]
    return labels, compound, warnings
