"""The code's structure, checked from its source: each DVC stage lists exactly the code it runs, and no module
imports a layer above (or beside) its own.

Both read the import statements (every one, those inside functions too; scripts/stage_deps.py computes them),
so a helper moved to another file or a new import fails here before it leaves a cached stage output stale.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("stage_deps", ROOT / "scripts" / "stage_deps.py")
assert _spec is not None and _spec.loader is not None
deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deps)

# data < faces < models < features < train < evaluate/predict < stages. config, files (atomic writes, hashes),
# heap, mapped (memory-mapped arrays) and workers (stopping a process pool) sit below everything; artifacts
# (checkpoint and prediction files) and metrics just above the label definitions.
LAYERS = {
    "pipeline_lib": 0, "config": 0, "files": 0, "heap": 0, "mapped": 0, "workers": 0,
    "data": 1,
    "artifacts": 2, "metrics": 2,
    "faces": 3, "models": 4, "features": 5, "train": 6,
    "evaluate": 7, "predict": 7, "share": 7,
    "stages": 8,
}


def _package(name: str) -> str:
    """The layer a module belongs to: pipeline_lib.<package> (or top-level module), or the stages package."""
    parts = name.split(".")
    return parts[0] if parts[0] == "stages" or len(parts) == 1 else parts[1]


@pytest.mark.parametrize("name", sorted(deps.stages()))
def test_stage_lists_exactly_the_code_it_runs(name: str) -> None:
    stage = deps.stages()[name]
    listed = [d for d in stage["deps"] if d.split("/")[0] in deps.PACKAGES]
    runs = deps.closure(deps.command_module(stage))
    missed = sorted(str(f) for f in runs if not any(f == Path(d) or Path(d) in f.parents for d in listed))
    extra = [d for d in listed if not (deps._code_in(Path(d)) if (ROOT / d).is_dir() else {Path(d)}) <= runs]
    assert (missed, extra) == ([], []), (
        f"dvc.yaml stage {name!r}: runs {missed} without listing them, lists {extra} it never runs (or a folder "
        f"holding some): run `python scripts/stage_deps.py --write`")


def test_dvc_yaml_is_what_stage_deps_writes() -> None:
    text = deps.DVC_YAML.read_text(encoding="utf-8")
    assert deps.render(text) == text, "run `python scripts/stage_deps.py --write`"


def test_every_module_has_a_layer() -> None:
    assert not sorted(n for n in deps.modules() if _package(n) not in LAYERS)


def test_no_module_imports_a_layer_above_or_beside_its_own() -> None:
    bad = sorted(f"{name} -> {imported}" for name in deps.modules() for imported in deps.imports_of(name)
                 if _package(imported) != _package(name) and imported != "pipeline_lib"
                 and LAYERS[_package(imported)] >= LAYERS[_package(name)])
    assert not bad, f"imports up (or across) the layers {LAYERS}: {bad}"


def test_the_closure_sees_what_a_stage_runs() -> None:
    """Imports inside functions and package __init__s with code count; docstring-only __init__s do not."""
    faces = deps.closure("stages.faces")
    assert Path("pipeline_lib/faces/detect.py") in faces  # imported inside the stage's command function
    assert {Path("pipeline_lib/config.py"), Path("stages/_common.py"), Path("pipeline_lib/__init__.py")} <= faces
    assert Path("pipeline_lib/faces/__init__.py") not in faces
    assert Path("pipeline_lib/train/temporal.py") not in deps.closure("stages.finetune")  # the temporal loop
    assert "pipeline_lib.faces.store" in deps.imports_of("pipeline_lib.features.encode")
    assert deps.compress({Path("pipeline_lib/files.py")} | deps._code_in(Path("pipeline_lib/evaluate"))) == [
        "pipeline_lib/evaluate", "pipeline_lib/files.py"]


def test_a_stale_dvc_yaml_is_rewritten() -> None:
    text = deps.DVC_YAML.read_text(encoding="utf-8")
    stale = text.replace("    - pipeline_lib/train/fusion_run.py\n", "", 1)
    assert stale != text and deps.render(stale) == text


def test_faces_params_are_the_store_settings_and_the_report_only_keys() -> None:
    """One list decides what changes a face store: its provenance keys are the faces stage's DVC params."""
    from pipeline_lib.faces.runner import STORE_SETTINGS

    params = [p for p in deps.stages()["faces"]["params"] if p.startswith("faces.")]
    assert sorted(params) == sorted([f"faces.{key}" for key in STORE_SETTINGS] + ["faces.strict", "faces.samples"])


def test_task_names_offered_by_the_cli_and_the_config_are_the_task_records():
    from typing import get_args

    from pipeline_lib.config import BasicTask, TemporalSettings
    from pipeline_lib.data.labels import BASIC_KEYS
    from stages._common import TaskName

    assert tuple(t.value for t in TaskName) == BASIC_KEYS
    assert get_args(BasicTask) == BASIC_KEYS
    assert tuple(TemporalSettings.model_fields) == ("common", *BASIC_KEYS)
