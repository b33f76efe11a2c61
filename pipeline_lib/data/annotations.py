"""Reader and writer of the official per-video annotation files.

File format: one header line naming the columns, then line k+1 = frame k
(frame files are 1-based, ``00001.jpg`` is frame index 0).

    VA    (T, 2) float32  valence,arousal in [-1, 1]; -5 = not annotated
    EXPR  (T,)   int64    0..7;  -1 = not annotated
    AU    (T, 12) int64   0/1;   -1 = not annotated
    CE    (T,)   int64    0..6;  -1 = not annotated

Every fault is an AnnotationError whose text names the file and the 1-based
line as an editor shows it, so a user can fix a 30k-line file directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import numpy as np

from pipeline_lib.data.errors import AnnotationError
from pipeline_lib.data.labels import (
    AU_NAMES,
    CE_NAMES,
    CLASS_INVALID,
    EXPR_NAMES,
    VA_INVALID,
    VA_NAMES,
    Task,
)
from pipeline_lib.data.layout import read_text_lines
from pipeline_lib.files import write_text_atomic

__all__ = [
    "format_va_value", "header_for", "n_columns", "parse_class_value", "parse_va_value",
    "read_annotation", "write_annotation",
]

_NAMES: Final[dict[Task, tuple[str, ...]]] = {
    Task.VA: VA_NAMES, Task.EXPR: EXPR_NAMES, Task.AU: AU_NAMES, Task.CE: CE_NAMES,
}
# Number of valid classes of each integer column; AUs are binary.
_N_CLASSES: Final[dict[Task, int]] = {Task.EXPR: len(EXPR_NAMES), Task.AU: 2, Task.CE: len(CE_NAMES)}
_SHOWN: Final[int] = 80  # longest excerpt of user text quoted in a message


def header_for(task: Task | str) -> str:
    """The official header line of `task`'s files, without line ending."""
    return ",".join(_NAMES[Task(task)])


def n_columns(task: Task | str) -> int:
    """Fields per data row: 2 for VA, 12 for AU, 1 for EXPR and CE."""
    task = Task(task)
    return len(_NAMES[task]) if task in (Task.VA, Task.AU) else 1


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_va_value(field: str, path: Path, line: int, what: str) -> float:
    """A valence or arousal field: a finite float in [-1, 1] or the -5 marker."""
    try:
        if "_" in field:  # float() reads '1_0' as 10.0; no label file means that
            raise ValueError(field)
        value = float(field)
    except ValueError:
        raise AnnotationError(path, f"{what}: not a number: {_excerpt(field)}", line) from None
    # float() accepts 'nan' and 'inf'; neither is a label, and NaN would slip
    # through every range comparison below.
    if not math.isfinite(value) or not (-1.0 <= value <= 1.0 or value == VA_INVALID):
        raise AnnotationError(
            path, f"{what}: {_excerpt(field)} out of range (expected -1..1, or {VA_INVALID:g} if not annotated)", line
        )
    return value


def parse_class_value(field: str, n_classes: int, path: Path, line: int, what: str) -> int:
    """An integer class field: 0..n_classes-1 or the -1 marker."""
    try:
        if "_" in field:  # int() reads '0_1' as 1; no label file means that
            raise ValueError(field)
        value = int(field)
    except ValueError:
        raise AnnotationError(path, f"{what}: not an integer: {_excerpt(field)}", line) from None
    if not (0 <= value < n_classes or value == CLASS_INVALID):
        raise AnnotationError(
            path, f"{what}: {value} out of range (expected 0..{n_classes - 1}, or {CLASS_INVALID} if not annotated)",
            line,
        )
    return value


def format_va_value(value: float) -> str:
    """Shortest text that reads back to the same float32 (e.g. '0.1', '-5')."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def _check_header(path: Path, task: Task, lines: list[str]) -> None:
    if not lines:
        raise AnnotationError(path, f"empty file (expected the {task.value} header {header_for(task)!r})")
    found = [name.strip() for name in lines[0].split(",")]
    if found != list(_NAMES[task]):
        raise AnnotationError(
            path, f"wrong {task.value} header: expected {header_for(task)!r}, found {_excerpt(lines[0].strip())}", 1
        )


def read_annotation(path: Path, task: Task | str) -> np.ndarray:
    """Parse one per-video file: VA (T, 2) float32, EXPR/CE (T,) int64, AU (T, 12) int64.

    Trailing blank lines are ignored; a blank line between rows is an error,
    since skipping it would shift every later frame.
    """
    task = Task(task)
    lines = read_text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    _check_header(path, task, lines)
    names, width = _NAMES[task], n_columns(task)
    rows: list[list[float]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise AnnotationError(path, "blank line inside the data (would shift later frames)", lineno)
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != width:
            raise AnnotationError(path, f"expected {width} comma-separated values, found {len(fields)}", lineno)
        if task is Task.VA:
            rows.append([parse_va_value(f, path, lineno, n) for f, n in zip(fields, names)])
        else:
            what = names if task is Task.AU else (task.value,)
            rows.append([parse_class_value(f, _N_CLASSES[task], path, lineno, w) for f, w in zip(fields, what)])
    if task is Task.VA:
        return np.array(rows, dtype=np.float32).reshape(len(rows), width)
    values = np.array(rows, dtype=np.int64).reshape(len(rows), width)
    return values if task is Task.AU else values[:, 0]


def _checked_values(path: Path, task: Task, values: np.ndarray) -> np.ndarray:
    """Validate what a caller asks to write: shape, finiteness, integrality, range."""
    values = np.asarray(values)
    expected = (len(_NAMES[task]),) if task in (Task.VA, Task.AU) else ()
    if values.ndim != 1 + len(expected) or values.shape[1:] != expected:
        wanted = f"(T, {expected[0]})" if expected else "(T,)"
        raise ValueError(f"{path}: {task.value} values must have shape {wanted}; got {values.shape}")
    if task is Task.VA:
        values = values.astype(np.float32)
        ok = np.isfinite(values) & ((np.abs(values) <= 1.0) | (values == VA_INVALID))
    else:
        if values.dtype.kind not in "iub" and not np.all(np.isfinite(values) & (values == np.round(values))):
            raise ValueError(f"{path}: {task.value} values must be integers")
        values = values.astype(np.int64)
        ok = ((values >= 0) & (values < _N_CLASSES[task])) | (values == CLASS_INVALID)
    if not np.all(ok):
        bad = np.argwhere(~ok)[0]
        raise ValueError(f"{path}: {task.value} value {values[tuple(bad)].item()!r} out of range at frame {bad[0]}")
    return values


def write_annotation(path: Path, task: Task | str, values: np.ndarray) -> None:
    """Write `values` (shapes as read_annotation returns) in the official format.

    VA floats use the shortest text that reads back to the same float32, so a
    write -> read round trip is lossless. Raises ValueError on a wrong shape or
    an out-of-range value; the file is written atomically.
    """
    task = Task(task)
    values = _checked_values(path, task, values)
    if task is Task.VA:
        rows = [f"{format_va_value(v)},{format_va_value(a)}" for v, a in values]
    elif task is Task.AU:
        rows = [",".join(map(str, row)) for row in values.tolist()]
    else:
        rows = [str(v) for v in values.tolist()]
    write_text_atomic(path, "".join(f"{line}\n" for line in [header_for(task), *rows]))
