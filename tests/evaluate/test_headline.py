"""The run's headline: rows in task order from evaluate's two JSON files, and `abaw summary` printing them."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline_lib.data.errors import DataError
from pipeline_lib.evaluate.headline import read_headline
from stages.cli import app

SUMMARY = {"va": {"model": "frame-wise", "value": 0.4875}, "expr": {"model": "fusion", "value": 0.4085},
           "au": {"model": "temporal", "value": 0.5676}, "mtl_fusion": 1.4084, "mtl_best_per_task": 1.4636,
           "submissions_ok": True, "submission_files": 13}
REPORT = {"val_videos": {"va": 7, "expr": 4, "au": 6}, "unscored": {"ce": "compound"},
          "plots": ["expr_confusion.png", "au_f1.png"]}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    summary, report = tmp_path / "summary.json", tmp_path / "evaluate.json"
    summary.write_text(json.dumps(SUMMARY))
    report.write_text(json.dumps(REPORT))
    return summary, report


def test_headline_rows_follow_the_task_records(files):
    headline = read_headline(*files)
    assert headline.rows == [("VA", "CCC (mean of V, A)", "frame-wise", 0.4875, 7),
                             ("EXPR", "macro F1", "fusion", 0.4085, 4),
                             ("AU", "mean F1 over 12 AUs", "temporal", 0.5676, 6)]
    assert headline.mtl == {"fusion": 1.4084, "best per task": 1.4636} and headline.unscored == {"CE": "compound"}
    assert headline.submission_files == 13 and headline.submissions_ok and headline.plots == REPORT["plots"]


def test_missing_or_broken_files_name_the_file(tmp_path: Path, files):
    with pytest.raises(DataError, match=r"nothing\.json: missing: run the pipeline first"):
        read_headline(tmp_path / "nothing.json", files[1])
    files[1].write_text("[1, 2]")
    with pytest.raises(DataError, match=r"evaluate\.json: not a JSON object"):
        read_headline(*files)
    files[1].write_text("{")
    with pytest.raises(DataError, match=r"evaluate\.json: unreadable"):
        read_headline(*files)


def test_abaw_summary_prints_the_headline_and_fails_in_one_line(tmp_path: Path, files):
    runner = CliRunner()
    result = runner.invoke(app, ["summary", "--summary", str(files[0]), "--report", str(files[1]),
                                 "--plots", "plots/evaluate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split() == ["│", "EXPR", "│", "macro", "F1", "│", "fusion", "│", "0.4085", "│", "4", "│"]
               for line in lines), result.output
    assert "MTL (fusion): 1.4084  (VA CCC + EXPR F1 + AU F1)" in lines
    assert "CE: no validation labels; its test submission uses compound, unscored" in lines
    assert "submissions: 13 file(s) in submissions/, re-read without error" in lines
    assert "plots: plots/evaluate/expr_confusion.png, plots/evaluate/au_f1.png" in lines
    missing = runner.invoke(app, ["summary", "--summary", str(tmp_path / "none.json"), "--report", str(files[1])])
    assert missing.exit_code == 2 and missing.output.strip().count("\n") == 0 and "none.json: missing" in missing.output
