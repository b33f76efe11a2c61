"""Same params (same seed), run from scratch in a second folder: corpus -> faces -> pretrain -> features ->
temporal give the same files, arrays, weights and metrics on CPU, to the byte (wall-clock figures aside)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import (
    Project,
    assert_identical,
    build,
    feature_arrays,
    h5_arrays,
    state_dict,
    without_timing,
)


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return build(Project.create(tmp_path_factory.mktemp("second")))


def _report(project: Project, relative: str) -> Any:
    """A metrics file with the project's own folder written as <root>, and wall-clock figures removed."""
    text = (project.metrics / relative).read_text(encoding="utf-8").replace(str(project.root), "<root>")
    return without_timing(json.loads(text))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_corpus(reference: Project, second: Project):
    ours, theirs = _files(second.raw), _files(reference.raw)
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if ours[name] != theirs[name]] == []  # videos, labels, manifest, card
    assert _report(second, "corpus.json") == _report(reference, "corpus.json")


def test_faces(reference: Project, second: Project):
    for path in sorted(reference.faces.glob("*.h5")):
        assert_identical(h5_arrays(second.faces / path.name), h5_arrays(path))
    assert _report(second, "faces.json") == _report(reference, "faces.json")


def test_pretrain(reference: Project, second: Project):
    assert_identical(state_dict(second.mae / "mae.pt"), state_dict(reference.mae / "mae.pt"))
    assert _report(second, "pretrain/metrics.json") == _report(reference, "pretrain/metrics.json")


def test_features(reference: Project, second: Project):
    assert_identical(feature_arrays(second.features), feature_arrays(reference.features))
    assert _report(second, "features.json") == _report(reference, "features.json")


def test_temporal(reference: Project, second: Project):
    for model in ("temporal", "baseline"):
        assert_identical(state_dict(second.temporal / "expr" / f"{model}.pt"),
                         state_dict(reference.temporal / "expr" / f"{model}.pt"))
    assert_identical(h5_arrays(second.predictions / "expr.h5"), h5_arrays(reference.predictions / "expr.h5"))
    assert _report(second, "temporal/expr.json") == _report(reference, "temporal/expr.json")
