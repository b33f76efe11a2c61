"""A broken params.yaml: every stage refuses it in one line naming the file (and line, for YAML faults),
before touching anything; YAML tags that would build Python objects are refused, never executed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import Project, error_line

STAGES = ("corpus", "faces", "pretrain", "features", "temporal")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.create(tmp_path / "project")


def _edit(project: Project, old: str, new: str) -> None:
    """Change params.yaml as text (YAML faults cannot be written through a YAML dumper)."""
    text = project.params.read_text(encoding="utf-8")
    assert old in text, old
    project.params.write_text(text.replace(old, new, 1), encoding="utf-8")


def _line_of(project: Project, needle: str) -> int:
    return next(n for n, line in enumerate(project.params.read_text().splitlines(), 1) if needle in line)


def _nothing_written(project: Project) -> None:
    assert sorted(p.name for p in project.root.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_typo_is_refused_by_every_stage_before_any_work(project: Project, stage: str):
    params = project.read_params()
    params["temporal"]["common"]["epoch"] = params["temporal"]["common"].pop("epochs")
    project.write_params(params)
    line = error_line(project.invoke(stage))
    assert line.startswith(f"error: {project.params}: unknown key 'temporal.common.epoch' (did you mean 'epochs'?); "
                           "allowed: baseline, batch_size, bidirectional,")
    _nothing_written(project)


@pytest.mark.parametrize(("key", "value", "message"), [
    (("pretrain", "epochs"), "two", "'pretrain.epochs' = 'two': Input should be a valid integer, unable to parse "
                                    "string as an integer"),
    (("faces", "min_score"), 1.5, "'faces.min_score' = 1.5: Input should be less than or equal to 1"),
    (("faces", "strict"), "maybe", "'faces.strict' = 'maybe': Input should be a valid boolean, unable to interpret "
                                   "input"),
    (("window",), 32.5, "'window' = 32.5: Input should be a valid integer, got a number with a fractional part"),
    (("window",), None, "'window' = None: Input should be a valid integer"),
    (("seed",), -1, "'seed' = -1: Input should be greater than or equal to 0"),
    (("evaluate",), [1, 2], "'evaluate' = [1, 2]: Input should be a valid dictionary or instance of EvaluateSettings"),
    (("temporal", "common", "encoder"), "transfomer", "'temporal.common.encoder' = 'transfomer': Input should be "
                                                      "'transformer', 'lstm', 'gru', 'tcn' or 'framewise'"),
])
def test_a_wrong_type_or_range_names_the_key_and_the_value(project: Project, key, value, message):
    params = project.read_params()
    section = params
    for part in key[:-1]:
        section = section[part]
    section[key[-1]] = value
    project.write_params(params)
    assert error_line(project.invoke("corpus")) == f"error: {project.params}: {message}"
    _nothing_written(project)


def test_yaml_syntax_error_names_the_line(project: Project):
    _edit(project, "window: 8", "window: [8")
    line = error_line(project.invoke("faces"))
    assert line == f"error: {project.params}:{_line_of(project, 'window: [8') + 1}: not valid YAML " \
                   "(expected ',' or ']', but got ':')"


def test_a_key_given_twice_is_refused_naming_both_lines(project: Project):
    project.params.write_text(project.params.read_text() + "window: 64\n")
    line = error_line(project.invoke("temporal"))
    assert line == (f"error: {project.params}:{_line_of(project, 'window: 64')}: not valid YAML (key 'window' given "
                    f"twice, first at line {_line_of(project, 'window: 8')})")


def test_a_python_tag_is_refused_and_never_run(project: Project, tmp_path: Path):
    marker = tmp_path / "tag_was_executed"
    _edit(project, "seed: 0", f"seed: !!python/object/apply:os.system ['touch {marker}']")
    line = error_line(project.invoke("corpus"))
    assert line == (f"error: {project.params}:{_line_of(project, 'seed: !!python')}: not valid YAML (could not "
                    "determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system')")
    assert not marker.exists()
    _nothing_written(project)


def test_a_params_file_that_is_not_a_mapping(project: Project):
    project.params.write_text("- seed\n- window\n")
    assert error_line(project.invoke("corpus")) == \
        f"error: {project.params}: expected a mapping at the top level, got list"


def test_a_missing_params_file(project: Project):
    project.params.unlink()
    assert error_line(project.invoke("features")) == \
        f"error: {project.params}: not found (run from the project root or pass --params)"


@pytest.mark.parametrize("content", ["", "# all settings commented out\n"], ids=["zero bytes", "comments only"])
def test_an_empty_params_file_is_refused_not_read_as_defaults(project: Project, content: str):
    project.params.write_text(content)
    assert error_line(project.invoke("corpus")) == \
        f"error: {project.params}: empty (expected the settings: seed, window and one section per stage)"
    _nothing_written(project)
