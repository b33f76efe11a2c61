"""`abaw corpus` through the real CLI: outputs declared in dvc.yaml exist; bad params fail in one line."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline_lib.data.raw import load_raw
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
    assert all(metrics["tasks"][task]["test"]["videos"] == 1 for task in ("VA", "EXPR", "AU", "CE"))
    assert metrics["unlabeled"]["videos"] == 1
    # ... and 1 cross-task video: a training video whose VA labels are in the validation split
    assert metrics["cross_task"]["videos"] == 1 and metrics["cross_task"]["pairs"] == {"EXPR train/VA val": 1,
                                                                                      "AU train/VA val": 1}
    assert metrics["tasks"]["VA"]["val"]["videos"] == 2 and metrics["tasks"]["EXPR"]["val"]["videos"] == 1
    assert "in one task's training split and another's validation split: 1 video(s)" in result.output
    assert "disk: videos" in result.output and "feature store ~" in result.output
    assert sum(e.side is not None for e in raw.entries) == 2
    assert all(raw.video_file(e).is_file() for e in raw.entries)
    assert not (tmp_path / "raw.partial").exists()
    assert (out / "corpus_card.md").is_file()


def test_corpus_rejects_typo_in_params_before_any_work(tmp_path: Path, tiny_params_dict):
    tiny_params_dict["data"]["demo"]["train_vidoes"] = 3
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    out = tmp_path / "raw"
    result = runner.invoke(app, ["corpus", "--params", str(params), "--out", str(out),
                                 "--report", str(tmp_path / "corpus.json")])
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
    result = runner.invoke(app, ["corpus", "--params", str(params), "--out", str(tmp_path / "raw"),
                                 "--report", str(tmp_path / "corpus.json")])
    assert result.exit_code == 2
    assert "missing annotations/" in result.output


def test_corpus_import_with_a_broken_annotation_file_names_file_and_line(tmp_path: Path, tiny_params_dict):
    from pipeline_lib.data.demo.clip import generate_clip

    root = tmp_path / "affwild2"
    for name in ("v1", "v2"):
        generate_clip(root / "videos" / f"{name}.mp4", seed=1, seconds=0.4, fps=10.0, width=64, height=64)
    good = root / "annotations" / "EXPR_Recognition_Challenge" / "Train_Set" / "v2.txt"
    good.parent.mkdir(parents=True)
    good.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n4\n4\n5\n")
    bad = root / "annotations" / "EXPR_Recognition_Challenge" / "Train_Set" / "v1.txt"
    bad.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n4\nnine\n")
    tiny_params_dict["data"]["source"] = str(root)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    result = runner.invoke(app, ["corpus", "--params", str(params), "--out", str(tmp_path / "raw"),
                                 "--report", str(tmp_path / "corpus.json")])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert f"{bad}:4:" in warning and "not an integer: 'nine'" in warning
    assert "EXPR labels of 'v1' skipped" in warning
    entries = {e.name: e for e in load_raw(tmp_path / "raw").entries}
    # nothing else is lost: v1, a training video, stays for pretraining as an unlabelled one
    assert entries["v1"].unlabeled and entries["v2"].tasks == ("EXPR",)
