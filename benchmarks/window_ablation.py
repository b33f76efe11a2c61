"""The window ablation's cost: `dvc exp run -S window=64` vs a full `dvc repro` from scratch, in one run.

    python benchmarks/window_ablation.py

Copies the pipeline (dvc.yaml, params.yaml, pipeline_lib) into a fresh git +
DVC repository in a temporary folder, times `dvc repro` from nothing (corpus,
faces, pretrain, features, temporal), then `dvc exp run -S window=64`, and
records which stages each ran and `dvc exp show`'s side-by-side table.
Target (issue 6): the ablation takes at most 25% of the full run.

Writes results/window_ablation.json.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout + done.stderr


def stages_run(log: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", log)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        for name in ("dvc.yaml", "params.yaml"):
            shutil.copy(ROOT / name, repo / name)
        for package in ("pipeline_lib", "stages"):  # the code dvc.yaml lists as deps
            shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
        run(["git", "init", "-q"], repo)
        run(["dvc", "init", "-q"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "init"], repo)
        full_s, full_log = run(["dvc", "repro"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "repro"], repo)
        ablation_s, ablation_log = run(["dvc", "exp", "run", "-S", "window=64"], repo)
        _, table = run(["dvc", "exp", "show", "--no-pager", "--md", "--only-changed",
                        "--drop", "faces|features|corpus|pretrain|Created|State|Executor"], repo)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "full_repro_seconds": round(full_s, 1),
        "full_repro_stages": stages_run(full_log),
        "window64_seconds": round(ablation_s, 1),
        "window64_stages": stages_run(ablation_log),
        "ratio": round(ablation_s / full_s, 3),
        "target_ratio_at_most": 0.25,
        "exp_show": table,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "window_ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "exp_show"}, indent=2))
    print(table)


if __name__ == "__main__":
    main()
