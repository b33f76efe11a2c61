"""The per-video manifest: which videos exist, their split, tasks, fps and length.

`build_manifest` scans an official Aff-Wild2 tree once; later stages read its
CSV instead of re-probing every video. Faults real copies always have a few of
(an annotated video missing on disk, an undecodable file, label lines not
matching the decoded frame count) become one-line warnings, never crashes.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, NamedTuple, cast

import av
import numpy as np

from pipeline_lib.data.annotations import read_annotation
from pipeline_lib.data.errors import DataError, LayoutError
from pipeline_lib.data.labels import (
    LABEL_COLUMNS,
    SPLIT_FOLDERS,
    Task,
    empty_compound,
    empty_labels,
    task_spec,
)
from pipeline_lib.data.layout import (
    TEST_LIST_TASKS,
    VIDEO_SUFFIXES,
    AffWild2Layout,
    read_test_list,
    read_text_lines,
    safe_video_name,
    write_text_atomic,
)
from pipeline_lib.data.mtl import read_mtl

__all__ = [
    "BASIC_TASKS", "LABEL_TASKS", "MANIFEST_COLUMNS", "SPLITS", "Scanned", "Split", "VideoEntry", "build_manifest",
    "format_splits", "labels_in_split", "load_labels", "mtl_labels", "probe_video", "read_manifest", "write_manifest",
]

Split = Literal["train", "val", "test"]
Side = Literal["left", "right"]
LABEL_TASKS: Final[tuple[str, ...]] = tuple(t.value for t in Task)  # VA, EXPR, AU, CE
BASIC_TASKS: Final[tuple[str, ...]] = tuple(LABEL_COLUMNS)  # VA, EXPR, AU: what an MTL file or test list covers
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
MANIFEST_COLUMNS: Final[tuple[str, ...]] = ("name", "video_path", "splits", "side", "fps", "n_frames")


@dataclass(frozen=True)
class VideoEntry:
    """One subject track of one video file (a `_left`/`_right` pair shares a file).

    `splits` maps each task the video is labelled or tested for to its split in that task: in Aff-Wild2 a
    video can be in VA's Train_Set and EXPR's Validation_Set, so a video has no single split. An empty
    mapping is an unlabelled video (in no annotation and no test list).
    """

    name: str
    video_path: str  # relative to the dataset root, posix separators
    splits: Mapping[str, Split] = field(hash=False)  # task (LABEL_TASKS) -> split, in LABEL_TASKS order
    side: Side | None
    fps: float
    n_frames: int

    def __post_init__(self) -> None:
        unknown = [f"{t}:{s}" for t, s in self.splits.items() if t not in LABEL_TASKS or s not in SPLITS]
        if unknown:
            raise ValueError(f"{self.name}: unknown task or split in {unknown}")
        object.__setattr__(self, "splits", {t: self.splits[t] for t in LABEL_TASKS if t in self.splits})

    def split_of(self, task: str) -> Split | None:
        """The split of `task` ("va" or "VA", ...) for this video; None if it is neither labelled nor tested."""
        return self.splits.get(task.upper())

    def tasks_in(self, split: str) -> tuple[str, ...]:
        """Tasks (LABEL_TASKS order) this video belongs to `split` of."""
        return tuple(t for t, s in self.splits.items() if s == split)

    @property
    def tasks(self) -> tuple[str, ...]:
        """Tasks with labels (train or val), in LABEL_TASKS order."""
        return tuple(t for t, s in self.splits.items() if s != "test")

    @property
    def unlabeled(self) -> bool:
        return not self.splits


def format_splits(splits: Mapping[str, str]) -> str:
    """{"VA": "train", "EXPR": "val"} -> "VA:train+EXPR:val" (the manifest's `splits` cell; "" when unlabelled)."""
    return "+".join(f"{task}:{split}" for task, split in splits.items())


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


class Scanned(NamedTuple):
    """What build_manifest found: the entries, one-line warnings, and the names of videos left out."""

    entries: list[VideoEntry]
    warnings: list[str]
    skipped: list[str]


class _Scan:
    """(video, task) -> split and the file that says so, while scanning; the per-task folders go first."""

    def __init__(self) -> None:
        self.splits: dict[str, dict[str, tuple[str, Path]]] = {}
        self.warnings: list[str] = []
        self.skipped: list[str] = []

    def known(self, video: str, task: str) -> tuple[str, Path] | None:
        return self.splits.get(video, {}).get(task)

    def add(self, video: str, task: str, split: str, source: Path) -> None:
        """`source` puts `video`'s `task` in `split`; another split for the same (video, task) is an error."""
        try:
            safe_video_name(video, source)
        except LayoutError as err:
            self.warnings.append(f"{err}; skipped")
            self.skipped.append(video)
            return
        known = self.known(video, task)
        if known is not None and known[0] != split:
            raise LayoutError(source, f"video {video!r} is {task} {split} here but {task} {known[0]} in {known[1]}")
        self.splits.setdefault(video, {}).setdefault(task, (split, source))

    def first_source(self, video: str) -> Path:
        return next(iter(self.splits[video].values()))[1]


def _scan_folders(layout: AffWild2Layout, scan: _Scan) -> None:
    """Record every per-task annotation file: it fixes its task's split for its video."""
    for split in SPLIT_FOLDERS:
        for task in Task:
            folder = layout.annotation_dir(task, split)
            if folder.is_dir():
                for file in sorted(folder.glob("*.txt")):
                    scan.add(file.stem, task.value, split, file)


def _scan_mtl(layout: AffWild2Layout, scan: _Scan) -> None:
    """The MTL files give the split of each (video, task) the per-task folders do not name.

    Where a folder names the pair too, the folder wins (it is the task's own release): a different split in
    the MTL file is a warning naming both files, and its rows for that task are never read. A (video, task)
    in both MTL files is an error.
    """
    from_folders = {(video, task) for video, tasks in scan.splits.items() for task in tasks}
    for split in SPLIT_FOLDERS:
        path = layout.mtl_path(split)
        if not path.is_file():
            continue
        for video, labels in read_mtl(path).items():
            for task in BASIC_TASKS:
                if not (labels[:, LABEL_COLUMNS[task]] != task_spec(task).invalid).any():
                    continue
                known = scan.known(video, task)
                if (video, task) in from_folders and known is not None:
                    if known[0] != split:
                        scan.warnings.append(f"{path}: video {video!r} is {task} {split} here but {task} {known[0]} "
                                             f"in {known[1]}; the per-task folder wins")
                    continue
                scan.add(video, task, split, path)


def _scan_test_lists(layout: AffWild2Layout, scan: _Scan) -> None:
    """Record test videos per task; an MTL test list stands for VA, EXPR and AU.

    A test list naming a (video, task) a per-task file annotates is an error; one whose split came from an MTL
    file (the MTL challenge's own subset and splits) is a warning, and the test list wins.
    """
    mtl_files = {layout.mtl_path(split) for split in SPLIT_FOLDERS}
    for task_name in TEST_LIST_TASKS:
        path = layout.test_list_path(task_name)
        if not path.is_file():
            continue
        for video in read_test_list(path):
            for task in BASIC_TASKS if task_name == "MTL" else (task_name,):
                known = scan.known(video, task)
                if known is not None and known[0] != "test":
                    message = f"video {video!r} is in this test list but annotated for {task} {known[0]} in {known[1]}"
                    if known[1] not in mtl_files:
                        raise LayoutError(path, message)
                    scan.warnings.append(f"{LayoutError(path, message)}; the test list wins")
                    del scan.splits[video][task]
                scan.add(video, task, "test", path)


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


def build_manifest(root: Path) -> Scanned:
    """Scan an official Aff-Wild2 tree into entries sorted by name, warnings and the videos skipped.

    Each (video, task) gets one split: from the task's own folders, else from the MTL files, else from the
    test lists; a video may be train for one task and val for another. Raises LayoutError when one task puts
    a video in two splits (naming both files), and a DataError for a malformed MTL file or test list; a
    missing or unreadable video, or an annotation file with an unsafe name, is skipped with a warning.
    """
    layout = AffWild2Layout(root)
    scan = _Scan()
    _scan_folders(layout, scan)
    _scan_mtl(layout, scan)
    _scan_test_lists(layout, scan)

    # Files no annotation or test list refers to; sorting by suffix preference
    # makes `x.mp4` win over `x.avi` here exactly as in find_video_file.
    videos_dir = layout.videos_dir()
    files = [p for p in videos_dir.iterdir() if p.suffix in VIDEO_SUFFIXES] if videos_dir.is_dir() else []
    referenced = {layout.base_video(video) for video in scan.splits}
    unlabeled: dict[str, Path] = {}
    for file in sorted(files, key=lambda p: (p.stem, VIDEO_SUFFIXES.index(p.suffix))):
        if file.stem not in referenced and file.stem not in unlabeled:
            try:
                unlabeled[safe_video_name(file.stem, file)] = file
            except LayoutError as err:
                scan.warnings.append(f"{err}; skipped")
                scan.skipped.append(file.stem)

    probed: dict[Path, tuple[float, int] | DataError] = {}
    entries: list[VideoEntry] = []
    for video in sorted([*scan.splits, *unlabeled]):
        splits = {task: split for task, (split, _) in scan.splits.get(video, {}).items()}
        try:
            path = unlabeled[video] if not splits else layout.find_video_file(
                video, referenced_by=scan.first_source(video))
            if not path.resolve().is_relative_to(root.resolve()):
                raise LayoutError(path, f"video file resolves outside the dataset root {root}")
            fps, n_frames = _probe_once(path, probed)
        except DataError as err:
            scan.warnings.append(f"{err}; {video!r} skipped")
            scan.skipped.append(video)
            continue
        entries.append(VideoEntry(
            name=video,
            video_path=path.relative_to(root).as_posix(),
            splits=cast(dict[str, Split], splits),
            side=layout.subject_side(video) if splits else None,
            fps=fps,
            n_frames=n_frames,
        ))
    return Scanned(entries, scan.warnings, sorted(set(scan.skipped)))


def write_manifest(path: Path, entries: list[VideoEntry]) -> None:
    """Write entries as CSV with MANIFEST_COLUMNS; `splits` as "VA:train+EXPR:val" (empty: unlabelled)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for e in entries:
        writer.writerow([e.name, e.video_path, format_splits(e.splits), e.side or "", repr(e.fps), e.n_frames])
    write_text_atomic(path, buffer.getvalue())


def _parse_splits(text: str, path: Path, line: int) -> dict[str, Split]:
    pairs = [item.partition(":") for item in text.split("+")] if text else []
    splits = {task: split for task, _, split in pairs}
    if (any(not sep or task not in LABEL_TASKS or split not in SPLITS for task, sep, split in pairs)
            or list(splits) != [t for t in LABEL_TASKS if t in splits] or len(splits) != len(pairs)):
        raise DataError(path, f"splits {text!r} are not '+'-joined TASK:split pairs (tasks {'/'.join(LABEL_TASKS)} "
                              f"in that order, each once; splits {'/'.join(SPLITS)})", line)
    return cast(dict[str, Split], splits)


def _parse_row(row: list[str], path: Path, line: int) -> VideoEntry:
    if len(row) != len(MANIFEST_COLUMNS):
        raise DataError(path, f"expected {len(MANIFEST_COLUMNS)} columns, found {len(row)}", line)
    name, video_path, splits_text, side, fps_text, n_text = row
    splits = _parse_splits(splits_text, path, line)
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
        name=safe_video_name(name, path, line), video_path=video_path, splits=splits,
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


def labels_in_split(labels: np.ndarray, entry: VideoEntry, split: str) -> np.ndarray:
    """A copy of an entry's (T, 15) labels keeping only the basic tasks it has in `split` ("train" or "val").

    The training view of a video that is VA train and EXPR val carries no EXPR label, so no stage can train
    on a validation label by accident, and its validation view carries no VA label.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FOLDERS)}; got {split!r}")
    kept = empty_labels(len(labels))
    for task in entry.tasks_in(split):
        if task in LABEL_COLUMNS:
            kept[:, LABEL_COLUMNS[task]] = labels[:, LABEL_COLUMNS[task]]
    return kept


@functools.lru_cache(maxsize=4)
def _parsed_mtl(path: Path, inode: int, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
    videos = read_mtl(path)
    for labels in videos.values():
        labels.setflags(write=False)  # shared by every caller: read-only, so nobody edits another's labels
    return videos


def mtl_labels(path: Path) -> Mapping[str, np.ndarray]:
    """read_mtl of `path`, parsed once per process while the file stays the same (path, inode, mtime, size).

    Every video of a split reads its labels from that split's one MTL file: parsing it again per video
    would cost each stage minutes on the real corpus. The arrays are read-only.
    """
    stat = path.stat()
    return _parsed_mtl(path.resolve(), stat.st_ino, stat.st_mtime_ns, stat.st_size)


def load_labels(
    root: Path, entry: VideoEntry, *, split: str | None = None,
    mtl: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(T, 15) float32 labels, (T,) int64 compound labels and warnings of one entry.

    T = entry.n_frames. Each task is read from its own split: the task's file in that split's folder, or
    that split's MTL file when the folder has none. With `split` ("train" or "val") only the tasks the entry
    has in that split are kept (`labels_in_split`; CE likewise). An MTL file is parsed once per process
    (`mtl_labels`); `mtl` (split -> labels by video) replaces it. Test and unlabelled tasks stay all-invalid.
    """
    n = entry.n_frames
    labels, compound = empty_labels(n), empty_compound(n)
    warnings: list[str] = []
    layout = AffWild2Layout(root)
    from_mtl: dict[Split, list[str]] = {}  # split -> tasks read from that split's MTL file
    for task, task_split in entry.splits.items():
        if task_split not in SPLIT_FOLDERS:
            continue
        file = layout.annotation_path(task, task_split, entry.name)
        source = file.relative_to(root).as_posix()
        if file.is_file():
            values = _aligned(read_annotation(file, task), n, source, warnings)
            if not task_spec(task).columns:  # CE, kept apart from the (T, 15) layout
                compound[: len(values)] = values
            else:
                labels[: len(values), LABEL_COLUMNS[task]] = values.reshape(len(values), -1)
        elif task_spec(task).columns and layout.mtl_path(task_split).is_file():
            from_mtl.setdefault(task_split, []).append(task)
        else:
            warnings.append(f"{source}: missing; {entry.name} has no {task} labels")
    for task_split, tasks in from_mtl.items():
        mtl_path = layout.mtl_path(task_split)
        videos = mtl_labels(mtl_path) if mtl is None or task_split not in mtl else mtl[task_split]
        source = mtl_path.relative_to(root).as_posix()
        if entry.name not in videos:
            warnings.append(f"{source}: no rows for {entry.name}; {'+'.join(tasks)} left unannotated")
            continue
        columns = [c for task in tasks for c in LABEL_COLUMNS[task]]
        rows = videos[entry.name][:, columns]
        if len(rows) > n:
            warnings.append(f"{source}: {entry.name} labelled up to frame {len(rows)} "
                            f"for {n} decoded frames; aligned by frame index")
        labels[: min(len(rows), n), columns] = rows[:n]
    if split is not None:
        labels = labels_in_split(labels, entry, split)
        compound = compound if entry.split_of("CE") == split else empty_compound(n)
    return labels, compound, warnings
