"""`abaw faces` through the real CLI on a tiny demo corpus: stores, metrics, resume, shards, bad input, import."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from pipeline_lib.config import parse_params
from pipeline_lib.data.prepare import prepare_raw
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.store import read_faces, read_provenance
from stages.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory, request) -> Path:
    from tests.conftest import TINY_DEMO

    base = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    base["data"]["demo"].update(TINY_DEMO)
    out = tmp_path_factory.mktemp("corpus") / "raw"
    prepare_raw(out, parse_params(base).data, seed=0, workers=1)
    return out


def _params(tmp_path: Path, tiny_params_dict, **faces) -> Path:
    tiny_params_dict["faces"].update(faces)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params_dict))
    return path


def _faces(tmp_path: Path, raw: Path, params: Path, *extra: str):
    args = ["faces", "--params", str(params), "--raw", str(raw), "--out", str(tmp_path / "faces"),
            "--report", str(tmp_path / "m" / "faces.json"), "--videos-report", str(tmp_path / "m" / "videos.json"),
            "--plot", str(tmp_path / "p" / "samples.png"), "--no-progress", *extra]
    return runner.invoke(app, args)


def test_faces_stage_writes_a_store_per_subject_and_resumes(tmp_path, raw_dir, tiny_params_dict):
    params = _params(tmp_path, tiny_params_dict)
    result = _faces(tmp_path, raw_dir, params)
    assert result.exit_code == 0, result.output
    entries = load_raw(raw_dir).entries
    stores = {p.stem for p in (tmp_path / "faces").glob("*.h5")}
    assert stores == {e.name for e in entries}
    metrics = json.loads((tmp_path / "m" / "faces.json").read_text())
    assert metrics["processed"] == len({e.video_path for e in entries}) and metrics["resumed"] == 0
    assert metrics["truth"]["detection_rate"] >= 0.95 and metrics["truth"]["false_crops"] == 0
    assert metrics["frames_per_second"] > 0 and metrics["problems"] == {}
    assert (tmp_path / "p" / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    videos = json.loads((tmp_path / "m" / "videos.json").read_text())
    assert set(videos) == {Path(e.video_path).name for e in entries}
    two = [e for e in entries if e.side == "left"][0]
    left, right = (read_faces(tmp_path / "faces" / f"{two.name[:-5]}_{side}.h5") for side in ("left", "right"))
    both = left.present & right.present
    assert both.any() and (left.boxes[both, 0] < right.boxes[both, 0]).all()  # each side keeps its own face

    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "faces").glob("*.h5")}
    again = _faces(tmp_path, raw_dir, params)
    assert again.exit_code == 0 and f"0 processed, {metrics['processed']} already done" in again.output
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "faces").glob("*.h5")}
    resumed = json.loads((tmp_path / "m" / "faces.json").read_text())
    assert resumed["truth"] == metrics["truth"]  # figures of skipped videos come from their stores

    changed = _faces(tmp_path, raw_dir, _params(tmp_path, tiny_params_dict, keyframe_interval=5))
    assert changed.exit_code == 0 and "0 already done" in changed.output  # new settings: every store redone


def test_shards_split_the_video_files_and_together_cover_them(tmp_path, raw_dir, tiny_params_dict):
    params = _params(tmp_path, tiny_params_dict)
    names = []
    for shard in ("0/2", "1/2"):
        result = _faces(tmp_path / shard.replace("/", "of"), raw_dir, params, "--shard", shard)
        assert result.exit_code == 0, result.output
        names.append({p.stem for p in (tmp_path / shard.replace("/", "of") / "faces").glob("*.h5")})
    assert names[0] and names[1] and not names[0] & names[1]
    assert names[0] | names[1] == {e.name for e in load_raw(raw_dir).entries}


@pytest.mark.parametrize("shard", ["2/2", "x", "1/0"])
def test_bad_shard_is_one_line(tmp_path, raw_dir, tiny_params_dict, shard):
    result = _faces(tmp_path, raw_dir, _params(tmp_path, tiny_params_dict), "--shard", shard)
    assert result.exit_code == 2 and "--shard" in result.output and "Traceback" not in result.output


def _corrupt_copy(raw_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    video = sorted((raw / "videos").glob("*.mp4"))[0]
    video.write_bytes(video.read_bytes()[:1000])
    return raw, video.name


def test_a_broken_video_is_reported_and_only_fails_when_strict(tmp_path, raw_dir, tiny_params_dict):
    raw, broken = _corrupt_copy(raw_dir, tmp_path)
    result = _faces(tmp_path, raw, _params(tmp_path, tiny_params_dict))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m" / "faces.json").read_text())
    assert list(metrics["problems"]) == [broken]
    assert f"warning: {broken}: {broken}: decoding stopped after 0 frames" in result.output
    strict = _faces(tmp_path / "strict", raw, _params(tmp_path, tiny_params_dict, strict=True))
    assert strict.exit_code == 2 and "faces.strict is on" in strict.output and "Traceback" not in strict.output
    assert (tmp_path / "strict" / "m" / "faces.json").is_file()  # the report is written before failing


def test_cropped_aligned_frames_are_imported_where_present(tmp_path, raw_dir, tiny_params_dict):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    entry = [e for e in load_raw(raw).entries if e.side is None][0]
    folder = raw / "cropped_aligned" / entry.name
    folder.mkdir(parents=True)
    for k in range(entry.n_frames):
        if k % 4 != 1:  # every 4th frame missing, as in the official release's gaps
            Image.fromarray(np.full((112, 112, 3), 100 + k % 50, np.uint8)).save(folder / f"{k + 1:05d}.jpg")
    result = _faces(tmp_path, raw, _params(tmp_path, tiny_params_dict, source="cropped_aligned"))
    assert result.exit_code == 0, result.output
    track = read_faces(tmp_path / "faces" / f"{entry.name}.h5")
    assert read_provenance(tmp_path / "faces" / f"{entry.name}.h5")["method"] == "cropped_aligned"
    assert track.present.tolist() == [k % 4 != 1 for k in range(entry.n_frames)]
    others = [p for p in (tmp_path / "faces").glob("*.h5") if p.stem != entry.name]
    assert others and all(read_provenance(p)["method"] == "detect" for p in others)
    metrics = json.loads((tmp_path / "m" / "faces.json").read_text())
    assert any("no cropped_aligned folder" in p for ps in metrics["problems"].values() for p in ps)


def test_two_worker_processes_write_the_same_stores(tmp_path, raw_dir, tiny_params_dict):
    params = _params(tmp_path, tiny_params_dict)
    one = _faces(tmp_path / "one", raw_dir, params)
    two = _faces(tmp_path / "two", raw_dir, params, "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    for path in sorted((tmp_path / "one" / "faces").glob("*.h5")):
        a, b = read_faces(path), read_faces(tmp_path / "two" / "faces" / path.name)
        np.testing.assert_array_equal(a.present, b.present)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
