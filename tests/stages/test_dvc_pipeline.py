"""The real dvc.yaml, run by real DVC on a tiny corpus: outputs appear, a second repro skips."""

import json
from pathlib import Path

import pytest
import yaml

from pipeline_lib.config import parse_params
from tests.conftest import tiny_params_raw
from tests.stages.conftest import BIN, make_project
from tests.stages.conftest import run as _run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git + DVC copy of the project's pipeline files with tiny params, the task models and fusion routed as
    in params.yaml: task models on `landmarks`, fusion on it and the `finetuned_<task>` features."""
    params = tiny_params_raw(finetuned=True)
    assert parse_params(params).temporal.resolve("va", params["window"]).extractor == "landmarks"
    assert {"landmarks", "finetuned_va", "finetuned_expr", "finetuned_au"} <= set(params["fusion"]["extractors"])
    return make_project(tmp_path / "repo", params)


def _check_predict(project: Path) -> None:
    """`abaw predict` on a clip outside the corpus: CSV (columns, one row per decoded frame), overlay, plot."""
    import csv

    import av

    from pipeline_lib.data.demo.clip import generate_clip
    from pipeline_lib.predict.render import CSV_COLUMNS

    clip = generate_clip(project / "fresh_clip.mp4", seed=77, seconds=1.0, fps=10.0, width=128, height=96)
    out = _run([str(BIN / "abaw"), "predict", str(clip.path), "--out", "predicted"], project)
    assert "fresh_clip.mp4: " in out
    with av.open(str(clip.path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    with (project / "predicted" / "fresh_clip.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) - 1 == decoded
    assert [int(r[0]) for r in rows[1:]] == list(range(decoded))
    assert (project / "predicted" / "fresh_clip_overlay.mp4").stat().st_size > 0
    assert (project / "predicted" / "fresh_clip_timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a video without any face: exit 0, a warning, every row face_present=0 with empty predictions
    from tests.data.conftest import write_tiny_video

    blank = write_tiny_video(project / "blank.mp4", n_frames=12, fps=10, size=64)
    out = _run([str(BIN / "abaw"), "predict", str(blank), "--out", "predicted"], project)
    assert "warning: no face found in blank.mp4" in out
    with (project / "predicted" / "blank.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and all(r["face_present"] == "0" and r["valence"] == "" for r in rows)


def test_dvc_repro_builds_corpus_then_skips(project: Path):
    _run(["dvc", "repro"], project)
    assert (project / "data" / "raw" / "manifest.csv").is_file()
    assert (project / "metrics" / "corpus.json").is_file()
    assert (project / "metrics" / "faces.json").is_file() and (project / "plots" / "faces_samples.png").is_file()
    subjects = (project / "data" / "raw" / "manifest.csv").read_text().count("\n") - 1
    assert len(list((project / "data" / "faces").glob("*.h5"))) == subjects
    assert (project / "dvc.lock").is_file()
    for task in ("va", "expr", "au"):
        assert json.loads((project / "metrics" / "temporal" / f"{task}.json").read_text())["window"] == 32
        assert (project / "models" / "temporal" / task / "temporal.pt").is_file()
    fusion = json.loads((project / "metrics" / "fusion.json").read_text())
    assert fusion["val"]["mtl"] > 0 and (project / "data" / "predictions" / "fusion" / "fusion.h5").is_file()
    compound = json.loads((project / "metrics" / "compound.json").read_text())
    # the tiny corpus' one CE training video may hold no compound segment: then zero-shot scores stand in
    assert {"curriculum", "direct", "zero_shot"} <= set(compound) if compound["trained"] else compound["reason"]
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    assert summary["submissions_ok"] and summary["ce"]["model"] in ("compound", "zero-shot")
    test_videos = (project / "data" / "raw" / "test_set" / "CE_test_set_release.txt").read_text().split()
    assert sorted(p.stem for p in (project / "submissions" / "CE").glob("*.txt")) == sorted(test_videos)
    assert (project / "plots" / "evaluate" / "expr_confusion.png").is_file()
    _check_predict(project)
    again = _run(["dvc", "repro"], project)
    assert "didn't change, skipping" in again
    # a param the corpus stage does not read leaves it alone; `data` does not
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["window"] = 64
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "corpus" not in status and "faces" not in status
    assert "pretrain" not in status and "features" not in status  # window is a temporal param only
    assert all(f"temporal@{task}" in status for task in ("va", "expr", "au")) and "fusion" in status
    params["window"] = 32
    params["temporal"]["va"]["window"] = 16  # one task's own window: only that task
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "temporal@va" in status and "temporal@expr" not in status and "temporal@au" not in status
    params["temporal"]["va"]["window"] = None
    params["fusion"]["pseudo"]["enabled"] = False  # a fusion param: fusion only
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "fusion" in status and "temporal@" not in status
    params["fusion"]["pseudo"]["enabled"] = True
    params["evaluate"]["va_smoothing"] = 3  # an evaluate param: evaluate only
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "evaluate" in status and "fusion" not in status and "compound" not in status
    assert (project / "data" / "features.zarr").is_dir() and (project / "models" / "mae" / "mae.pt").is_file()
    params["device"] = "auto"  # CPU here too, yet every stage that runs a network re-runs on the new value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert all(s in status for s in ("faces:", "pretrain:", "finetune@va:", "features:", "temporal@au:", "fusion:",
                                     "compound:"))
    assert "corpus:" not in status and "evaluate:" not in status
    params["device"] = "cpu"
    params["faces"]["workers"] = 3  # speed only: no re-run
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "corpus" not in status and "faces" not in status
    params["faces"]["keyframe_interval"] = 5
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "corpus" not in status and "faces:" in status
    params["data"]["demo"]["fps"] = 10.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "corpus" in status and "modified:" in status
