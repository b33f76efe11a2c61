"""The MTL annotation file: hand-written fixture, round trip, located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.errors import AnnotationError, DataError, LayoutError
from pipeline_lib.data.labels import MTL_HEADER, empty_labels
from pipeline_lib.data.mtl import frame_is_annotated, read_mtl, write_mtl

INVALID_ROW = [-5, -5] + [-1] * 13
AUS = "0,1,0,0,0,0,0,0,0,0,0,1"
ROW = f"0.5,-0.5,3,{AUS}"  # the 15 label fields of a valid row


def test_read_fixture(fixtures: Path) -> None:
    labels = read_mtl(fixtures / "mtl.txt")
    assert list(labels) == ["10-60-1280x720_right", "vid1"]  # sorted by name
    vid1 = labels["vid1"]
    assert vid1.dtype == np.float32 and vid1.shape == (3, 15)
    np.testing.assert_array_equal(vid1[0], [0.5, -0.5, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(vid1[1], [-5, -5, 7] + [1] * 12)  # listed out of order
    np.testing.assert_array_equal(vid1[2], INVALID_ROW)
    right = labels["10-60-1280x720_right"]
    assert right.shape == (2, 15)  # T = highest frame listed
    np.testing.assert_array_equal(right[0], INVALID_ROW)  # frame 00001 absent: not annotated
    np.testing.assert_array_equal(right[1], [0.25, 1, -1] + [-1] * 12)


def test_round_trip_is_lossless_for_annotated_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = empty_labels(6)
    a[:, :2] = rng.uniform(-1, 1, (6, 2)).astype(np.float32)
    a[:, 2] = rng.integers(-1, 8, 6)
    a[:, 3:] = rng.integers(-1, 2, (6, 12))
    a[2] = INVALID_ROW  # an unannotated frame inside the video
    a[4, :2] = -5  # VA missing, classes present
    b = empty_labels(3)
    b[2, 5] = 1  # only one AU on the last frame
    path = tmp_path / "mtl" / "training_set_annotations.txt"
    write_mtl(path, {"b_right": b, "a": a})

    lines = path.read_text().splitlines()
    assert lines[0] == MTL_HEADER
    assert [ln.split(",")[0] for ln in lines[1:]] == [
        "a/00001.jpg", "a/00002.jpg", "a/00004.jpg", "a/00005.jpg", "a/00006.jpg", "b_right/00003.jpg",
    ]
    assert all(len(ln.split(",")) == 16 for ln in lines[1:])
    back = read_mtl(path)
    assert list(back) == ["a", "b_right"]
    np.testing.assert_array_equal(back["a"], a)
    np.testing.assert_array_equal(back["b_right"], b)


def test_frame_is_annotated() -> None:
    a = empty_labels(4)
    a[1, 0] = 0.0
    a[2, 2] = 0
    a[3, 14] = 0
    np.testing.assert_array_equal(frame_is_annotated(a), [False, True, True, True])


def test_write_trims_trailing_unannotated_frames(tmp_path: Path) -> None:
    a = empty_labels(5)
    a[1, 2] = 4
    write_mtl(tmp_path / "m.txt", {"v": a})
    np.testing.assert_array_equal(read_mtl(tmp_path / "m.txt")["v"], a[:2])


BAD_MTL = [
    ("image,valence,arousal,expression\n", 1, "wrong MTL header: expected 'image,valence,arousal,expression,aus'"),
    (f"v/00001.jpg,{ROW}\n", 1, "wrong MTL header"),
    (f"{MTL_HEADER}\nv/00001.jpg,{ROW}\nv/00002.jpg,0.1,0.1,1\n", 3, "expected 16 comma-separated values, found 4"),
    (f"{MTL_HEADER}\nv/00001.jpg,{ROW},0\n", 2, "found 17"),
    (f"{MTL_HEADER}\nv/00001.jpg,{ROW}\n../x/00001.jpg,{ROW}\n", 3, "unsafe video name '../x'"),
    (f"{MTL_HEADER}\n/abs/00001.jpg,{ROW}\n", 2, "unsafe video name '/abs'"),
    (f"{MTL_HEADER}\n../00001.jpg,{ROW}\n", 2, "unsafe video name '..'"),
    (f"{MTL_HEADER}\n/00001.jpg,{ROW}\n", 2, "unsafe video name ''"),
    (f"{MTL_HEADER}\nv/1.jpg,{ROW}\n", 2, "is not <video>/<5 digits>.jpg"),
    (f"{MTL_HEADER}\n00001.jpg,{ROW}\n", 2, "is not <video>/<5 digits>.jpg"),
    (f"{MTL_HEADER}\nv/00001.png,{ROW}\n", 2, "is not <video>/<5 digits>.jpg"),
    (f"{MTL_HEADER}\nv/00000.jpg,{ROW}\n", 2, "frame numbers start at 00001"),
    (f"{MTL_HEADER}\nv/00001.jpg,{ROW}\nw/00001.jpg,{ROW}\nv/00001.jpg,{ROW}\n", 4, "(first at line 2)"),
    (f"{MTL_HEADER}\nv/00001.jpg,0.5,nan,3,{AUS}\n", 2, "arousal: 'nan' out of range"),
    (f"{MTL_HEADER}\r\nv/00001.jpg,1.5,0,3,{AUS}\r\n", 2, "valence: '1.5' out of range"),
    (f"{MTL_HEADER}\nv/00001.jpg,0.5,0,8,{AUS}\n", 2, "expression: 8 out of range"),
    (f"{MTL_HEADER}\nv/00001.jpg,0.5,0,x,{AUS}\n", 2, "expression: not an integer: 'x'"),
    (f"{MTL_HEADER}\nv/00001.jpg,0.5,-0.5,3,0,1,0,0,0,0,0,0,0,0,0,2\n", 2, "AU26: 2 out of range"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD_MTL)
def test_bad_mtl_error_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "validation_set_annotations.txt"
    path.write_bytes(text.encode())
    with pytest.raises(DataError) as info:  # AnnotationError, or LayoutError for unsafe names
        read_mtl(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert fragment in message
    assert "\n" not in message


def test_unsafe_image_path_is_a_layout_error(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_text(f"{MTL_HEADER}\n../../etc/00001.jpg,{ROW}\n")
    with pytest.raises(LayoutError, match=r"m\.txt:2: unsafe video name '\.\./\.\./etc'"):
        read_mtl(path)


def test_empty_mtl_file(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("\n")
    with pytest.raises(AnnotationError, match=r"m\.txt: empty file"):
        read_mtl(tmp_path / "m.txt")


def test_header_only_mtl_file_has_no_videos(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text(f"{MTL_HEADER}\n")
    assert read_mtl(tmp_path / "m.txt") == {}


@pytest.mark.parametrize(
    ("labels", "error", "fragment"),
    [
        ({"../x": empty_labels(1)}, LayoutError, "unsafe video name '../x'"),
        ({"v": np.zeros((2, 14))}, ValueError, "shape (T, 15)"),
        ({"v": np.full((1, 15), 1.5)}, ValueError, "valence/arousal must be in [-1, 1]"),
        ({"v": np.array([[0, 0, 8] + [0] * 12])}, ValueError, "expression must be in 0..7"),
        ({"v": np.array([[0, 0, 0.5] + [0] * 12])}, ValueError, "must be integers"),
        ({"v": np.array([[0, 0, 1] + [2] * 12])}, ValueError, "AUs must be 0, 1 or -1"),
        ({"v": np.array([[np.nan, 0, 1] + [0] * 12])}, ValueError, "finite"),
    ],
)
def test_write_mtl_rejects_bad_input(
    tmp_path: Path, labels: dict[str, np.ndarray], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        write_mtl(tmp_path / "m.txt", labels)
    assert fragment in str(info.value)
    assert not (tmp_path / "m.txt").exists()
