"""SIGKILL and SIGTERM in the middle of faces, features, pretrain and temporal, then a re-run.

Interrupted: nothing half-written looks finished (what is under a final name is final; the rest are hidden
`.partial` files or arrays without their `complete` mark); SIGTERM ends the stage with one line, exit 143.
Re-run: the stage finishes, reusing what was finished, and its outputs equal the uninterrupted reference run's
to the byte.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    Project,
    assert_identical,
    clone,
    feature_arrays,
    h5_arrays,
    interrupt,
    state_dict,
    without_timing,
)

INTERRUPTED = "interrupted (SIGTERM): re-run to finish"


def _check_status(sig: signal.Signals, status: int, output: str) -> None:
    if sig is signal.SIGKILL:
        assert status == -signal.SIGKILL
    else:
        assert status == 128 + signal.SIGTERM, output
        assert output.splitlines()[-1] == INTERRUPTED and "Traceback" not in output


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.partial"))


def test_corpus(reference: Project, tmp_path: Path):
    project = Project.create(tmp_path / "project", reference.read_params())
    partial = project.raw.with_name("raw.partial")
    status, _ = interrupt(project, "corpus", signal.SIGKILL, lambda: len(list(partial.glob("videos/*.mp4"))) >= 2)
    assert status == -signal.SIGKILL
    assert not project.raw.exists() and partial.is_dir()  # the half-built corpus is only ever raw.partial
    project.check("corpus")
    assert not partial.exists()
    ours, theirs = (sorted(p.rglob("*")) for p in (project.raw, reference.raw))
    assert [p.relative_to(project.raw) for p in ours] == [p.relative_to(reference.raw) for p in theirs]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, theirs) if a.is_file())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_faces(reference: Project, tmp_path: Path, sig: signal.Signals):
    project = clone(reference, tmp_path / "project", "data/raw")
    status, output = interrupt(project, "faces", sig, lambda: any(project.faces.glob("*.h5")) and any(
        project.faces.glob(".*.partial")))  # one store finished, the next one half written
    _check_status(sig, status, output)
    finished = sorted(project.faces.glob("*.h5"))
    assert 0 < len(finished) < 4
    for path in finished:  # a store under its final name is the finished one
        assert_identical(h5_arrays(path), h5_arrays(reference.faces / path.name))
    assert len(_leftovers(project.faces)) <= 1  # the store being written, if the signal came before its cleanup
    again = project.check("faces")
    assert f"4 video files ({4 - len(finished)} processed, {len(finished)} already done)" in again
    assert _leftovers(project.faces) == []
    for path in sorted(reference.faces.glob("*.h5")):
        assert_identical(h5_arrays(project.faces / path.name), h5_arrays(path))
    report, expected = (json.loads((p.metrics / "faces.json").read_text()) for p in (project, reference))
    assert (report["truth"], report["problems"]) == (expected["truth"], expected["problems"])


def test_faces_with_worker_processes_stops_them_at_once(reference: Project, tmp_path: Path):
    """faces.workers = 2: SIGTERM also ends the workers, instead of waiting for every queued video."""
    project = clone(reference, tmp_path / "project", "data/raw")
    params = project.read_params()
    params["faces"]["workers"] = 2
    project.write_params(params)
    status, output = interrupt(project, "faces", signal.SIGTERM, lambda: any(project.faces.glob("*.h5")))
    _check_status(signal.SIGTERM, status, output)
    left = sorted(p.name for p in project.faces.iterdir())
    assert len([name for name in left if name.endswith(".h5")]) < 4
    time.sleep(1.0)
    assert sorted(p.name for p in project.faces.iterdir()) == left  # no worker left running
    params["faces"]["workers"] = 1  # workers change speed, not stores
    project.write_params(params)
    project.check("faces")
    for path in sorted(reference.faces.glob("*.h5")):
        assert_identical(h5_arrays(project.faces / path.name), h5_arrays(path))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_features(reference: Project, tmp_path: Path, sig: signal.Signals):
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae")
    status, output = interrupt(project, "features", sig,
                               lambda: len(list((project.features / "mae").glob("*.valid/zarr.json"))) >= 2)
    _check_status(sig, status, output)
    finished = feature_arrays(project.features)  # only arrays marked complete are listed
    assert len(finished) < 4
    assert_identical(finished, {k: v for k, v in feature_arrays(reference.features).items() if k in finished})
    again = project.check("features")
    assert f"{4 - len(finished)} arrays written, {len(finished)} already current" in again
    assert_identical(feature_arrays(project.features), feature_arrays(reference.features))
    report, expected = (json.loads((p.metrics / "features.json").read_text()) for p in (project, reference))
    assert report["expr_probe_macro_f1"] == expected["expr_probe_macro_f1"]


@pytest.fixture(scope="module")
def resumed_pretrain(reference: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """`abaw pretrain` killed in its second epoch (after last.pt of the first), then run again: (project,
    output of the re-run)."""
    project = clone(reference, tmp_path_factory.mktemp("pretrain") / "project", "data/faces")
    status, _ = interrupt(project, "pretrain", signal.SIGKILL, lambda: (project.mae / "last.pt").is_file())
    assert status == -signal.SIGKILL
    assert not (project.mae / "mae.pt").exists() and _leftovers(project.mae) == []
    checkpoint = torch_load(project.mae / "last.pt")
    assert checkpoint["epoch"] == 1  # the resume point is itself a finished file
    return project, project.check("pretrain")


def test_pretrain_resumes_after_sigkill(resumed_pretrain):
    project, output = resumed_pretrain
    assert "pretrain: 20 faces, 1 epoch(s) run (resumed after 1)" in output
    assert torch_load(project.mae / "mae.pt")["meta"]["epochs"] == 2


def test_pretrain_resumed_equals_uninterrupted(resumed_pretrain, reference: Project):
    project, _ = resumed_pretrain
    assert_identical(state_dict(project.mae / "mae.pt"), state_dict(reference.mae / "mae.pt"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_temporal(reference: Project, tmp_path: Path, sig: signal.Signals):
    project = clone(reference, tmp_path / "project", "data/raw", "data/features.zarr")
    status, output = interrupt(project, "temporal", sig,
                               lambda: (project.temporal / "expr" / "temporal.pt").is_file())  # baseline next
    _check_status(sig, status, output)
    assert not (project.predictions / "expr.h5").exists() and not (project.metrics / "temporal" / "expr.json").exists()
    project.check("temporal")
    for model in ("temporal", "baseline"):
        assert_identical(state_dict(project.temporal / "expr" / f"{model}.pt"),
                         state_dict(reference.temporal / "expr" / f"{model}.pt"))
    assert_identical(h5_arrays(project.predictions / "expr.h5"), h5_arrays(reference.predictions / "expr.h5"))
    report, expected = (json.loads((p.metrics / "temporal" / "expr.json").read_text()) for p in (project, reference))
    assert without_timing(report) == without_timing(expected)

