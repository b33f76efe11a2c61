"""Broken annotation files, missing folders, unsafe names and unreadable videos in an Aff-Wild2 copy, as
`abaw corpus` imports it (data.source = its root): each broken file costs only its own task for its own video
and is reported in one line naming file and line; names that would escape the data root stop the import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline_lib.data.labels import AU_NAMES, EXPR_NAMES
from pipeline_lib.data.raw import load_raw
from tests.data.conftest import write_tiny_video
from tests.faults.conftest import Project, clone, error_line, warnings_of

FRAMES = 10
EXPR_HEADER = ",".join(EXPR_NAMES)
VA_FILE = "annotations/VA_Estimation_Challenge/Train_Set/a.txt"
EXPR_FILE = "annotations/EXPR_Recognition_Challenge/Train_Set/a.txt"
AU_FILE = "annotations/AU_Detection_Challenge/Train_Set/a.txt"


def _write(root: Path, relative: str, lines: list[str]) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _va(n: int = FRAMES) -> list[str]:
    return ["valence,arousal", *(f"{0.1 * (k % 5):.1f},-0.2" for k in range(n))]


def _expr(n: int = FRAMES) -> list[str]:
    return [EXPR_HEADER, *(str(k % 8) for k in range(n))]


def _au(n: int = FRAMES) -> list[str]:
    return [",".join(AU_NAMES), *(",".join(["0", "1"] * 6) for _ in range(n))]


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Aff-Wild2-layout root: train videos a, b (VA, EXPR, AU), val video c (EXPR), test video t."""
    root = tmp_path_factory.mktemp("affwild2") / "affwild2"
    for name in ("a", "b", "c", "t"):
        write_tiny_video(root / "videos" / f"{name}.mp4", n_frames=FRAMES)
    for name in ("a", "b"):
        _write(root, f"annotations/VA_Estimation_Challenge/Train_Set/{name}.txt", _va())
        _write(root, f"annotations/EXPR_Recognition_Challenge/Train_Set/{name}.txt", _expr())
        _write(root, f"annotations/AU_Detection_Challenge/Train_Set/{name}.txt", _au())
    _write(root, "annotations/EXPR_Recognition_Challenge/Validation_Set/c.txt", _expr())
    _write(root, "test_set/EXPR_test_set_release.txt", ["t"])
    return root


@pytest.fixture
def copy(clean_copy: Path, tmp_path: Path) -> Path:
    """A private copy of the clean root, for one test to break."""
    root = tmp_path / "affwild2"
    shutil.copytree(clean_copy, root)
    return root


def _import(tmp_path: Path, source: Path):
    """`abaw corpus` with data.source = `source`; (project, result)."""
    project = Project.create(tmp_path / "project")
    params = project.read_params()
    params["data"]["source"] = str(source)
    project.write_params(params)
    return project, project.invoke("corpus")


def _tasks(project: Project) -> dict[str, tuple[str, ...]]:
    return {e.name: e.tasks for e in load_raw(project.raw).entries}


def test_the_clean_copy_imports_without_a_warning(tmp_path: Path, copy: Path):
    project, result = _import(tmp_path, copy)
    assert result.exit_code == 0 and warnings_of(result.output) == [], result.output
    assert _tasks(project) == {"a": ("VA", "EXPR", "AU"), "b": ("VA", "EXPR", "AU"), "c": ("EXPR",), "t": ()}
    assert {e.name: e.splits for e in load_raw(project.raw).entries}["t"] == {"EXPR": "test"}


BROKEN = {
    "wrong header": (EXPR_FILE, lambda: ["neutral,anger", *_expr()[1:]],
                     f"{EXPR_FILE}:1: wrong EXPR header: expected '{EXPR_HEADER}', found 'neutral,anger'", "EXPR"),
    "wrong column count": (VA_FILE, lambda: [*_va()[:3], "0.1,0.2,0.3", *_va()[4:]],
                           f"{VA_FILE}:4: expected 2 comma-separated values, found 3", "VA"),
    "AU out of range": (AU_FILE, lambda: [*_au()[:5], ",".join(["0", "2"] * 6), *_au()[6:]],
                        f"{AU_FILE}:6: AU2: 2 out of range (expected 0..1, or -1 if not annotated)", "AU"),
    "VA out of range": (VA_FILE, lambda: [*_va()[:2], "1.5,0.0", *_va()[3:]],
                        f"{VA_FILE}:3: valence: '1.5' out of range (expected -1..1, or -5 if not annotated)", "VA"),
    "VA NaN": (VA_FILE, lambda: [*_va()[:7], "0.2,nan", *_va()[8:]],
               f"{VA_FILE}:8: arousal: 'nan' out of range (expected -1..1, or -5 if not annotated)", "VA"),
    "EXPR NaN": (EXPR_FILE, lambda: [*_expr()[:2], "nan", *_expr()[3:]],
                 f"{EXPR_FILE}:3: EXPR: not an integer: 'nan'", "EXPR"),
    "EXPR out of range": (EXPR_FILE, lambda: [*_expr()[:10], "8"],
                          f"{EXPR_FILE}:11: EXPR: 8 out of range (expected 0..7, or -1 if not annotated)", "EXPR"),
    "empty file": (EXPR_FILE, lambda: [],
                   f"{EXPR_FILE}: empty file (expected the EXPR header '{EXPR_HEADER}')", "EXPR"),
    "blank line inside": (AU_FILE, lambda: [*_au()[:3], "", *_au()[3:]],
                          f"{AU_FILE}:4: blank line inside the data (would shift later frames)", "AU"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_annotation_file_costs_only_its_task_of_its_video(tmp_path: Path, copy: Path, case: str):
    relative, lines, message, task = BROKEN[case]
    _write(copy, relative, lines())
    project, result = _import(tmp_path, copy)
    assert result.exit_code == 0, result.output
    expected = f"{copy / message}; {task} labels of 'a' skipped"
    assert warnings_of(result.output) == [f"warning: {expected}"]
    assert json.loads((project.metrics / "corpus.json").read_text())["warning_lines"] == [expected]
    tasks = _tasks(project)
    assert tasks["a"] == tuple(t for t in ("VA", "EXPR", "AU") if t != task)
    assert tasks["b"] == ("VA", "EXPR", "AU")  # nothing else is lost


def test_an_annotation_file_that_is_not_utf8(tmp_path: Path, copy: Path):
    (copy / EXPR_FILE).write_bytes(f"{EXPR_HEADER}\n0\n".encode() + b"\xff\xfe\n")
    project, result = _import(tmp_path, copy)
    assert warnings_of(result.output) == [f"warning: {copy / EXPR_FILE}: not UTF-8 text (byte {len(EXPR_HEADER) + 3}); "
                                          "EXPR labels of 'a' skipped"]


def test_frame_count_mismatch_is_reported_once_and_the_labels_kept(tmp_path: Path, copy: Path):
    _write(copy, VA_FILE, _va(FRAMES + 2))
    _write(copy, EXPR_FILE, _expr(FRAMES - 3))
    project, result = _import(tmp_path, copy)
    assert result.exit_code == 0, result.output
    assert warnings_of(result.output) == [
        f"warning: {copy / VA_FILE}: {FRAMES + 2} label lines for {FRAMES} decoded frames; aligned by frame index",
        f"warning: {copy / EXPR_FILE}: {FRAMES - 3} label lines for {FRAMES} decoded frames; aligned by frame index"]
    assert _tasks(project)["a"] == ("VA", "EXPR", "AU")


def test_the_demo_corpus_mismatches_are_reported_and_training_aligns_them(reference: Project):
    """The demo plants annotation files 1-3 lines off; corpus names each, temporal trains on them anyway."""
    report = json.loads((reference.metrics / "corpus.json").read_text())
    assert report["warning_lines"] and all(
        line.startswith(str(reference.raw / "annotations")) and "decoded frames; aligned by frame index" in line
        for line in report["warning_lines"])
    assert json.loads((reference.metrics / "temporal" / "expr.json").read_text())["train_videos"] == 2


def test_a_missing_annotations_folder_is_not_a_layout(tmp_path: Path, copy: Path):
    shutil.rmtree(copy / "annotations")
    project, result = _import(tmp_path, copy)
    assert error_line(result) == (f"error: {copy}: not an Aff-Wild2 layout root: missing annotations/ "
                                  "(see README, 'Running on a real Aff-Wild2 copy')")
    assert not project.raw.exists()


def test_a_missing_task_folder_only_removes_that_task(tmp_path: Path, copy: Path):
    shutil.rmtree(copy / "annotations" / "VA_Estimation_Challenge")
    project, result = _import(tmp_path, copy)
    assert result.exit_code == 0 and warnings_of(result.output) == [], result.output
    assert _tasks(project)["a"] == ("EXPR", "AU")
    assert "VA" not in json.loads((project.metrics / "corpus.json").read_text())["tasks"]


def test_a_task_folder_removed_after_the_corpus_fails_that_task_in_one_line(reference: Project, tmp_path: Path):
    """The demo also ships MTL files, which stand in for a missing per-task folder: both are removed."""
    project = clone(reference, tmp_path / "project", "data/raw", "data/features.zarr")
    folder = project.raw / "annotations" / "AU_Detection_Challenge" / "Train_Set"
    shutil.rmtree(folder.parent)
    shutil.rmtree(project.raw / "annotations" / "MTL")
    assert error_line(project.invoke("temporal", task="au")) == (
        f"error: {folder}: task au: no labelled training frame with a face (2 AU training video(s)); "
        "nothing to train on")
    assert not (project.temporal / "au").exists()


def test_a_video_named_by_annotations_but_missing_is_skipped(tmp_path: Path, copy: Path):
    (copy / "videos" / "b.mp4").unlink()
    project, result = _import(tmp_path, copy)
    first = copy / "annotations/VA_Estimation_Challenge/Train_Set/b.txt"  # the first file naming it
    assert warnings_of(result.output) == [
        f"warning: {first}: video referenced by {first} not found: no videos/b.mp4, videos/b.avi under {copy}; "
        "'b' skipped"]
    assert "b" not in _tasks(project)


@pytest.mark.parametrize(("content", "reason"), [(b"", "zero bytes"), (b"\x00garbage" * 100, "garbage")])
def test_an_unreadable_video_is_skipped_at_import(tmp_path: Path, copy: Path, content: bytes, reason: str):
    (copy / "videos" / "c.mp4").write_bytes(content)
    project, result = _import(tmp_path, copy)
    (line,) = warnings_of(result.output)
    assert line.startswith(f"warning: {copy / 'videos' / 'c.mp4'}: cannot read video: ") and \
        line.endswith("; 'c' skipped"), line
    assert "c" not in _tasks(project)


@pytest.mark.parametrize(("name", "reason"), [
    ("../../etc/passwd", "contains a path separator"),
    ("/etc/passwd", "contains a path separator"),
    ("..", "starts with a dot"),
    ("C:evil", "contains ':' (a drive or stream name)"),
])
def test_an_unsafe_name_in_a_test_list_stops_the_import(tmp_path: Path, copy: Path, name: str, reason: str):
    _write(copy, "test_set/EXPR_test_set_release.txt", ["t", name])
    project, result = _import(tmp_path, copy)
    assert error_line(result) == \
        f"error: {copy / 'test_set/EXPR_test_set_release.txt'}:2: unsafe video name {name!r}: {reason}"
    assert not project.raw.exists()  # what was half built stays in data/raw.partial


def test_an_unsafe_name_in_an_mtl_file_stops_the_import(tmp_path: Path, copy: Path):
    shutil.rmtree(copy / "annotations")
    mtl = copy / "annotations" / "MTL" / "training_set_annotations.txt"
    row = ",".join(["0.1", "0.2", "3", *["0"] * 12])
    _write(copy, "annotations/MTL/training_set_annotations.txt",
           ["image,valence,arousal,expression,aus", f"a/00001.jpg,{row}", f"../evil/00001.jpg,{row}"])
    project, result = _import(tmp_path, copy)
    assert error_line(result) == f"error: {mtl}:3: unsafe video name '../evil': contains a path separator"


def test_a_hidden_annotation_file_name_is_skipped(tmp_path: Path, copy: Path):
    hidden = copy / "annotations/EXPR_Recognition_Challenge/Train_Set/..txt"
    _write(copy, "annotations/EXPR_Recognition_Challenge/Train_Set/..txt", _expr())
    project, result = _import(tmp_path, copy)
    assert warnings_of(result.output) == [f"warning: {hidden}: unsafe video name '.': starts with a dot; skipped"]


def test_a_video_linked_outside_the_root_is_skipped(tmp_path: Path, copy: Path):
    outside = write_tiny_video(tmp_path / "elsewhere" / "secret.mp4", n_frames=FRAMES)
    (copy / "videos" / "b.mp4").unlink()
    (copy / "videos" / "b.mp4").symlink_to(outside)
    project, result = _import(tmp_path, copy)
    first = copy / "annotations/VA_Estimation_Challenge/Train_Set/b.txt"
    assert warnings_of(result.output) == [
        f"warning: {first}: video file {copy / 'videos' / 'b.mp4'} resolves outside the dataset root {copy}; "
        "'b' skipped"]
    assert "b" not in _tasks(project)


def test_a_tampered_manifest_path_is_refused_downstream(tmp_path: Path, copy: Path):
    project, result = _import(tmp_path, copy)
    manifest = project.raw / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines[1] = lines[1].replace("videos/a.mp4", "../../../etc/a.mp4")
    manifest.write_text("\n".join(lines) + "\n")
    assert error_line(project.invoke("faces")) == \
        f"error: {manifest}:2: video_path '../../../etc/a.mp4' must be relative to the dataset root"
