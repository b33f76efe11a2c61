"""The tiny demo corpus: official layout, ingest read-back, manifest, card = summary = files, truth shapes."""

from __future__ import annotations

import re

import av
import numpy as np

from pipeline_lib.data.annotations import read_annotation
from pipeline_lib.data.demo.generate import CARD_FILE, TRUTH_DIR
from pipeline_lib.data.demo.plan import MAIN_TASKS, plan_corpus
from pipeline_lib.data.demo.summary import LabelTally
from pipeline_lib.data.labels import (
    AU_NAMES,
    CE_NAMES,
    CLASS_INVALID,
    COL_AU,
    COL_EXPR,
    EXPR_NAMES,
    LABEL_COLUMNS,
    VA_INVALID,
)
from pipeline_lib.data.layout import TEST_LIST_TASKS, AffWild2Layout, read_test_list
from pipeline_lib.data.manifest import BASIC_TASKS, build_manifest, load_labels
from pipeline_lib.data.mtl import read_mtl

from .conftest import SEED, TINY


def _annotation_files(root):
    """(task, split, video, path) of every per-video annotation file."""
    layout = AffWild2Layout(root)
    for task in ("VA", "EXPR", "AU", "CE"):
        for split in ("train", "val"):
            folder = layout.annotation_dir(task, split)
            for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
                yield task, split, path.stem, path


def _decoded_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_official_layout_exists(tiny_corpus):
    root, s = tiny_corpus.root, tiny_corpus.summary
    layout = AffWild2Layout(root)
    videos = sorted(layout.videos_dir().glob("*.mp4"))
    expected = (TINY.train_videos + TINY.val_videos + TINY.test_videos + TINY.unlabeled_videos
                + TINY.two_subject_videos + TINY.ce_train_videos + TINY.ce_val_videos)
    assert len(videos) == expected == s.total_videos
    for split in ("train", "val"):
        assert layout.mtl_path(split).is_file()
        for task in ("VA", "EXPR", "AU", "CE"):
            assert any(layout.annotation_dir(task, split).glob("*.txt")), (task, split)
    tests = {name: read_test_list(layout.test_list_path(name)) for name in TEST_LIST_TASKS}
    assert all(len(names) == TINY.test_videos for names in tests.values())
    annotated = {video for _, _, video, _ in _annotation_files(root)}
    assert not annotated & set(tests["VA"]), "test videos must have no labels on disk"
    assert any(v.endswith("_left") for v in annotated) and any(v.endswith("_right") for v in annotated)
    assert (root / CARD_FILE).is_file()


def test_every_annotation_reads_back_and_matches_truth(tiny_corpus):
    root = tiny_corpus.root
    n_files = 0
    for task, _split, video, path in _annotation_files(root):
        values = read_annotation(path, task)  # raises on any format error
        truth = np.load(root / TRUTH_DIR / f"{video}.npz")
        n = min(len(values), len(truth["face_present"]))
        if task == "VA":
            expected = truth["labels"][:n, :2]
        elif task == "EXPR":
            expected = truth["labels"][:n, COL_EXPR]
        elif task == "AU":
            expected = truth["labels"][:n, COL_AU]
        else:
            expected = truth["ce"][:n]
        np.testing.assert_array_equal(values[:n], expected.astype(values.dtype))
        absent = ~truth["face_present"][:n]
        invalid = VA_INVALID if task == "VA" else CLASS_INVALID
        assert np.all(values[:n][absent] == invalid), f"{path}: face-less frames must be invalid"
        n_files += 1
    assert n_files == sum(tiny_corpus.summary.annotation_files.values())


def test_manifest_splits_tasks_and_sides(tiny_corpus):
    root = tiny_corpus.root
    entries, warnings, skipped = build_manifest(root)
    assert warnings == [] and skipped == []
    labelled = TINY.train_videos + TINY.val_videos + 2 * TINY.two_subject_videos
    assert sum(any(t in BASIC_TASKS for t in e.tasks) for e in entries) == labelled
    assert sum(e.tasks == ("CE",) for e in entries) == TINY.ce_train_videos + TINY.ce_val_videos
    tests = [e for e in entries if e.tasks_in("test")]
    assert len(tests) == TINY.test_videos
    assert tests[0].splits == {"VA": "test", "EXPR": "test", "AU": "test", "CE": "test"}
    assert sum(e.unlabeled for e in entries) == TINY.unlabeled_videos
    sides = sorted(e.side for e in entries if e.side)
    assert sides == ["left", "right"]
    # cross-task videos: the planned task sits in the other split, every other task in the video's own
    moved = {p.name: p for p in plan_corpus(TINY, SEED) if p.moved_task}
    assert [p.split for p in moved.values()] == ["train", "val"]
    by_name = {e.name: e for e in entries}
    for name, plan in moved.items():
        assert by_name[name].splits == {t: plan.split_of(t) for t in MAIN_TASKS}
        assert by_name[name].split_of(plan.moved_task) != plan.split
    assert sum(bool(e.tasks_in("train") and e.tasks_in("val")) for e in entries) == TINY.cross_task_videos
    mismatched = {row[0] for row in tiny_corpus.summary.mismatched_files}
    assert mismatched, "some annotation files must be 1-3 lines off"
    reported = []
    for entry in entries:
        labels, compound, entry_warnings = load_labels(root, entry)
        assert labels.shape == (entry.n_frames, 15) and compound.shape == (entry.n_frames,)
        reported += entry_warnings
    assert len(reported) == len(mismatched)
    assert all(any(path in w for path in mismatched) for w in reported)


def test_mtl_files_hold_the_per_task_labels(tiny_corpus):
    """Each split's MTL file holds the labels of the tasks each video has in that split (a cross-task video
    has rows in both files), equal to the truth as annotated."""
    root = tiny_corpus.root
    plans = {s: p for p in plan_corpus(TINY, SEED) for s in p.subjects}
    checked = 0
    for split in ("train", "val"):
        for video, labels in read_mtl(AffWild2Layout(root).mtl_path(split)).items():
            truth = np.load(root / TRUTH_DIR / f"{video}.npz")["labels"][: len(labels)]
            for task, columns in LABEL_COLUMNS.items():
                invalid = VA_INVALID if task == "VA" else CLASS_INVALID
                expected = truth[:, columns] if plans[video].split_of(task) == split else invalid
                np.testing.assert_array_equal(labels[:, columns], np.broadcast_to(expected, labels[:, columns].shape))
            checked += 1
    assert checked == TINY.train_videos + TINY.val_videos + 2 * TINY.two_subject_videos + TINY.cross_task_videos


def _card_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables of the card by section title: rows of cells (header and rule lines dropped)."""
    tables: dict[str, list[list[str]]] = {}
    title = ""
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        elif line.startswith("|") and not re.fullmatch(r"\|(---\|)+", line):
            tables.setdefault(title, []).append([c.strip() for c in line.strip("|").split("|")])
    return {k: v[1:] for k, v in tables.items()}  # drop each header row


def test_card_equals_summary_equals_files(tiny_corpus):
    root, s = tiny_corpus.root, tiny_corpus.summary
    tables = _card_tables((root / CARD_FILE).read_text(encoding="utf-8"))
    videos = {row[0]: (int(row[1]), int(row[2])) for row in tables["Videos and frames"]}
    assert videos.pop("total") == (s.total_videos, s.total_frames)
    assert videos == {g: (s.video_files[g], s.frames[g]) for g in s.video_files}
    annotations = {row[0]: tuple(map(int, row[1:])) for row in tables["Annotation files"]}
    assert annotations == {k: (s.annotation_files[k], s.annotation_lines[k], s.valid_lines[k])
                           for k in s.annotation_files}
    expr = {row[0]: tuple(map(int, row[1:])) for row in tables["EXPR frames per class (valid lines)"]}
    ce = {row[0]: tuple(map(int, row[1:])) for row in tables["CE frames per class (valid lines)"]}
    au = {row[0]: tuple(map(int, row[1:])) for row in tables["AU positives (valid lines)"]}
    assert expr == dict(s.expr_frames) and ce == dict(s.ce_frames) and au == dict(s.au_positives)
    assert all(len(v) == len(EXPR_NAMES) for v in expr.values()) and all(len(v) == len(AU_NAMES) for v in au.values())
    assert all(len(v) == len(CE_NAMES) for v in ce.values())
    quirks = {row[0]: int(row[1]) for row in tables["Quirks"]}
    assert quirks == dict(s.quirks)
    assert all(quirks[k] > 0 for k in ("two_subject_videos", "face_less_frames", "occluded_frames",
                                       "invalid_span_files", "mismatched_annotation_files"))

    # What the ingest readers read back tallies to the same numbers.
    tally = LabelTally()
    for task, split, _video, path in _annotation_files(root):
        tally.add(task, split, read_annotation(path, task))
    assert tally.files == dict(s.annotation_files) and tally.lines == dict(s.annotation_lines)
    assert tally.valid == dict(s.valid_lines)
    assert {k: tuple(v) for k, v in tally.expr.items()} == dict(s.expr_frames)
    assert {k: tuple(v) for k, v in tally.ce.items()} == dict(s.ce_frames)
    assert {k: tuple(v) for k, v in tally.au.items()} == dict(s.au_positives)
    identities = {row[0]: set(row[2].split(", ")) for row in tables["Identities"]}
    assert not identities["train"] & identities["val"], "train and val identities must be disjoint"


def test_truth_shapes_match_decoded_frames(tiny_corpus):
    root = tiny_corpus.root
    layout = AffWild2Layout(root)
    truths = sorted((root / TRUTH_DIR).glob("*.npz"))
    assert {layout.base_video(p.stem) for p in truths} == {p.stem for p in layout.videos_dir().glob("*.mp4")}
    for path in truths:
        truth = np.load(path)
        n = _decoded_frames(layout.find_video_file(path.stem))
        present = truth["face_present"]
        assert present.shape == (n,) and present.dtype == bool
        assert truth["landmarks"].shape == (n, 5, 2) and truth["box"].shape == (n, 4)
        assert truth["labels"].shape == (n, 15) and truth["ce"].shape == (n,)
        assert np.isnan(truth["landmarks"][~present]).all() and np.isfinite(truth["landmarks"][present]).all()
        boxes = truth["box"][present]
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
