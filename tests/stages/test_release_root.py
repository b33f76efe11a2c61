"""The whole pipeline on a root shaped like the real Aff-Wild2 + C-EXPR-DB release (built from the demo's real
photos by `as_release`), run as a user would: `dvc exp run -S data.source=<root>`.

The root has videos in one task's training split and another's validation split, an MTL file that disagrees
with the per-task folders, a 1920x1080 two-subject video, an .avi, label files a few lines off, invalid spans,
sparse `cropped_aligned` folders, an unlabelled video, a missing and an unreadable video, and compound
expressions with a test list but no CE labels (C-EXPR-DB's 01, 02, ...)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_lib.config import DemoCorpusSettings
from pipeline_lib.data.demo.generate import generate_corpus
from pipeline_lib.data.demo.release import Release, as_release
from pipeline_lib.data.layout import AffWild2Layout, read_test_list
from tests.conftest import TINY_DEMO, tiny_params_raw
from tests.stages.conftest import make_project, run

# The tiny corpus with one more training video and longer videos: enough single-expression windows for the
# synthetic compound windows to have a pair of constituents (Sadness and Anger at seed 0) at window 8.
RELEASE_DEMO = {**TINY_DEMO, "train_videos": 3, "min_seconds": 3.0, "max_seconds": 3.5}
WINDOW = 8


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("release")
    generate_corpus(root / "demo", DemoCorpusSettings(**RELEASE_DEMO), seed=0, progress=False, workers=2)
    return as_release(root / "demo", root / "Aff-Wild2")


def test_the_release_root_has_the_quirks_of_the_real_one(release: Release):
    layout = AffWild2Layout(release.root)
    assert release.full_hd and release.avi and release.mtl_conflict and len(release.cropped) == 2
    assert (release.root / "videos" / f"{release.avi}.avi").is_file()
    assert not (release.root / "annotations" / "CE").exists()
    assert read_test_list(layout.test_list_path("CE")) == ["01", "02"] == sorted(release.compound_videos)
    frames = sorted((release.root / "cropped_aligned" / next(iter(release.cropped))).glob("*.jpg"))
    numbers = [int(p.stem) for p in frames]
    assert len(frames) == release.cropped[next(iter(release.cropped))] and numbers != list(range(1, len(frames) + 1))


def _metrics(repo: Path, name: str) -> dict:
    return json.loads((repo / "metrics" / name).read_text())


def test_dvc_exp_run_on_a_release_root_completes_every_stage(release: Release, tmp_path: Path):
    repo = make_project(tmp_path / "repo", {**tiny_params_raw(finetuned=True), "window": WINDOW})
    out = run(["dvc", "exp", "run", "-S", f"data.source={release.root}", "-S", "faces.source=cropped_aligned"], repo)
    assert "Traceback" not in out
    assert "in one task's training split and another's validation split: 1 video(s)" in out  # the corpus plan
    assert "warning: landmarks: 2 video(s) have faces but no landmark points" in out  # the imported crops

    corpus = _metrics(repo, "corpus.json")
    assert corpus["skipped_videos"] == ["broken", "gone"]
    assert corpus["cross_task"]["videos"] == 1 and corpus["tasks"]["CE"]["test"]["videos"] == 2
    video, task = release.mtl_conflict
    assert any(f"video '{video}' is {task} train here but {task} val in" in w for w in corpus["warning_lines"])
    faces = _metrics(repo, "faces_videos.json")
    imported = {name for video in faces.values() for name, report in video["report"].items()
                if "frames_found" in report}
    assert imported == set(release.cropped)

    compound = _metrics(repo, "compound.json")
    assert compound["trained"] and compound["real_compound_labels"] is False and compound["val_videos"] == 0
    assert sum(compound["synthetic"]["per_compound"].values()) == compound["synthetic"]["windows"] == 64
    assert compound["synthetic"]["per_compound"]["Sadly_Angry"] > 0

    summary = _metrics(repo, "summary.json")
    assert summary["submissions_ok"], _metrics(repo, "evaluate.json")["submissions"]
    assert _metrics(repo, "evaluate.json")["unscored"] == {"ce": "compound"}
    assert sorted(p.stem for p in (repo / "submissions" / "CE").glob("*.txt")) == ["01", "02"]
    tests = read_test_list(AffWild2Layout(release.root).test_list_path("VA"))
    for track in ("VA", "EXPR", "AU"):
        assert sorted(p.stem for p in (repo / "submissions" / track).glob("*.txt")) == sorted(tests)
    assert (repo / "submissions" / "MTL" / "predictions.txt").is_file()
