"""Official layout paths, safe names, video lookup and test lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline_lib.data.errors import LayoutError
from pipeline_lib.data.labels import Task
from pipeline_lib.data.layout import AffWild2Layout, read_test_list, safe_video_name, write_test_list


@pytest.mark.parametrize("name", ["1-30-1280x720", "10-60-1280x720_right", "video10_1", "a.b", "x y"])
def test_safe_names_pass_unchanged(name: str) -> None:
    assert safe_video_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty video name"),
        ("..", "starts with a dot"),
        (".", "starts with a dot"),
        (".hidden", "starts with a dot"),
        ("../evil", "path separator"),
        ("/etc/passwd", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("C:evil", "':'"),
        ("a\x00b", "control character"),
        (" padded", "surrounding whitespace"),
    ],
)
def test_unsafe_names_are_rejected_with_source_and_line(name: str, reason: str) -> None:
    with pytest.raises(LayoutError) as info:
        safe_video_name(name, Path("lists/VA_test_set_release.txt"), 7)
    message = str(info.value)
    assert message.startswith("lists/VA_test_set_release.txt:7: unsafe video name ")
    assert reason in message and "\n" not in message
    assert info.value.line == 7


def test_unsafe_name_without_source_is_still_one_line() -> None:
    with pytest.raises(LayoutError) as info:
        safe_video_name("../x")
    assert str(info.value) == "unsafe video name '../x': contains a path separator"


def test_layout_paths(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    ann = tmp_path / "annotations"
    assert layout.videos_dir() == tmp_path / "videos"
    assert layout.annotation_dir(Task.VA, "train") == ann / "VA_Estimation_Challenge" / "Train_Set"
    assert layout.annotation_dir("EXPR", "val") == ann / "EXPR_Recognition_Challenge" / "Validation_Set"
    assert layout.annotation_path(Task.AU, "val", "v1") == ann / "AU_Detection_Challenge" / "Validation_Set" / "v1.txt"
    assert layout.annotation_path(Task.CE, "train", "v1") == ann / "CE" / "Train_Set" / "v1.txt"
    assert layout.mtl_path("train") == ann / "MTL" / "training_set_annotations.txt"
    assert layout.mtl_path("val") == ann / "MTL" / "validation_set_annotations.txt"
    assert layout.test_list_path("MTL") == tmp_path / "test_set" / "MTL_test_set_release.txt"
    assert layout.cropped_aligned_dir("v1") == tmp_path / "cropped_aligned" / "v1"


def test_layout_rejects_unknown_splits_tasks_and_unsafe_names(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        layout.annotation_dir(Task.VA, "test")
    with pytest.raises(ValueError, match="unknown split"):
        layout.mtl_path("Train_Set")
    with pytest.raises(ValueError, match="unknown test-list task 'FOO'"):
        layout.test_list_path("FOO")
    with pytest.raises(LayoutError):
        layout.annotation_path(Task.VA, "train", "../x")
    with pytest.raises(LayoutError):
        layout.cropped_aligned_dir("/abs")


@pytest.mark.parametrize(
    ("video", "side", "base"),
    [("x_left", "left", "x"), ("x_right", "right", "x"), ("x", None, "x"), ("x_lefty", None, "x_lefty"),
     ("_left", None, "_left"), ("a_b_right", "right", "a_b")],
)
def test_subject_side_and_base_video(video: str, side: str | None, base: str) -> None:
    assert AffWild2Layout.subject_side(video) == side
    assert AffWild2Layout(Path("/r")).base_video(video) == base


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_find_video_file_prefers_mp4_then_avi_and_strips_sides(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    _touch(tmp_path / "videos" / "both.avi")
    mp4 = _touch(tmp_path / "videos" / "both.mp4")
    avi = _touch(tmp_path / "videos" / "only.avi")
    upper = _touch(tmp_path / "videos" / "upper.MP4")
    assert layout.find_video_file("both") == mp4
    assert layout.find_video_file("only_left") == avi
    assert layout.find_video_file("only_right") == avi
    assert layout.find_video_file("upper") == upper


def test_missing_video_names_the_referencing_file(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    source = tmp_path / "annotations" / "VA_Estimation_Challenge" / "Train_Set" / "ghost_left.txt"
    with pytest.raises(LayoutError) as info:
        layout.find_video_file("ghost_left", referenced_by=source)
    message = str(info.value)
    assert message.startswith(f"{source}: video referenced by {source} not found: no videos/ghost.mp4")
    assert "\n" not in message


def test_video_symlinked_outside_the_root_is_refused(tmp_path: Path) -> None:
    outside = _touch(tmp_path / "elsewhere" / "v.mp4")
    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "v.mp4").symlink_to(outside)
    with pytest.raises(LayoutError, match="resolves outside the dataset root"):
        AffWild2Layout(root).find_video_file("v")


def test_read_test_list_fixture(fixtures: Path) -> None:
    # CRLF on one line, blank lines and padding around a name are tolerated.
    assert read_test_list(fixtures / "test_list.txt") == ["video_b", "10-60-1280x720_left", "video_a"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("ok\n../evil\n", 2, "unsafe video name '../evil'"),
        ("ok\n\n/etc/passwd\n", 3, "unsafe video name '/etc/passwd'"),
        ("a\\b\n", 1, "path separator"),
        ("a\nb\na\n", 3, "listed twice (first at line 1)"),
    ],
)
def test_bad_test_list_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "EXPR_test_set_release.txt"
    path.write_text(text)
    with pytest.raises(LayoutError) as info:
        read_test_list(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and fragment in message and "\n" not in message


def test_test_list_round_trip(tmp_path: Path) -> None:
    names = ["1-30-1280x720", "x_left", "x_right"]
    path = tmp_path / "test_set" / "AU_test_set_release.txt"
    write_test_list(path, names)
    assert path.read_text() == "1-30-1280x720\nx_left\nx_right\n"
    assert read_test_list(path) == names
    write_test_list(path, [])
    assert read_test_list(path) == []


def test_write_test_list_rejects_unsafe_names(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="unsafe video name '../x'"):
        write_test_list(tmp_path / "t.txt", ["ok", "../x"])
    assert not (tmp_path / "t.txt").exists()
