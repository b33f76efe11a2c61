"""`abaw corpus` through the real CLI: outputs declared in dvc.yaml exist; bad params fail in one line."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline_lib.data.prepare import load_raw
from stages.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("abaw ")


def test_corpus_builds_demo_raw_folder(tmp_path: Path, tiny_params_file: Path):
    out, report = tmp_path / "raw", tmp_path / "metrics" / "corpus.json"
    result = runner.invoke(
        app, ["corpus", "--params", str(tiny_params_file), "--out", str(out), "--report", str(report), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "corpus (demo):" in result.output
    raw = load_raw(out)
    assert raw.kind == "demo"
    metrics = json.loads(report.read_text())
    assert metrics["videos"] == len(raw.entries)
    # tiny demo: 2 train + 1 val + 1 CE train + 1 CE val labelled videos, 1 two-subject video (2 entries) ...
    assert metrics["videos_per_split"]["test"] == 1
    assert metrics["videos_per_split"]["unlabeled"] == 1
    assert sum(e.side is not None for e in raw.entries) == 2
    assert all(raw.video_file(e).is_file() for e in raw.entries)
    assert not (tmp_path / "raw.partial").exists()
    assert (out / "corpus_card.md").is_file()


def test_corpus_rejects_typo_in_params_before_any_work(tmp_path: Path, tiny_params_dict):
    tiny_params_dict["data"]["demo"]["train_vidoes"] = 3
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    out = tmp_path / "raw"
    result = runner.invoke(app, ["corpus", "--params", str(params), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "unknown key 'data.demo.train_vidoes'" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


def test_corpus_real_source_that_is_not_a_layout(tmp_path: Path, tiny_params_dict):
    tiny_params_dict["data"]["source"] = str(tmp_path / "affwild2")
    (tmp_path / "affwild2" / "videos").mkdir(parents=True)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    result = runner.invoke(app, ["corpus", "--params", str(params), "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2
    assert "missing annotations/" in result.output
