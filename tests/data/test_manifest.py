"""Manifest: probing real tiny videos, scanning a tiny layout, CSV I/O, label loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.annotations import write_annotation
from pipeline_lib.data.errors import DataError, LayoutError
from pipeline_lib.data.labels import Task, empty_compound, empty_labels
from pipeline_lib.data.layout import AffWild2Layout, write_test_list
from pipeline_lib.data.manifest import (
    VideoEntry,
    build_manifest,
    load_labels,
    probe_video,
    read_manifest,
    write_manifest,
)
from pipeline_lib.data.mtl import write_mtl

VA_12 = np.linspace(-1, 1, 24, dtype=np.float32).reshape(12, 2)
EXPR_10 = np.arange(10) % 8
CE_10 = np.array([0, 1, 2, 3, 4, 5, 6, -1, -1, 0])
AU_8 = np.tile([1, 0, -1, 1, 0, 1, 1, 0, 0, 1, 0, 1], (8, 1))


def test_probe_video_reads_fps_and_frame_count(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    assert probe_video(make_video(tmp_path / "a.mp4", n_frames=10, fps=25)) == (25.0, 10)
    assert probe_video(make_video(tmp_path / "b.avi", n_frames=7, fps=30)) == (30.0, 7)
    # Matroska states no frame count, so the frames are counted by decoding.
    assert probe_video(make_video(tmp_path / "c.mkv", n_frames=9, fps=25)) == (25.0, 9)


def test_probe_video_unreadable_files_are_one_line_data_errors(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01not a video at all\n" * 50)
    for path in (corrupt, tmp_path / "missing.mp4"):
        with pytest.raises(DataError) as info:
            probe_video(path)
        message = str(info.value)
        assert message.startswith(f"{path}: cannot read video") and "\n" not in message


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, make_video: Callable[..., Path]) -> Path:
    """A tiny official layout with every kind of video the manifest distinguishes."""
    root = tmp_path_factory.mktemp("affwild2")
    layout = AffWild2Layout(root)
    videos = root / "videos"
    make_video(videos / "train1.mp4", n_frames=10, fps=25)
    make_video(videos / "val1.mp4", n_frames=12, fps=30)
    make_video(videos / "pair.mp4", n_frames=8)  # pair_left and pair_right
    make_video(videos / "test1.avi", n_frames=6)
    make_video(videos / "extra.mp4", n_frames=5)  # in no annotation or list
    (videos / "broken.mp4").write_bytes(b"garbage" * 100)
    (videos / "notes.txt").write_text("not a video")

    write_annotation(layout.annotation_path(Task.VA, "train", "train1"), Task.VA, VA_12)  # 12 lines, 10 frames
    write_annotation(layout.annotation_path(Task.EXPR, "train", "train1"), Task.EXPR, EXPR_10)
    write_annotation(layout.annotation_path(Task.CE, "train", "train1"), Task.CE, CE_10)
    write_annotation(layout.annotation_path(Task.VA, "train", "pair_left"), Task.VA, VA_12[:8])
    write_annotation(layout.annotation_path(Task.EXPR, "train", "pair_right"), Task.EXPR, EXPR_10[:8])
    write_annotation(layout.annotation_path(Task.AU, "train", "pair_right"), Task.AU, AU_8)
    write_annotation(layout.annotation_path(Task.AU, "val", "val1"), Task.AU, AU_8)  # 8 lines, 12 frames
    write_annotation(layout.annotation_path(Task.VA, "train", "broken"), Task.VA, VA_12[:3])
    write_annotation(layout.annotation_path(Task.EXPR, "val", "ghost"), Task.EXPR, EXPR_10[:4])
    write_test_list(layout.test_list_path("EXPR"), ["test1"])
    write_test_list(layout.test_list_path("MTL"), ["test1"])
    return root


EXPECTED = [
    VideoEntry("extra", "videos/extra.mp4", {}, None, 25.0, 5),
    VideoEntry("pair_left", "videos/pair.mp4", {"VA": "train"}, "left", 25.0, 8),
    VideoEntry("pair_right", "videos/pair.mp4", {"EXPR": "train", "AU": "train"}, "right", 25.0, 8),
    VideoEntry("test1", "videos/test1.avi", {"VA": "test", "EXPR": "test", "AU": "test"}, None, 25.0, 6),
    VideoEntry("train1", "videos/train1.mp4", {"VA": "train", "EXPR": "train", "CE": "train"}, None, 25.0, 10),
    VideoEntry("val1", "videos/val1.mp4", {"AU": "val"}, None, 30.0, 12),
]


def test_build_manifest(corpus: Path) -> None:
    entries, warnings, skipped = build_manifest(corpus)
    assert entries == EXPECTED
    assert skipped == ["broken", "ghost"]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    broken, ghost = warnings
    assert broken.startswith(f"{corpus / 'videos' / 'broken.mp4'}: cannot read video")
    assert broken.endswith("'broken' skipped")
    ghost_file = corpus / "annotations" / "EXPR_Recognition_Challenge" / "Validation_Set" / "ghost.txt"
    assert ghost.startswith(f"{ghost_file}: video referenced by {ghost_file} not found: no videos/ghost.mp4")


def test_manifest_csv_round_trip(corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "raw" / "manifest.csv"
    mixed = VideoEntry("mixed", "videos/mixed.mp4", {"AU": "val", "VA": "train", "CE": "test"}, None, 30.0, 4)
    write_manifest(path, [*EXPECTED, mixed])
    lines = path.read_text().splitlines()
    assert lines[0] == "name,video_path,splits,side,fps,n_frames"
    assert lines[1] == "extra,videos/extra.mp4,,,25.0,5"
    assert lines[3] == "pair_right,videos/pair.mp4,EXPR:train+AU:train,right,25.0,8"
    assert lines[-1] == "mixed,videos/mixed.mp4,VA:train+AU:val+CE:test,,30.0,4"  # tasks in VA, EXPR, AU, CE order
    assert read_manifest(path) == [*EXPECTED, mixed]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("v,videos/v.mp4,VA:dev,,25.0,10", "splits 'VA:dev' are not '+'-joined TASK:split pairs"),
        ("v,videos/v.mp4,AU:train+VA:train,,25.0,10", "splits 'AU:train+VA:train' are not"),
        ("v,videos/v.mp4,VA:train+VA:val,,25.0,10", "splits 'VA:train+VA:val' are not"),
        ("v,videos/v.mp4,VA,,25.0,10", "splits 'VA' are not"),
        ("v,videos/v.mp4,VA:train,up,25.0,10", "side must be left, right or empty"),
        ("v,../v.mp4,VA:train,,25.0,10", "must be relative to the dataset root"),
        ("v,videos/v.mp4,VA:train,,fast,10", "is not a number"),
        ("v,videos/v.mp4,VA:train,,0,10", "fps must be positive"),
        ("v,videos/v.mp4,VA:train,,25.0", "expected 6 columns, found 5"),
        ("../v,videos/v.mp4,VA:train,,25.0,10", "unsafe video name '../v'"),
    ],
)
def test_bad_manifest_rows_name_file_and_line(tmp_path: Path, row: str, fragment: str) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text(f"name,video_path,splits,side,fps,n_frames\nok,videos/ok.mp4,AU:val,,25.0,3\n{row}\n")
    with pytest.raises(DataError) as info:
        read_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ") and fragment in message and "\n" not in message


def test_manifest_with_wrong_header(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("video,split\n")
    with pytest.raises(DataError, match=r"m\.csv:1: wrong manifest header"):
        read_manifest(tmp_path / "m.csv")


def _entry(name: str) -> VideoEntry:
    return next(e for e in EXPECTED if e.name == name)


def test_load_labels_drops_extra_lines_with_a_warning(corpus: Path) -> None:
    labels, compound, warnings = load_labels(corpus, _entry("train1"))
    expected = empty_labels(10)
    expected[:, :2] = VA_12[:10]
    expected[:, 2] = EXPR_10
    assert labels.dtype == np.float32 and compound.dtype == np.int64
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(compound, CE_10)
    assert warnings == [
        "annotations/VA_Estimation_Challenge/Train_Set/train1.txt: 12 label lines for 10 decoded frames; "
        "aligned by frame index"
    ]


def test_load_labels_leaves_missing_tail_unannotated(corpus: Path) -> None:
    labels, compound, warnings = load_labels(corpus, _entry("val1"))
    expected = empty_labels(12)
    expected[:8, 3:] = AU_8
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(compound, empty_compound(12))
    assert warnings == [
        "annotations/AU_Detection_Challenge/Validation_Set/val1.txt: 8 label lines for 12 decoded frames; "
        "aligned by frame index"
    ]


def test_load_labels_of_a_pair_and_of_unlabelled_entries(corpus: Path) -> None:
    labels, _, warnings = load_labels(corpus, _entry("pair_right"))
    expected = empty_labels(8)
    expected[:, 2] = EXPR_10[:8]
    expected[:, 3:] = AU_8
    np.testing.assert_array_equal(labels, expected)
    assert warnings == []
    for name in ("test1", "extra"):
        labels, compound, warnings = load_labels(corpus, _entry(name))
        np.testing.assert_array_equal(labels, empty_labels(_entry(name).n_frames))
        np.testing.assert_array_equal(compound, empty_compound(_entry(name).n_frames))
        assert warnings == []


def test_load_labels_warns_when_a_task_file_vanished(corpus: Path) -> None:
    entry = VideoEntry("val1", "videos/val1.mp4", {"VA": "val", "AU": "val"}, None, 30.0, 12)
    _, _, warnings = load_labels(corpus, entry)
    assert warnings[0] == "annotations/VA_Estimation_Challenge/Validation_Set/val1.txt: missing; val1 has no VA labels"


def test_mtl_file_stands_in_for_absent_task_folders(tmp_path: Path, make_video: Callable[..., Path]) -> None:
    layout = AffWild2Layout(tmp_path)
    make_video(tmp_path / "videos" / "m1.mp4", n_frames=5)
    make_video(tmp_path / "videos" / "m2.mp4", n_frames=3)
    m1 = empty_labels(7)  # labelled up to frame 7 of a 5-frame video
    m1[:, :2] = 0.5
    m1[:, 3:] = 1
    m2 = empty_labels(2)
    m2[1, 3] = 0  # an AU only
    write_mtl(layout.mtl_path("train"), {"m1": m1, "m2": m2})
    write_annotation(layout.annotation_path(Task.EXPR, "train", "m1"), Task.EXPR, np.array([1, 2, 3, 4, 5]))

    entries, warnings, _ = build_manifest(tmp_path)
    assert [(e.name, e.splits) for e in entries] == [
        ("m1", {"VA": "train", "EXPR": "train", "AU": "train"}), ("m2", {"AU": "train"}),
    ]
    assert warnings == []
    labels, _, warnings = load_labels(tmp_path, entries[0])
    expected = m1[:5].copy()
    expected[:, 2] = [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(labels, expected)
    assert warnings == [
        "annotations/MTL/training_set_annotations.txt: m1 labelled up to frame 7 for 5 decoded frames; "
        "aligned by frame index"
    ]
    labels, _, warnings = load_labels(tmp_path, entries[1], mtl={"train": {"m2": m2}})  # pre-read MTL labels
    expected = empty_labels(3)
    expected[1, 3] = 0
    np.testing.assert_array_equal(labels, expected)
    assert warnings == []


def test_an_mtl_file_is_parsed_once_per_process_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    import pipeline_lib.data.manifest as manifest

    layout = AffWild2Layout(tmp_path)
    labels = {f"m{i}": empty_labels(4) for i in range(3)}
    for i, rows in enumerate(labels.values()):
        rows[:, 3:] = i % 2
    write_mtl(layout.mtl_path("train"), labels)
    entries = [VideoEntry(name, f"videos/{name}.mp4", {"AU": "train"}, None, 30.0, 4) for name in labels]
    parsed: list[Path] = []
    real = manifest.read_mtl
    monkeypatch.setattr(manifest, "read_mtl", lambda path: parsed.append(path) or real(path))
    manifest._parsed_mtl.cache_clear()
    first = [load_labels(tmp_path, entry)[0] for entry in entries]
    assert len(parsed) == 1 and [f[:, 3:].max() for f in first] == [0, 1, 0]
    with pytest.raises(ValueError, match="read-only"):
        manifest.mtl_labels(layout.mtl_path("train"))["m0"][0, 0] = 1.0
    first[0][0, 3] = 1.0  # what a caller gets is its own copy
    assert load_labels(tmp_path, entries[0])[0][0, 3] == 0 and len(parsed) == 1
    labels["m0"][:, 3:] = 1
    write_mtl(layout.mtl_path("train"), {**labels, "m3": empty_labels(9)})  # edited: another size
    assert load_labels(tmp_path, entries[0])[0][:, 3:].min() == 1 and len(parsed) == 2


def test_a_video_can_be_train_for_one_task_and_val_for_another(tmp_path: Path, make_video) -> None:
    """Aff-Wild2 has such videos (86 in one ABAW 2021 entry's list): each task keeps its own split."""
    layout = AffWild2Layout(tmp_path)
    make_video(tmp_path / "videos" / "x.mp4", n_frames=12)
    write_annotation(layout.annotation_path(Task.VA, "train", "x"), Task.VA, VA_12)
    write_annotation(layout.annotation_path(Task.EXPR, "val", "x"), Task.EXPR, np.arange(12) % 8)
    write_test_list(layout.test_list_path("AU"), ["x"])  # and in AU's test list
    entries, warnings, _ = build_manifest(tmp_path)
    assert warnings == [] and len(entries) == 1
    x = entries[0]
    assert x.splits == {"VA": "train", "EXPR": "val", "AU": "test"}
    assert x.split_of("va") == "train" and x.split_of("EXPR") == "val" and x.split_of("CE") is None
    assert x.tasks == ("VA", "EXPR") and x.tasks_in("val") == ("EXPR",) and not x.unlabeled
    labels, _, _ = load_labels(tmp_path, x)  # every task from its own split's folder
    np.testing.assert_array_equal(labels[:, :3], np.column_stack([VA_12, np.arange(12) % 8]))
    train, _, _ = load_labels(tmp_path, x, split="train")  # the training view: VA only
    np.testing.assert_array_equal(train[:, :2], VA_12)
    assert (train[:, 2:] == -1).all()
    val, _, _ = load_labels(tmp_path, x, split="val")  # the validation view: EXPR only
    assert (val[:, :2] == -5).all() and (val[:, 2] == np.arange(12) % 8).all() and (val[:, 3:] == -1).all()
    with pytest.raises(ValueError, match="split must be one of"):
        load_labels(tmp_path, x, split="test")


def test_one_task_in_two_splits_is_an_error_naming_both_files(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    train = layout.annotation_path(Task.VA, "train", "x")
    val = layout.annotation_path(Task.VA, "val", "x")
    write_annotation(train, Task.VA, VA_12)
    write_annotation(val, Task.VA, VA_12)
    with pytest.raises(LayoutError) as info:
        build_manifest(tmp_path)
    message = str(info.value)
    assert message == f"{val}: video 'x' is VA val here but VA train in {train}"


def test_mtl_file_and_task_folders_disagree_the_folder_wins(tmp_path: Path, make_video) -> None:
    """The MTL training file lists a video whose EXPR labels the task's folder puts in Validation_Set:
    EXPR stays val (read from the folder, never from the MTL rows) and the MTL file still gives its VA split."""
    layout = AffWild2Layout(tmp_path)
    make_video(tmp_path / "videos" / "y.mp4", n_frames=4)
    rows = empty_labels(4)
    rows[:, :2] = 0.5
    rows[:, 2] = 3  # EXPR in the MTL training file
    write_mtl(layout.mtl_path("train"), {"y": rows})
    folder = layout.annotation_path(Task.EXPR, "val", "y")
    write_annotation(folder, Task.EXPR, np.array([1, 1, 2, 2]))
    entries, warnings, _ = build_manifest(tmp_path)
    assert entries[0].splits == {"VA": "train", "EXPR": "val"}
    assert warnings == [f"{layout.mtl_path('train')}: video 'y' is EXPR train here but EXPR val in {folder}; "
                        "the per-task folder wins"]
    labels, _, _ = load_labels(tmp_path, entries[0])
    np.testing.assert_array_equal(labels[:, 2], [1, 1, 2, 2])  # the folder's EXPR, not the MTL's 3s
    np.testing.assert_array_equal(labels[:, :2], np.full((4, 2), 0.5))
    train, _, _ = load_labels(tmp_path, entries[0], split="train")
    assert (train[:, 2] == -1).all() and (train[:, :2] == 0.5).all()


def test_a_task_in_both_mtl_files_is_an_error(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    rows = empty_labels(2)
    rows[:, 3] = 1
    write_mtl(layout.mtl_path("train"), {"z": rows})
    write_mtl(layout.mtl_path("val"), {"z": rows})
    with pytest.raises(LayoutError, match=r"validation_set_annotations\.txt: video 'z' is AU val here but AU train"):
        build_manifest(tmp_path)


def test_annotated_video_in_the_same_tasks_test_list_is_an_error(tmp_path: Path) -> None:
    layout = AffWild2Layout(tmp_path)
    write_annotation(layout.annotation_path(Task.AU, "val", "x"), Task.AU, AU_8)
    write_test_list(layout.test_list_path("AU"), ["x"])
    with pytest.raises(LayoutError, match=r"AU_test_set_release\.txt: video 'x' is in this test list but annotated "
                                          r"for AU val"):
        build_manifest(tmp_path)
    write_test_list(layout.test_list_path("AU"), [])
    write_test_list(layout.test_list_path("MTL"), ["x"])  # the MTL list stands for VA, EXPR and AU
    with pytest.raises(LayoutError, match=r"MTL_test_set_release\.txt: video 'x' is in this test list"):
        build_manifest(tmp_path)


def test_a_test_list_wins_over_the_mtl_files_split_with_a_warning(tmp_path: Path, make_video) -> None:
    """The MTL files are the MTL challenge's own subset and splits: a task's test list overrides them."""
    layout = AffWild2Layout(tmp_path)
    make_video(tmp_path / "videos" / "m.mp4", n_frames=3)
    rows = empty_labels(3)
    rows[:, 2] = 4
    rows[:, :2] = 0.1
    write_mtl(layout.mtl_path("train"), {"m": rows})
    write_test_list(layout.test_list_path("EXPR"), ["m"])
    entries, warnings, _ = build_manifest(tmp_path)
    assert entries[0].splits == {"VA": "train", "EXPR": "test"}
    assert warnings == [f"{layout.test_list_path('EXPR')}: video 'm' is in this test list but annotated for EXPR "
                        f"train in {layout.mtl_path('train')}; the test list wins"]
    labels, _, _ = load_labels(tmp_path, entries[0])
    assert (labels[:, 2] == -1).all() and (labels[:, :2] == np.float32(0.1)).all()


def test_unsafe_name_in_a_test_list_stops_the_scan(tmp_path: Path) -> None:
    path = AffWild2Layout(tmp_path).test_list_path("VA")
    path.parent.mkdir(parents=True)
    path.write_text("ok\n../../etc/passwd\n")
    with pytest.raises(LayoutError, match=r"VA_test_set_release\.txt:2: unsafe video name"):
        build_manifest(tmp_path)


def test_empty_root_gives_an_empty_manifest(tmp_path: Path) -> None:
    assert build_manifest(tmp_path) == ([], [], [])


def test_video_entry_rejects_unknown_tasks_and_splits() -> None:
    with pytest.raises(ValueError, match="unknown task or split"):
        VideoEntry("v", "videos/v.mp4", {"VA": "unlabeled"}, None, 25.0, 1)
    with pytest.raises(ValueError, match="unknown task or split"):
        VideoEntry("v", "videos/v.mp4", {"MTL": "train"}, None, 25.0, 1)
