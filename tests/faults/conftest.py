"""The fault-injection suite's project: a tiny demo corpus taken through the real CLI once per session.

`Project` runs a stage either in this process (typer's CliRunner, the fast way)
or as a subprocess of the installed `abaw` (where a signal must hit it). Paths
mirror dvc.yaml's; each project is its own folder, and stages run with it as
the working directory, as under `dvc repro`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from stages.cli import app
from tests.conftest import tiny_params_raw

BIN = Path(sys.executable).parent
runner = CliRunner()

# Smaller than the shared tiny corpus: four one-subject videos of 20 frames, EXPR/VA/AU labels.
FAULTS_DEMO: dict[str, Any] = {
    "train_videos": 2, "val_videos": 1, "test_videos": 1, "unlabeled_videos": 0, "two_subject_videos": 0,
    "ce_train_videos": 0, "ce_val_videos": 0, "fps": 10.0, "min_seconds": 2.0, "max_seconds": 2.0,
}


def faults_params() -> dict[str, Any]:
    """The project's params.yaml shrunk for the suite (a fresh copy per call)."""
    raw = tiny_params_raw()
    raw["window"] = 8
    raw["data"]["demo"].update(FAULTS_DEMO)
    raw["pretrain"].update(epochs=2, batch_size=8, frame_stride=4, color_jitter=0.0)  # 2 epochs: a resume point
    raw["features"]["extractors"] = ["mae"]
    raw["temporal"]["common"].update(epochs=3, hidden=16, layers=1, heads=2, batch_size=8)
    return raw


@dataclass(frozen=True)
class Project:
    """One pipeline folder: params.yaml, data/, models/, metrics/, plots/ laid out as in dvc.yaml."""

    root: Path

    @classmethod
    def create(cls, root: Path, params: dict[str, Any] | None = None) -> Project:
        root.mkdir(parents=True, exist_ok=True)
        project = cls(root)
        project.write_params(faults_params() if params is None else params)
        return project

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    def write_params(self, params: dict[str, Any]) -> None:
        self.params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    def read_params(self) -> dict[str, Any]:
        return yaml.safe_load(self.params.read_text(encoding="utf-8"))

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def faces(self) -> Path:
        return self.root / "data" / "faces"

    @property
    def mae(self) -> Path:
        return self.root / "models" / "mae"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features.zarr"

    @property
    def temporal(self) -> Path:
        return self.root / "models" / "temporal"

    @property
    def predictions(self) -> Path:
        return self.root / "data" / "predictions" / "temporal"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    def argv(self, stage: str, task: str = "expr") -> list[str]:
        """The stage's command line as dvc.yaml has it, with this project's paths (no progress bars)."""
        p, m = ["--params", str(self.params)], self.metrics
        commands = {
            "corpus": ["--out", self.raw, "--report", m / "corpus.json", "--workers", "1"],
            "faces": ["--raw", self.raw, "--out", self.faces, "--report", m / "faces.json",
                      "--videos-report", m / "faces_videos.json", "--plot", self.root / "plots" / "faces.png",
                      "--no-progress"],
            "pretrain": ["--faces", self.faces, "--out", self.mae, "--live-dir", m / "pretrain",
                         "--plot", self.root / "plots" / "mae.png"],
            "features": ["--raw", self.raw, "--faces", self.faces, "--checkpoint", self.mae / "mae.pt",
                         "--out", self.features, "--report", m / "features.json", "--no-progress"],
            "temporal": ["--task", task, "--raw", self.raw, "--features", self.features, "--models", self.temporal,
                         "--predictions", self.predictions, "--report", m / "temporal"],
        }
        return [stage, *p, *(str(a) for a in commands[stage])]

    def invoke(self, stage: str, *extra: str, task: str = "expr") -> Result:
        """Run a stage in this process, from the project folder."""
        with contextlib.chdir(self.root):
            return runner.invoke(app, [*self.argv(stage, task), *extra])

    def check(self, stage: str, *extra: str, task: str = "expr") -> str:
        """Run a stage that must succeed; its output."""
        result = self.invoke(stage, *extra, task=task)
        assert result.exit_code == 0, f"abaw {stage} failed:\n{result.output}"
        return result.output

    def spawn(self, stage: str, log: Path, task: str = "expr") -> subprocess.Popen[bytes]:
        """Start the stage as a real `abaw` process (output unbuffered into `log`)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        with log.open("wb") as out:
            return subprocess.Popen([str(BIN / "abaw"), *self.argv(stage, task)], cwd=self.root, env=env,
                                    stdout=out, stderr=subprocess.STDOUT)


def clone(source: Project, root: Path, *parts: str) -> Project:
    """A new project at `root` with `source`'s params.yaml and copies of `parts` (paths under its root)."""
    root.mkdir(parents=True)
    shutil.copy(source.params, root / "params.yaml")
    for part in parts:
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        copier = shutil.copytree if (source.root / part).is_dir() else shutil.copy
        copier(source.root / part, root / part)
    return Project(root)


def build(project: Project) -> Project:
    """Run corpus -> faces -> pretrain -> features -> temporal (expr), each of which must succeed."""
    for stage in ("corpus", "faces", "pretrain", "features", "temporal"):
        project.check(stage)
    return project


def interrupt(project: Project, stage: str, sig: signal.Signals, ready: Callable[[], bool],
              timeout: float = 300.0) -> tuple[int, str]:
    """Start `stage`, wait until `ready()` says it is mid-way, send `sig`; (exit status, output).

    Fails if the stage finishes before it could be interrupted.
    """
    log = project.root / f"{stage}.{sig.name}.log"
    proc = project.spawn(stage, log)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"abaw {stage} ended before it could be interrupted:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"abaw {stage} never reached the interruption point"
            time.sleep(0.005)
        proc.send_signal(sig)
        status = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, log.read_text()


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file (face store, predictions), by its full name."""
    found: dict[str, np.ndarray] = {}

    def collect(name: str, node: h5py.HLObject) -> None:
        if isinstance(node, h5py.Dataset):
            found[name] = node[...]

    with h5py.File(path, "r") as h5:
        h5.visititems(collect)
    return found


def feature_arrays(path: Path, extractor: str = "mae") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{video: (features, valid)} of every finished array of a feature store."""
    from pipeline_lib.features.store import FeatureStore

    store = FeatureStore(path, mode="r")
    return {video: store.read(extractor, video) for video in store.videos(extractor)}


def state_dict(path: Path) -> dict[str, np.ndarray]:
    """The weights of a checkpoint (weights-only load), as numpy arrays."""
    import torch

    return {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True)["model"].items()}


def assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Same keys; arrays (or tuples of arrays) equal to the byte, dtype and shape included."""
    assert sorted(a) == sorted(b)
    for key in a:
        left, right = (a[key], b[key]) if isinstance(a[key], tuple) else ((a[key],), (b[key],))
        for x, y in zip(left, right, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f"{key} differs"


def without_timing(value: Any) -> Any:
    """A report with its wall-clock figures (any key naming seconds) removed, for comparing runs."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if "second" not in k}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def error_line(result: Result) -> str:
    """The only line of a failed stage's output: exit 2, `error: ...`, no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
        f"exit {result.exit_code}, expected one error line:\n{result.output}"
    return lines[0]


def warnings_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning: ")]


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The whole chain, uninterrupted, on clean input: what every re-run must reproduce. Read-only for tests."""
    return build(Project.create(tmp_path_factory.mktemp("reference")))
