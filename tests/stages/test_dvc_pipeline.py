"""The real dvc.yaml, run by real DVC on a tiny corpus: outputs appear, a second repro skips."""

import json
from pathlib import Path

import pytest
import yaml

from pipeline_lib.config import parse_params
from tests.conftest import tiny_params_raw
from tests.stages.conftest import check_predict, make_project
from tests.stages.conftest import run as _run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git + DVC copy of the project's pipeline files with tiny params, the task models and fusion routed as
    in params.yaml: task models on `mesh`, fusion on it, `landmarks` and the `finetuned_<task>` features."""
    params = tiny_params_raw(finetuned=True)
    assert parse_params(params).temporal.resolve("va", params["window"]).extractor == "mesh"
    fused = set(params["fusion"]["extractors"])
    assert {"mesh", "landmarks", "finetuned_va", "finetuned_expr", "finetuned_au"} <= fused
    return make_project(tmp_path / "repo", params)


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
    check_predict(project)
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
    smoothing, params["evaluate"]["va_smoothing"] = params["evaluate"]["va_smoothing"], 3  # evaluate only
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run(["dvc", "status"], project)
    assert "evaluate" in status and "fusion" not in status and "compound" not in status
    assert (project / "data" / "features.zarr").is_dir() and (project / "models" / "mae" / "mae.pt").is_file()
    params["evaluate"]["va_smoothing"] = smoothing
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
