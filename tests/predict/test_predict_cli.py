"""`abaw predict` on bad input: one-line errors before any model is loaded. (The full chain on a fresh clip and
on a face-less video runs in tests/stages/test_dvc_pipeline.py, where trained models exist.)"""

from pathlib import Path

from typer.testing import CliRunner

from stages.cli import app

runner = CliRunner()


def test_missing_path_is_one_line(tmp_path: Path, tiny_params_file: Path):
    result = runner.invoke(app, ["predict", str(tmp_path / "absent.mp4"), "--params", str(tiny_params_file),
                                 "--models", str(tmp_path / "no-models")])
    assert result.exit_code == 2
    assert "error:" in result.output and "absent.mp4: no such file" in result.output
    assert "Traceback" not in result.output


def test_non_video_file_is_one_line(tmp_path: Path, tiny_params_file: Path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    result = runner.invoke(app, ["predict", str(text), "--params", str(tiny_params_file),
                                 "--models", str(tmp_path / "no-models")])
    assert result.exit_code == 2
    assert "notes.mp4: not a readable video" in result.output and "Traceback" not in result.output
    assert not (Path("predictions") / "notes").exists()
