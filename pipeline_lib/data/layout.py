"""The official Aff-Wild2 directory layout, safe video names and test lists.

Every path the pipeline derives from a video name goes through
`safe_video_name`, because names come from user files (test lists, MTL image
paths, annotation file names) and must never escape the dataset root.
Also home to the text reader the label readers share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pipeline_lib.data.errors import DataError, LayoutError
from pipeline_lib.data.labels import MTL_FILES, SPLIT_FOLDERS, TASK_FOLDERS, Task
from pipeline_lib.files import write_text_atomic

__all__ = [
    "AffWild2Layout", "TEST_LIST_TASKS", "VIDEO_SUFFIXES", "read_test_list", "read_text_lines",
    "safe_video_name", "write_test_list",
]

# Task names of the official test-set release files.
TEST_LIST_TASKS: Final[tuple[str, ...]] = ("VA", "EXPR", "AU", "MTL", "CE")
# Tried in this order; the upper-case forms occur in copies made on Windows.
VIDEO_SUFFIXES: Final[tuple[str, ...]] = (".mp4", ".avi", ".MP4", ".AVI")
_SIDES: Final[tuple[Literal["left", "right"], ...]] = ("left", "right")


def safe_video_name(name: str, source: Path | None = None, line: int | None = None) -> str:
    """Return `name` unchanged if it can be joined under a folder safely.

    Rejects empty names, path separators, NUL and control characters, drive
    colons and leading dots (which also covers ``.`` and ``..``).
    Raises LayoutError naming `source` and `line` (the file the name came from).
    """
    reason = None
    if not name:
        reason = "empty video name"
    elif name.strip() != name:
        reason = "surrounding whitespace"
    elif "/" in name or "\\" in name:
        reason = "contains a path separator"
    elif name.startswith("."):
        reason = "starts with a dot"
    elif ":" in name:
        reason = "contains ':' (a drive or stream name)"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        reason = "contains a control character"
    if reason is not None:
        raise LayoutError(source, f"unsafe video name {name!r}: {reason}", line)
    return name


def read_text_lines(path: Path) -> list[str]:
    """Lines of a text file without line endings; CRLF, LF and a BOM are accepted.

    Splitting on '\\n' only (not str.splitlines) keeps line numbers equal to
    what an editor shows even if a field holds an odd control character.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte {exc.start})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the final newline does not start a line
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


@dataclass(frozen=True)
class AffWild2Layout:
    """Paths of one Aff-Wild2 copy rooted at `root`. Splits are 'train' and 'val'."""

    root: Path

    def videos_dir(self) -> Path:
        return self.root / "videos"

    def annotation_dir(self, task: Task | str, split: str) -> Path:
        """Folder of the per-video txt files of `task` in `split`."""
        return self.root / "annotations" / TASK_FOLDERS[Task(task)] / _split_folder(split)

    def annotation_path(self, task: Task | str, split: str, video: str) -> Path:
        return self.annotation_dir(task, split) / f"{safe_video_name(video)}.txt"

    def mtl_path(self, split: str) -> Path:
        if split not in MTL_FILES:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(MTL_FILES)}")
        return self.root / "annotations" / "MTL" / MTL_FILES[split]

    def test_list_path(self, task_name: str) -> Path:
        if task_name not in TEST_LIST_TASKS:
            raise ValueError(f"unknown test-list task {task_name!r}; expected one of {TEST_LIST_TASKS}")
        return self.root / "test_set" / f"{task_name}_test_set_release.txt"

    def cropped_aligned_dir(self, video: str) -> Path:
        return self.root / "cropped_aligned" / safe_video_name(video)

    @staticmethod
    def subject_side(video: str) -> Literal["left", "right"] | None:
        """'left'/'right' for one subject of a two-subject video, else None."""
        for side in _SIDES:
            if video.endswith(f"_{side}") and len(video) > len(side) + 1:
                return side
        return None

    @staticmethod
    def base_video(video: str) -> str:
        """Name of the video file holding `video`: `x_left` and `x_right` live in `x`."""
        side = AffWild2Layout.subject_side(video)
        return video[: -len(side) - 1] if side else video

    def find_video_file(self, video: str, referenced_by: Path | None = None) -> Path:
        """Path of the file holding `video`, trying VIDEO_SUFFIXES in order.

        Raises LayoutError naming `referenced_by` (the annotation or test-list
        file that needs the video) when no file exists or when it resolves,
        through a symlink, to somewhere outside the root.
        """
        base = self.base_video(safe_video_name(video, referenced_by))
        tried = [self.videos_dir() / f"{base}{suffix}" for suffix in VIDEO_SUFFIXES]
        for candidate in tried:
            if candidate.is_file():
                if not candidate.resolve().is_relative_to(self.root.resolve()):
                    raise LayoutError(
                        referenced_by, f"video file {candidate} resolves outside the dataset root {self.root}"
                    )
                return candidate
        who = f"video referenced by {referenced_by}" if referenced_by else f"video {video!r}"
        shown = ", ".join(str(p.relative_to(self.root)) for p in tried[:2])
        raise LayoutError(referenced_by, f"{who} not found: no {shown} under {self.root}")


def _split_folder(split: str) -> str:
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FOLDERS)}")
    return SPLIT_FOLDERS[split]


def read_test_list(path: Path) -> list[str]:
    """Video names of a test-set release file, one per line; blank lines ignored."""
    names: list[str] = []
    first_seen: dict[str, int] = {}
    for lineno, line in enumerate(read_text_lines(path), start=1):
        name = line.strip()
        if not name:
            continue
        safe_video_name(name, path, lineno)
        if name in first_seen:
            raise LayoutError(path, f"video {name!r} listed twice (first at line {first_seen[name]})", lineno)
        first_seen[name] = lineno
        names.append(name)
    return names


def write_test_list(path: Path, names: Iterable[str]) -> None:
    """Write one validated video name per line (the release-file format)."""
    checked = [safe_video_name(name, path) for name in names]
    write_text_atomic(path, "".join(f"{name}\n" for name in checked))
