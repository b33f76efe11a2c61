"""Damaged or foreign files between stages: a checkpoint replaced by a pickle carrying code (refused by the
weights-only loader and never run), truncated or foreign checkpoints, a zarr feature array or a face store
truncated on disk. Each is one line naming the file; a re-run of the stage that wrote it repairs it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from tests.faults.conftest import Project, assert_identical, clone, error_line, feature_arrays, h5_arrays

REFUSED_CODE = ("not a checkpoint this pipeline wrote (refused by the weights-only unpickler: Trying to load "
                "unsupported GLOBAL posix.system whose module posix is blocked.)")


class _Payload:
    """Unpickling this runs a shell command: what a tampered checkpoint would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _plant(path: Path, marker: Path) -> None:
    """Replace `path` by a torch file whose unpickling would create `marker`."""
    torch.save({"model": _Payload(f"touch {marker}"), "config": {}}, path)


def test_the_payload_is_live(tmp_path: Path):
    """The planted file does run its code under a plain unpickler: the refusals below are real."""
    marker = tmp_path / "ran"
    _plant(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)  # noqa: S614 (the point of this test)
    assert marker.exists()
    assert pickle.loads(pickle.dumps(_Payload(f"touch {tmp_path / 'ran2'}"))) == 0 and (tmp_path / "ran2").exists()


@pytest.mark.parametrize(("stage", "checkpoint"), [("features", "mae.pt"), ("pretrain", "last.pt")])
def test_a_checkpoint_carrying_code_is_refused_and_not_run(reference: Project, tmp_path: Path, stage: str,
                                                           checkpoint: str):
    """mae.pt read by `abaw features`; last.pt read by `abaw pretrain` when it resumes."""
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae")
    marker = tmp_path / "payload_ran"
    _plant(project.mae / checkpoint, marker)
    assert error_line(project.invoke(stage)) == f"error: {project.mae / checkpoint}: {REFUSED_CODE}"
    assert not marker.exists()


@pytest.mark.parametrize(("keep", "reason"), [
    (0.5, "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory"),
    (0.0, "the file ends early: empty or truncated"),
], ids=["truncated", "zero bytes"])
def test_a_truncated_checkpoint(reference: Project, tmp_path: Path, keep: float, reason: str):
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae")
    data = (project.mae / "mae.pt").read_bytes()
    (project.mae / "mae.pt").write_bytes(data[: int(len(data) * keep)])
    assert error_line(project.invoke("features")) == \
        f"error: {project.mae / 'mae.pt'}: not a checkpoint this pipeline wrote ({reason})"
    assert not project.features.exists()


def test_a_checkpoint_of_something_else(reference: Project, tmp_path: Path):
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae")
    torch.save({"weights": torch.zeros(3)}, project.mae / "mae.pt")
    assert error_line(project.invoke("features")) == \
        f"error: {project.mae / 'mae.pt'}: not an MAE checkpoint (expected keys 'model' and 'config')"


def _shard(project: Project, video: str) -> Path:
    """The one file holding a video's features (zarr v3, one shard per array)."""
    (shard,) = [p for p in (project.features / "mae" / video).rglob("*") if p.is_file() and p.name != "zarr.json"]
    return shard


@pytest.mark.parametrize(("damage", "problem"), [
    ("half", "cannot be decoded: ValueError"),
    ("empty", "does not match the checksum written with it"),
    ("deleted", "does not match the checksum written with it"),
])
def test_a_truncated_feature_array_is_named_then_rebuilt(reference: Project, tmp_path: Path, damage: str,
                                                         problem: str):
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae", "data/features.zarr")
    shard = _shard(project, "video_001")
    data = shard.read_bytes()
    if damage == "deleted":
        shard.unlink()
    else:
        shard.write_bytes(data[: len(data) // 2] if damage == "half" else b"")
    assert error_line(project.invoke("temporal")) == (
        f"error: {project.features / 'mae' / 'video_001'}: damaged on disk ({problem}); re-run `abaw features` to "
        "rebuild it")
    assert not project.predictions.exists()
    output = project.check("features")
    assert "4 videos x 1 extractors, 1 arrays written, 3 already current" in output
    assert_identical(feature_arrays(project.features), feature_arrays(reference.features))
    assert _shard(project, "video_001").read_bytes() == data


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated", "zero bytes"])
def test_a_truncated_face_store_is_named_then_rebuilt(reference: Project, tmp_path: Path, keep: float):
    project = clone(reference, tmp_path / "project", "data/raw", "data/faces", "models/mae")
    store = project.faces / "video_002.h5"
    data = store.read_bytes()
    store.write_bytes(data[: int(len(data) * keep)])
    reason = f"truncated file: eof = {int(len(data) * keep)}" if keep else "file signature not found)"
    for stage in ("features", "pretrain"):
        line = error_line(project.invoke(stage))
        assert line.startswith(f"error: {store}: unreadable face store (Unable to synchronously open file ({reason}"), \
            line
        assert line.endswith("; re-run `abaw faces` to rebuild it")
    assert "4 video files (1 processed, 3 already done)" in project.check("faces")
    for path in sorted(reference.faces.glob("*.h5")):
        assert_identical(h5_arrays(project.faces / path.name), h5_arrays(path))
