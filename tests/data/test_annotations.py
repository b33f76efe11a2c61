"""Per-video annotation files: hand-written fixtures, round trips, located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.annotations import header_for, read_annotation, write_annotation
from pipeline_lib.data.errors import AnnotationError, DataError
from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, EXPR_NAMES, Task

EXPR_HEADER = ",".join(EXPR_NAMES)
AU_HEADER = ",".join(AU_NAMES)
AU_ROW = "0,1,0,0,1,1,0,0,0,0,1,0"


def test_header_for_every_task() -> None:
    assert header_for(Task.VA) == "valence,arousal"
    assert header_for("EXPR") == "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    assert header_for(Task.AU) == "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    assert header_for(Task.CE).split(",") == list(CE_NAMES)


def test_read_va_fixture_with_crlf_and_trailing_blank_lines(fixtures: Path) -> None:
    assert b"\r\n" in (fixtures / "va_crlf.txt").read_bytes()  # the fixture really is CRLF
    values = read_annotation(fixtures / "va_crlf.txt", Task.VA)
    expected = np.array([[0.5, -0.25], [-5, -5], [1, -1], [0.123, 0.456]], dtype=np.float32)
    assert values.dtype == np.float32 and values.shape == (4, 2)
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize(
    ("name", "task", "expected"),
    [
        ("expr.txt", Task.EXPR, np.array([0, 7, -1, 4])),
        ("au.txt", Task.AU, np.array([[0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0], [-1] * 12, [1] * 12])),
        ("ce.txt", Task.CE, np.array([0, 6, -1])),  # header with surrounding spaces
    ],
)
def test_read_class_fixtures(fixtures: Path, name: str, task: Task, expected: np.ndarray) -> None:
    values = read_annotation(fixtures / name, task)
    assert values.dtype == np.int64
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize(
    ("task", "values"),
    [
        (Task.VA, np.array([[0.1, -0.2], [-5, -5], [1, -1], [1e-8, -0.99999994], [0.3333333, 0]], np.float32)),
        (Task.EXPR, np.array([0, 1, 2, 3, 4, 5, 6, 7, -1, -1], np.int64)),
        (Task.AU, np.array([[1] * 12, [-1] * 12, [0, 1] * 6], np.int64)),
        (Task.CE, np.array([6, -1, 0, 3], np.int64)),
        (Task.EXPR, np.zeros(0, np.int64)),
        (Task.VA, np.zeros((0, 2), np.float32)),
    ],
)
def test_write_read_round_trip(tmp_path: Path, task: Task, values: np.ndarray) -> None:
    path = tmp_path / "deep" / "folder" / "video.txt"  # parents are created
    write_annotation(path, task, values)
    assert path.read_text(encoding="utf-8").splitlines()[0] == header_for(task)
    back = read_annotation(path, task)
    assert back.dtype == values.dtype and back.shape == values.shape
    np.testing.assert_array_equal(back, values)
    assert [p.name for p in path.parent.iterdir()] == ["video.txt"]  # no temp file left


def test_va_round_trip_is_lossless_for_random_float32(tmp_path: Path) -> None:
    values = np.random.default_rng(0).uniform(-1, 1, (500, 2)).astype(np.float32)
    write_annotation(tmp_path / "v.txt", Task.VA, values)
    assert np.array_equal(read_annotation(tmp_path / "v.txt", Task.VA), values)


def test_written_text_is_the_official_format(tmp_path: Path) -> None:
    write_annotation(tmp_path / "v.txt", Task.VA, np.array([[0.5, -5]], np.float32))
    write_annotation(tmp_path / "e.txt", Task.EXPR, np.array([3, -1]))
    assert (tmp_path / "v.txt").read_text() == "valence,arousal\n0.5,-5\n"
    assert (tmp_path / "e.txt").read_text() == f"{EXPR_HEADER}\n3\n-1\n"


BAD_FILES = [
    # (task, file text, 1-based line of the fault, text the message must hold)
    (Task.VA, "valence,arousa\n0.1,0.2\n", 1, "expected 'valence,arousal', found 'valence,arousa'"),
    (Task.VA, "arousal,valence\n", 1, "wrong VA header"),
    (Task.EXPR, "Neutral,Anger\n0\n", 1, "wrong EXPR header"),
    (Task.AU, f"{EXPR_HEADER}\n", 1, "wrong AU header"),
    (Task.VA, "valence,arousal\n0.1,0.2\n0.1\n", 3, "expected 2 comma-separated values, found 1"),
    (Task.VA, "valence,arousal\n0.1,0.2,0.3\n", 2, "found 3"),
    (Task.AU, f"{AU_HEADER}\n{AU_ROW}\n{AU_ROW},1\n", 3, "expected 12"),
    (Task.EXPR, f"{EXPR_HEADER}\n1,2\n", 2, "expected 1"),
    (Task.VA, "valence,arousal\n0.1,0.2\n0.3,abc\n", 3, "arousal: not a number: 'abc'"),
    (Task.EXPR, f"{EXPR_HEADER}\n1\n2.5\n", 3, "not an integer: '2.5'"),
    (Task.EXPR, f"{EXPR_HEADER}\nhappy\n", 2, "not an integer"),
    (Task.EXPR, f"{EXPR_HEADER}\n0_1\n", 2, "not an integer: '0_1'"),
    (Task.VA, "valence,arousal\n0.1,0_5\n", 2, "arousal: not a number: '0_5'"),
    (Task.VA, "valence,arousal\r\n1.5,0\r\n", 2, "valence: '1.5' out of range"),
    (Task.VA, "valence,arousal\n0,0\n0,-1.01\n", 3, "out of range"),
    (Task.VA, "valence,arousal\nnan,0.1\n", 2, "valence: 'nan' out of range"),
    (Task.VA, "valence,arousal\n0.1,inf\n", 2, "out of range"),
    (Task.VA, "valence,arousal\n-4,0\n", 2, "out of range"),
    (Task.EXPR, f"{EXPR_HEADER}\n0\n1\n9\n", 4, "EXPR: 9 out of range (expected 0..7, or -1"),
    (Task.EXPR, f"{EXPR_HEADER}\n-2\n", 2, "out of range"),
    (Task.AU, f"{AU_HEADER}\n{AU_ROW}\n0,0,2,0,0,0,0,0,0,0,0,0\n", 3, "AU4: 2 out of range (expected 0..1"),
    (Task.CE, f"{','.join(CE_NAMES)}\n7\n", 2, "CE: 7 out of range (expected 0..6"),
    (Task.EXPR, f"{EXPR_HEADER}\n1\n\n2\n", 3, "blank line inside the data"),
]


@pytest.mark.parametrize(("task", "text", "line", "fragment"), BAD_FILES)
def test_bad_file_error_names_file_and_line(
    tmp_path: Path, task: Task, text: str, line: int, fragment: str
) -> None:
    path = tmp_path / "bad_video.txt"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(AnnotationError) as info:
        read_annotation(path, task)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert fragment in message
    assert "\n" not in message
    assert info.value.path == path and info.value.line == line


@pytest.mark.parametrize("text", ["", "\n\n", "\r\n  \r\n"])
def test_empty_file_is_an_error_without_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.txt"
    path.write_text(text, newline="")
    with pytest.raises(AnnotationError) as info:
        read_annotation(path, Task.EXPR)
    assert str(info.value) == f"{path}: empty file (expected the EXPR header {EXPR_HEADER!r})"


def test_header_only_file_has_no_frames(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("valence,arousal\n")
    assert read_annotation(path, Task.VA).shape == (0, 2)


def test_unreadable_files_are_data_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"valence,arousal\n0.5,\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_annotation(tmp_path / "latin1.txt", Task.VA)
    with pytest.raises(DataError, match="cannot read file") as info:
        read_annotation(tmp_path / "missing.txt", Task.VA)
    assert str(info.value).startswith(f"{tmp_path / 'missing.txt'}: ")


@pytest.mark.parametrize(
    ("task", "values", "fragment"),
    [
        (Task.VA, np.zeros((3, 3)), "shape (T, 2)"),
        (Task.VA, np.zeros(3), "shape (T, 2)"),
        (Task.EXPR, np.zeros((3, 1), np.int64), "shape (T,)"),
        (Task.AU, np.zeros((3, 11), np.int64), "shape (T, 12)"),
        (Task.VA, np.array([[0.0, 1.5]]), "value 1.5 out of range at frame 0"),
        (Task.VA, np.array([[0.0, 0.0], [np.nan, 0.0]]), "out of range at frame 1"),
        (Task.EXPR, np.array([0, 8]), "value 8 out of range at frame 1"),
        (Task.EXPR, np.array([0.0, 1.5]), "must be integers"),
        (Task.AU, np.full((2, 12), 2), "value 2 out of range"),
        (Task.CE, np.array([7]), "out of range"),
    ],
)
def test_writer_rejects_bad_values(tmp_path: Path, task: Task, values: np.ndarray, fragment: str) -> None:
    path = tmp_path / "out.txt"
    with pytest.raises(ValueError) as info:
        write_annotation(path, task, values)
    assert fragment in str(info.value)
    assert not path.exists()
