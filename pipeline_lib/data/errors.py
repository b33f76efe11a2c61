"""Expected bad-input faults of the ingest library.

A `DataError` is what a user can fix by editing their data: the CLI prints
`str(err)` and exits non-zero instead of showing a traceback. Its text is one
line, ``<path>:<line>: <what is wrong>``, the form editors and terminals turn
into a jump-to-location link.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError", "AnnotationError", "LayoutError"]


def _one_line(text: str) -> str:
    # Messages quote user data (headers, fields); a stray newline in them would
    # break the one-line contract that log readers and tests rely on.
    return " ".join(text.splitlines())


class DataError(ValueError):
    """A fault in the user's input data, located by file and 1-based line.

    `path` may be None when no single file is to blame; `line` is None when the
    fault is about the whole file (missing, empty, unreadable).
    """

    def __init__(self, path: Path | str | None, message: str, line: int | None = None) -> None:
        # Passing every field to ValueError keeps the exception picklable, which
        # matters when it crosses a multiprocessing worker boundary.
        super().__init__(path, message, line)
        self.path: Path | None = Path(path) if path is not None else None
        self.message: str = _one_line(message)
        self.line: int | None = line

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class AnnotationError(DataError):
    """A per-video annotation file or the MTL file breaks the official format."""


class LayoutError(DataError):
    """The dataset tree breaks the official layout: unsafe names, missing files."""


class CheckpointError(DataError):
    """A model checkpoint that is not one this pipeline wrote: foreign pickle, wrong contents, or truncated."""
