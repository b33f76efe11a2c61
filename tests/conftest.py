"""Shared fixtures: the real params.yaml, shrunk to a tiny, fast configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline_lib.config import Params, parse_params

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

# A demo corpus that renders in seconds but still has every kind of video.
TINY_DEMO: dict[str, Any] = {
    "train_videos": 2,
    "val_videos": 1,
    "test_videos": 1,
    "unlabeled_videos": 1,
    "two_subject_videos": 1,
    "cross_task_videos": 1,
    "ce_train_videos": 1,
    "ce_val_videos": 1,
    "min_seconds": 2.0,
    "max_seconds": 2.5,
    "lfw_identities": 4,
}


def tiny_params_raw(finetuned: bool = False) -> dict[str, Any]:
    """params.yaml of the project with the demo corpus and every model shrunk (a fresh copy per call).

    Most tests build features for `mae` (and `random`) only, so unless `finetuned` the task models and
    fusion read `mae` instead of the `landmarks` and `finetuned_<task>` extractors params.yaml routes them to.
    """
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["demo"].update(TINY_DEMO)
    raw["faces"]["workers"] = 1  # a spawned pool costs seconds of start-up; one test covers it
    raw["pretrain"].update(epochs=1, batch_size=16, frame_stride=4, samples=2)
    raw["features"]["probe_random_inits"] = 1  # the path runs; its spread means nothing on 4 identities
    raw["finetune"].update(epochs=1, steps_per_epoch=2, videos_per_batch=2, frames_per_video=4, probe_steps=10)
    raw["temporal"]["common"].update(epochs=2, hidden=16, layers=1, heads=2)
    raw["fusion"].update(epochs=1, hidden=16, heads=2)
    raw["compound"].update(hidden=16, heads=2, seeds=2, curriculum={"epochs": [1, 1, 1], "share": [0.0, 0.5, 1.0],
                                                                    "synthetic": [0.0, 1.0, 0.0]})
    raw["compound"]["synthetic"].update(windows=64)
    if not finetuned:
        raw["temporal"]["common"]["extractor"] = "mae"
        raw["fusion"]["extractors"] = ["mae"]
    return raw


@pytest.fixture
def tiny_params_dict() -> dict[str, Any]:
    return tiny_params_raw()


@pytest.fixture
def tiny_params(tiny_params_dict: dict[str, Any]) -> Params:
    return parse_params(tiny_params_dict)


@pytest.fixture
def tiny_params_file(tmp_path: Path, tiny_params_dict: dict[str, Any]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(autouse=True, scope="session")
def _tests_leave_the_project_alone():
    """Fail loudly if a test writes into the project's own outputs (e.g. a CLI default path)."""
    watched = [ROOT / "metrics", ROOT / "plots", ROOT / "data"]

    def snapshot() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for d in watched if d.exists() for p in d.rglob("*") if p.is_file()}

    before = snapshot()
    yield
    changed = {k for k, v in snapshot().items() if before.get(k) != v}
    assert not changed, f"tests wrote into the project tree: {sorted(changed)[:5]}"


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: thread hand-offs cost more than the work (10x on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
