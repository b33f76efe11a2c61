"""`abaw fusion` through the real CLI on a tiny corpus after the three temporal runs: metrics with both
pseudo-label runs, curves, predictions; a missing task model fails in one line naming it."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from stages.cli import app
from tests.train.conftest import build_corpus

runner = CliRunner()


def _temporal(tmp_path: Path, params: Path, raw: Path, features: Path, task: str) -> None:
    result = runner.invoke(app, ["temporal", "--task", task, "--params", str(params), "--raw", str(raw),
                                 "--features", str(features), "--models", str(tmp_path / "models"),
                                 "--predictions", str(tmp_path / "pred"), "--report", str(tmp_path / "metrics")])
    assert result.exit_code == 0, result.output


def _fusion(tmp_path: Path, params: Path, raw: Path, features: Path):
    return runner.invoke(app, ["fusion", "--params", str(params), "--raw", str(raw), "--features", str(features),
                               "--temporal", str(tmp_path / "pred"), "--models", str(tmp_path / "fusion_models"),
                               "--predictions", str(tmp_path / "fusion_pred"),
                               "--report", str(tmp_path / "metrics" / "fusion.json")])


def test_fusion_cli_writes_outputs_and_names_a_missing_model(tmp_path: Path, tiny_params_dict):
    raw, features = build_corpus(tmp_path / "corpus", au=True, unlabeled=True)
    tiny_params_dict["temporal"]["common"].update(epochs=1, hidden=8, layers=1, heads=2, threads=1)
    tiny_params_dict["fusion"].update(epochs=2, hidden=8, heads=2, threads=1)
    tiny_params_dict["fusion"]["pseudo"].update(threshold=0.2, compare=True)  # both runs, side by side
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    for task in ("va", "expr"):
        _temporal(tmp_path, params, raw, features, task)
    missing = _fusion(tmp_path, params, raw, features)
    assert missing.exit_code == 2
    assert missing.output.strip().endswith("au.h5: individual task model 'au' is missing: run `abaw temporal "
                                           "--task au` first")
    _temporal(tmp_path, params, raw, features, "au")
    result = _fusion(tmp_path, params, raw, features)
    assert result.exit_code == 0, result.output
    assert "fusion (concat, feature_feedback): val MTL" in result.output
    assert "pseudo-labels on/off: EXPR F1" in result.output
    metrics = json.loads((tmp_path / "metrics" / "fusion.json").read_text())
    assert len(metrics["curve"]) == 2 and len(metrics["pseudo_off"]["curve"]) == 2
    assert set(metrics["individual"]) == {"va", "expr", "au", "sum"}
    for run in ("on", "off"):  # each run's curve is indexed by its own epochs
        curve = (tmp_path / "metrics" / "fusion" / "plots" / "metrics" / f"pseudo_{run}" / "val_mtl.tsv").read_text()
        assert [row.split("\t")[0] for row in curve.splitlines()] == ["step", "0", "1"]
    assert (tmp_path / "fusion_models" / "fusion.pt").is_file()
    assert (tmp_path / "fusion_pred" / "fusion.h5").is_file()
