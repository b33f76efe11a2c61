"""data/raw from a real Aff-Wild2-layout copy: annotations copied, videos read in place."""

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.config import DataSettings
from pipeline_lib.data.annotations import write_annotation
from pipeline_lib.data.errors import LayoutError
from pipeline_lib.data.labels import Task, empty_labels
from pipeline_lib.data.layout import AffWild2Layout, write_test_list
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.mtl import write_mtl
from pipeline_lib.data.plan import FACE_BYTES_PER_FRAME, FEATURE_BYTES_PER_VALUE, FEATURE_BYTES_PER_VIDEO, feature_bytes
from pipeline_lib.data.prepare import import_affwild2, prepare_raw
from pipeline_lib.data.raw import MANIFEST_FILE, load_raw


@pytest.fixture
def affwild2_copy(tmp_path: Path, make_video) -> Path:
    root = tmp_path / "Aff-Wild2"
    layout = AffWild2Layout(root)
    make_video(root / "videos" / "10-60-1280x720.mp4", n_frames=12)
    make_video(root / "videos" / "video2.avi", n_frames=8)
    make_video(root / "videos" / "spare.mp4", n_frames=5)
    make_video(root / "videos" / "held_out.mp4", n_frames=6)
    va = np.tile(np.array([[0.25, -0.5]], dtype=np.float32), (14, 1))  # 2 lines too many
    write_annotation(layout.annotation_path(Task.VA, "train", "10-60-1280x720"), Task.VA, va)
    write_annotation(layout.annotation_path(Task.EXPR, "train", "10-60-1280x720"), Task.EXPR, np.full(12, 4))
    write_annotation(layout.annotation_path(Task.EXPR, "val", "video2_left"), Task.EXPR, np.full(8, 1))
    write_annotation(layout.annotation_path(Task.EXPR, "val", "video2_right"), Task.EXPR, np.full(8, 2))
    write_annotation(layout.annotation_path(Task.EXPR, "val", "gone"), Task.EXPR, np.full(3, 0))
    write_test_list(layout.test_list_path("EXPR"), ["held_out"])
    return root


def test_import_copies_labels_and_reads_videos_in_place(tmp_path: Path, affwild2_copy: Path):
    out = tmp_path / "data" / "raw"
    result = import_affwild2(out, affwild2_copy)
    raw = load_raw(out)
    assert raw.kind == "affwild2" and raw.video_root == affwild2_copy.resolve()
    assert not (out / "videos").exists()  # never copied
    assert (out / "annotations" / "EXPR_Recognition_Challenge" / "Validation_Set" / "video2_left.txt").is_file()
    assert (out / MANIFEST_FILE).is_file()
    by_name = {e.name: e for e in raw.entries}
    assert set(by_name) == {"10-60-1280x720", "video2_left", "video2_right", "spare", "held_out"}
    assert by_name["10-60-1280x720"].splits == {"VA": "train", "EXPR": "train"}
    assert by_name["video2_right"].side == "right" and by_name["video2_right"].splits == {"EXPR": "val"}
    assert by_name["spare"].unlabeled and by_name["held_out"].splits == {"EXPR": "test"}
    assert all(raw.video_file(e).is_file() for e in raw.entries)
    # the annotated-but-missing video is a warning, not a crash
    assert any("gone" in w for w in result.warnings) and result.skipped == ("gone",)
    metrics = result.metrics()
    assert metrics["videos"] == 5 and metrics["frames"] == 12 + 8 + 8 + 5 + 6 and metrics["skipped_videos"] == ["gone"]
    assert metrics["tasks"] == {
        "VA": {"train": {"videos": 1, "frames": 12, "labelled_frames": 12}},
        "EXPR": {"train": {"videos": 1, "frames": 12, "labelled_frames": 12},
                 "val": {"videos": 2, "frames": 16, "labelled_frames": 16},
                 "test": {"videos": 1, "frames": 6}},
    }
    assert metrics["unlabeled"] == {"videos": 1, "frames": 5}
    assert metrics["cross_task"] == {"videos": 0, "pairs": {}, "names": []}

    labels, ce, warnings = load_labels(out, by_name["10-60-1280x720"])
    assert labels.shape == (12, 15) and ce.shape == (12,)
    np.testing.assert_allclose(labels[:, :2], np.tile([[0.25, -0.5]], (12, 1)))
    assert (labels[:, 2] == 4).all() and (labels[:, 3:] == -1).all()
    assert len(warnings) == 1 and "14" in warnings[0] and "12" in warnings[0]


def test_prepare_raw_dispatches_on_source(tmp_path: Path, affwild2_copy: Path):
    result = prepare_raw(tmp_path / "raw", DataSettings(source=str(affwild2_copy)), seed=0)
    assert result.kind == "affwild2"


def test_import_rejects_a_folder_that_is_not_a_layout(tmp_path: Path):
    with pytest.raises(LayoutError, match="missing videos/, annotations/"):
        import_affwild2(tmp_path / "raw", tmp_path)
    with pytest.raises(LayoutError, match="neither 'demo' nor an existing folder"):
        import_affwild2(tmp_path / "raw", tmp_path / "nope")


def test_load_raw_before_corpus_names_the_fix(tmp_path: Path):
    with pytest.raises(LayoutError, match="run `abaw corpus`"):
        load_raw(tmp_path)


def test_corpus_plan_counts_cross_task_videos_and_prices_the_stores(tmp_path: Path, make_video):
    """A video in VA's training split and EXPR's validation split (with an invalid span), another video whose
    AU comes from the MTL file: counts per task and split, the cross-task pair, disk from frames."""
    root = tmp_path / "Aff-Wild2"
    layout = AffWild2Layout(root)
    make_video(root / "videos" / "x.mp4", n_frames=10)
    make_video(root / "videos" / "y.mp4", n_frames=4)
    write_annotation(layout.annotation_path(Task.VA, "train", "x"), Task.VA, np.full((10, 2), 0.1, np.float32))
    expr = np.full(10, 3)
    expr[:4] = -1  # 6 labelled frames
    write_annotation(layout.annotation_path(Task.EXPR, "val", "x"), Task.EXPR, expr)
    rows = empty_labels(3)  # labelled up to frame 3 of 4
    rows[:, 3:] = 0
    write_mtl(layout.mtl_path("train"), {"y": rows})
    result = import_affwild2(tmp_path / "raw", root)
    plan = result.plan
    assert plan.tasks == {"VA": {"train": {"videos": 1, "frames": 10, "labelled_frames": 10}},
                          "EXPR": {"val": {"videos": 1, "frames": 10, "labelled_frames": 6}},
                          "AU": {"train": {"videos": 1, "frames": 4, "labelled_frames": 3}}}
    assert plan.cross_task == {"videos": 1, "pairs": {"VA train/EXPR val": 1}, "names": ["x"]}
    assert plan.disk["frames"] == 14
    assert plan.disk["face_store_gb"] == round(14 * FACE_BYTES_PER_FRAME / 1e9, 3)
    features = 14 * 768 * FEATURE_BYTES_PER_VALUE + 2 * FEATURE_BYTES_PER_VIDEO  # 14 frames in 2 videos
    assert feature_bytes(14, 2, 768) == features
    assert plan.disk["feature_store_gb_per_array"]["768"] == round(features / 1e9, 3)
    videos = sum(p.stat().st_size for p in (root / "videos").iterdir())
    assert plan.disk["video_bytes"] == videos and plan.disk["videos_gb"] == round(videos / 1e9, 3)
    lines = plan.lines({768: 2})
    assert lines[0].split()[0] == "task" and lines[1].split()[0] == "VA"
    assert "1 video(s) (VA train/EXPR val 1)" in lines[-2]
    assert lines[-1] == (f"disk: videos {videos / 1e6:.1f} MB, face store ~{14 * FACE_BYTES_PER_FRAME / 1e6:.1f} MB, "
                         f"feature store ~{2 * features / 1e6:.1f} MB for the configured extractors")
    assert result.summary_line() == ("corpus (affwild2): 2 videos/subjects, 14 frames, 1 in one task's training "
                                     "and another's validation split; 0 skipped, 0 warning(s)")


def test_a_validation_video_whose_every_label_file_is_broken_is_skipped_not_unlabelled(tmp_path: Path,
                                                                                        affwild2_copy: Path):
    """Left as an 'unlabelled' video it would join the pseudo-label pool, though it sits in a validation split."""
    broken = affwild2_copy / "annotations" / "EXPR_Recognition_Challenge" / "Validation_Set" / "video2_left.txt"
    broken.write_text("not,a,header\n1\n")
    result = import_affwild2(tmp_path / "raw", affwild2_copy)
    assert "video2_left" not in {e.name for e in result.entries} and "video2_left" in result.skipped
    assert ("video2_left: no readable label file left and a validation split among them; video skipped"
            in result.warnings)
