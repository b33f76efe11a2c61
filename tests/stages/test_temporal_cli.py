"""`abaw temporal` through the real CLI on a tiny corpus: metrics, curves, predictions; a task without labels
fails in one line naming the task and its annotation folder."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from stages.cli import app
from tests.train.conftest import build_corpus

runner = CliRunner()


def _args(tmp_path: Path, params: Path, raw: Path, features: Path, task: str) -> list[str]:
    return ["temporal", "--task", task, "--params", str(params), "--raw", str(raw), "--features", str(features),
            "--models", str(tmp_path / "models"), "--predictions", str(tmp_path / "pred"),
            "--report", str(tmp_path / "metrics")]


def test_temporal_cli_writes_outputs(tmp_path: Path, tiny_params_dict):
    raw, features = build_corpus(tmp_path / "corpus")
    tiny_params_dict["temporal"]["common"].update(epochs=2, hidden=16, layers=1, heads=2, threads=1)
    tiny_params_dict["temporal"]["expr"]["window"] = 12
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    result = runner.invoke(app, _args(tmp_path, params, raw, features, "expr"))
    assert result.exit_code == 0, result.output
    assert "temporal expr (transformer, window 12): val f1_macro" in result.output
    assert "processes)" not in result.output  # the process count is only named under torchrun
    metrics = json.loads((tmp_path / "metrics" / "expr.json").read_text())
    assert metrics["window"] == 12 and len(metrics["temporal"]["curve"]) == 2 and "baseline" in metrics
    assert (tmp_path / "metrics" / "expr" / "metrics.json").is_file()  # dvclive curves beside it
    for model in ("temporal", "baseline"):  # each model's curve is indexed by its own epochs
        curve = (tmp_path / "metrics" / "expr" / "plots" / "metrics" / model / "train_loss.tsv").read_text()
        assert [row.split("\t")[0] for row in curve.splitlines()] == ["step", "0", "1"]
    assert (tmp_path / "models" / "expr" / "temporal.pt").is_file()
    assert (tmp_path / "models" / "expr" / "baseline.pt").is_file()
    assert (tmp_path / "pred" / "expr.h5").is_file()


def test_task_without_labels_is_one_line(tmp_path: Path, tiny_params_file: Path):
    raw, features = build_corpus(tmp_path / "corpus")
    result = runner.invoke(app, _args(tmp_path, tiny_params_file, raw, features, "au"))
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and "AU_Detection_Challenge/Train_Set: task au: no labelled training frame" in line


def test_a_nan_training_loss_stops_the_stage_in_one_line(tmp_path: Path, tiny_params_dict, monkeypatch):
    import pipeline_lib.train.temporal as temporal

    real = temporal.task_loss

    def diverging(*args, **kwargs):
        loss = real(*args, **kwargs)
        return lambda out, y, m: loss(out, y, m) * float("nan")

    monkeypatch.setattr(temporal, "task_loss", diverging)
    raw, features = build_corpus(tmp_path / "corpus")
    tiny_params_dict["temporal"]["common"].update(epochs=2, hidden=16, layers=1, heads=2, threads=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    result = runner.invoke(app, _args(tmp_path, params, raw, features, "expr"))
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1].startswith(
        "error: temporal expr: the training loss is nan at epoch 1, step 1 of ")
    assert not (tmp_path / "models" / "expr" / "temporal.pt").exists()
