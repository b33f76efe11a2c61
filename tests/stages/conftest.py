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
