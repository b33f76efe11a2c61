"""The real dvc.yaml, run by real DVC on a tiny corpus: outputs appear, a second repro skips."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def project(tmp_path: Path, tiny_params_dict) -> Path:
    """A git + DVC copy of the project's pipeline files with tiny params."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copytree(ROOT / "pipeline_lib", repo / "pipeline_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    # A real clone has history; dvclive (in `abaw pretrain`) reads the current commit.
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "init"], repo)
    return repo


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
    assert (project / "data" / "features.zarr").is_dir() and (project / "models" / "mae" / "mae.pt").is_file()
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
