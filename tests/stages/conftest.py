"""A git + DVC copy of the project's pipeline, driven by real `dvc` commands (shared by the DVC-level tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GIT_USER = ["-c", "user.name=test", "-c", "user.email=test@example.com"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command with the venv's tools first on PATH; fail the test with its output if it fails."""
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                **(env or {})}
    done = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", *GIT_USER, "commit", "-qm", message], repo)


def make_project(repo: Path, params: dict[str, Any]) -> Path:
    """dvc.yaml, the code it lists (pipeline_lib, stages) and `params` in a fresh git + DVC repository, committed
    once."""
    repo.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    for package in ("pipeline_lib", "stages"):
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    write_params(repo, params)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    # A real clone has history; dvclive (in `abaw pretrain`) reads the current commit.
    commit(repo, "init")
    return repo


def write_params(repo: Path, params: dict[str, Any]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def check_predict(project: Path) -> None:
    """`abaw predict` on a clip outside the corpus: CSV (columns, one row per decoded frame), overlay, plot."""
    import csv

    import av

    from pipeline_lib.data.demo.clip import generate_clip
    from pipeline_lib.predict.render import CSV_COLUMNS

    clip = generate_clip(project / "fresh_clip.mp4", seed=77, seconds=1.0, fps=10.0, width=128, height=96)
    out = run([str(BIN / "abaw"), "predict", str(clip.path), "--out", "predicted"], project)
    assert "fresh_clip.mp4: " in out
    with av.open(str(clip.path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    with (project / "predicted" / "fresh_clip.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) - 1 == decoded
    assert [int(r[0]) for r in rows[1:]] == list(range(decoded))
    assert (project / "predicted" / "fresh_clip_overlay.mp4").stat().st_size > 0
    assert (project / "predicted" / "fresh_clip_timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --mesh: one landmarker pass feeds the `mesh` features and the overlay; the predictions are the same
    run([str(BIN / "abaw"), "predict", str(clip.path), "--out", "predicted_mesh", "--mesh"], project)
    with_mesh = (project / "predicted_mesh" / "fresh_clip.csv").read_bytes()
    assert with_mesh == (project / "predicted" / "fresh_clip.csv").read_bytes()
    # a video without any face: exit 0, a warning, every row face_present=0 with empty predictions
    from tests.data.conftest import write_tiny_video

    blank = write_tiny_video(project / "blank.mp4", n_frames=12, fps=10, size=64)
    out = run([str(BIN / "abaw"), "predict", str(blank), "--out", "predicted"], project)
    assert "warning: no face found in blank.mp4" in out
    with (project / "predicted" / "blank.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and all(r["face_present"] == "0" and r["valence"] == "" for r in rows)
