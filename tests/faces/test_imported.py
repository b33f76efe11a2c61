"""Importing Aff-Wild2 cropped_aligned folders: gaps, order, resizing, bad files, streaming, atomicity."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline_lib.faces.imported import ImportReport, import_cropped_aligned
from pipeline_lib.faces.store import read_faces, read_provenance

PROV = {"source": "cropped_aligned", "video": "v"}


def _colour(k: int) -> tuple[int, int, int]:
    """A distinct solid colour per 1-based file number; flat enough to survive JPEG within a level or two."""
    return (20 * k % 256, 255 - 20 * k % 256, 100)


def _write(folder: Path, k: int, size: int = 112, ext: str = "jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), _colour(k)).save(folder / f"{k:05d}.{ext}", quality=95)


def _import(folder: Path, out: Path, n_frames: int, **kwargs) -> ImportReport:
    return import_cropped_aligned(folder, out, n_frames, PROV, **kwargs)


def test_gaps_are_absent_zero_crops_and_order_is_kept(tmp_path: Path):
    folder = tmp_path / "v"
    for k in (1, 2, 4, 6):  # frames 0, 1, 3, 5 present; 2 and 4 gaps
        _write(folder, k)
    report = _import(folder, tmp_path / "v.h5", 6, batch_size=4)
    track = read_faces(tmp_path / "v.h5")
    assert track.present.tolist() == [True, True, False, True, False, True]
    assert not track.filled.any()
    assert np.isnan(track.boxes).all() and np.isnan(track.landmarks).all()
    assert track.scores.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert track.crops.shape == (6, 112, 112, 3)
    assert not track.crops[[2, 4]].any()
    for t in (0, 1, 3, 5):
        means = track.crops[t].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(means, _colour(t + 1), atol=2)
    assert (report.frames_found, report.frames_total, report.missing) == (4, 6, 2)
    assert report.unreadable == [] and report.ignored == [] and report.error is None
    assert read_provenance(tmp_path / "v.h5") == PROV


def test_length_extends_to_highest_file_index(tmp_path: Path):
    _write(tmp_path / "v", 1)
    _write(tmp_path / "v", 9)
    report = _import(tmp_path / "v", tmp_path / "v.h5", 3)
    track = read_faces(tmp_path / "v.h5")
    assert track.n_frames == 9 == report.frames_total
    assert np.flatnonzero(track.present).tolist() == [0, 8]
    assert report.missing == 7


def test_length_extends_to_n_frames(tmp_path: Path):
    _write(tmp_path / "v", 2)
    report = _import(tmp_path / "v", tmp_path / "v.h5", 10)
    track = read_faces(tmp_path / "v.h5")
    assert track.n_frames == 10 == report.frames_total
    assert np.flatnonzero(track.present).tolist() == [1]
    assert (report.frames_found, report.missing) == (1, 9)


def test_other_size_is_resized(tmp_path: Path):
    _write(tmp_path / "v", 1, size=200)
    _import(tmp_path / "v", tmp_path / "v.h5", 1)
    track = read_faces(tmp_path / "v.h5")
    assert track.crops.shape == (1, 112, 112, 3)
    np.testing.assert_allclose(track.crops[0].reshape(-1, 3).mean(axis=0), _colour(1), atol=2)


def test_custom_crop_size(tmp_path: Path):
    _write(tmp_path / "v", 1)
    _import(tmp_path / "v", tmp_path / "v.h5", 2, crop_size=64)
    assert read_faces(tmp_path / "v.h5").crops.shape == (2, 64, 64, 3)


@pytest.mark.parametrize(("mode", "ext"), [("L", "jpg"), ("RGBA", "png")])
def test_grey_and_rgba_become_rgb(tmp_path: Path, mode: str, ext: str):
    folder = tmp_path / "v"
    folder.mkdir()
    colour = 77 if mode == "L" else (10, 200, 30, 128)
    Image.new(mode, (112, 112), colour).save(folder / f"00001.{ext}")
    _import(folder, tmp_path / "v.h5", 1)
    crop = read_faces(tmp_path / "v.h5").crops[0]
    assert crop.shape == (112, 112, 3)
    expected = (77, 77, 77) if mode == "L" else (10, 200, 30)
    np.testing.assert_allclose(crop.reshape(-1, 3).mean(axis=0), expected, atol=1)


def test_corrupt_files_are_unreadable_and_absent(tmp_path: Path):
    folder = tmp_path / "v"
    _write(folder, 1)
    (folder / "00002.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    good = (folder / "00001.jpg").read_bytes()
    (folder / "00003.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    report = _import(folder, tmp_path / "v.h5", 3)
    track = read_faces(tmp_path / "v.h5")
    assert track.present.tolist() == [True, False, False]
    assert not track.crops[1:].any()
    assert track.scores.tolist() == [1.0, 0.0, 0.0]
    assert report.unreadable == ["00002.jpg", "00003.jpg"]
    assert (report.frames_found, report.missing) == (1, 2)


def test_non_image_files_are_ignored_and_listed(tmp_path: Path):
    folder = tmp_path / "v"
    _write(folder, 1)
    _write(folder, 2, ext="png")
    for name in ("notes.txt", "00003.bmp", "a00004.jpg", ".DS_Store", "00000.jpg"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    report = _import(folder, tmp_path / "v.h5", 2)
    assert read_faces(tmp_path / "v.h5").present.tolist() == [True, True]
    assert report.ignored == sorted([".DS_Store", "00000.jpg", "00003.bmp", "a00004.jpg", "notes.txt", "sub"])
    assert report.unreadable == [] and report.frames_total == 2


def test_ignored_list_is_capped(tmp_path: Path):
    folder = tmp_path / "v"
    folder.mkdir()
    for i in range(15):
        (folder / f"junk{i:02d}.txt").write_bytes(b"x")
    report = _import(folder, tmp_path / "v.h5", 0)
    assert report.ignored == [f"junk{i:02d}.txt" for i in range(10)]
    assert read_faces(tmp_path / "v.h5").n_frames == 0


def test_missing_folder_reports_error_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "out" / "v.h5"
    report = _import(tmp_path / "nope", out, 7)
    assert report.error is not None and "nope" in report.error
    assert (report.frames_found, report.frames_total, report.missing) == (0, 7, 7)
    assert not out.exists() and not (tmp_path / "out").exists()
    json.dumps(report.as_dict())


def test_on_frames_sums_to_track_length_in_batches(tmp_path: Path):
    for k in (1, 5, 11):
        _write(tmp_path / "v", k)
    calls: list[int] = []
    report = _import(tmp_path / "v", tmp_path / "v.h5", 8, batch_size=4, on_frames=calls.append)
    assert calls == [4, 4, 3]
    assert sum(calls) == report.frames_total == 11


def test_no_partial_file_remains_and_report_is_json(tmp_path: Path):
    _write(tmp_path / "v", 1)
    (tmp_path / "v" / "00002.jpg").write_bytes(b"garbage")
    out = tmp_path / "faces" / "v.h5"
    report = _import(tmp_path / "v", out, 3)
    assert sorted(p.name for p in out.parent.iterdir()) == ["v.h5"]
    d = json.loads(json.dumps(report.as_dict()))
    assert {k: d[k] for k in ("frames_found", "frames_total", "missing", "unreadable", "ignored", "error")} == {
        "frames_found": 1, "frames_total": 3, "missing": 2, "unreadable": ["00002.jpg"], "ignored": [], "error": None}
    assert isinstance(d["seconds"], float)


def test_failure_mid_import_leaves_no_file(tmp_path: Path):
    for k in range(1, 6):
        _write(tmp_path / "v", k)
    out = tmp_path / "faces" / "v.h5"

    def boom(_: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        _import(tmp_path / "v", out, 5, batch_size=2, on_frames=boom)
    assert list(out.parent.iterdir()) == []
