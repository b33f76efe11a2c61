"""The three outputs of `abaw predict` on a tiny synthetic video: CSV, overlay mp4, timeline PNG."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
from matplotlib.image import imread

from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, EXPR_NAMES
from pipeline_lib.predict import render
from pipeline_lib.predict.render import CSV_COLUMNS, FramePredictions, timeline_png, write_csv, write_overlay

FPS, N_FRAMES = 10, 20


def _video(path: Path, width: int = 64, height: int = 48, n_frames: int = N_FRAMES) -> Path:
    """Flat coloured frames, mpeg4 in mp4 (every PyAV build encodes it)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n_frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[...] = ((i * 37) % 200 + 30, (i * 53) % 200 + 30, (i * 71) % 200 + 30)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _decode(path: Path) -> tuple[str, np.ndarray]:
    """(codec name, (N, H, W, 3) uint8 frames)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.codec_context.name, np.stack(frames)


def _preds(n_frames: int = N_FRAMES, seed: int = 0) -> FramePredictions:
    rng = np.random.default_rng(seed)
    present = np.ones(n_frames, bool)
    present[[i for i in (0, 5, 6, 7, n_frames - 1) if i < n_frames]] = False
    boxes = np.tile(np.array([16, 14, 48, 44], np.float32), (n_frames, 1))

    def probs(c: int) -> np.ndarray:
        p = rng.random((n_frames, c)).astype(np.float32)
        return p / p.sum(1, keepdims=True)

    fields = dict(boxes=boxes, va=rng.uniform(-1, 1, (n_frames, 2)).astype(np.float32), expr=probs(len(EXPR_NAMES)),
                  au=rng.random((n_frames, len(AU_NAMES))).astype(np.float32), ce=probs(len(CE_NAMES)))
    for value in fields.values():
        value[~present] = np.nan  # faceless rows may hold anything
    return FramePredictions(fps=float(FPS), present=present, **fields)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".partial" in p.name]


def test_csv_has_the_columns_one_row_a_frame_and_blank_predictions_without_a_face(tmp_path):
    preds = _preds()
    path = write_csv(tmp_path / "out" / "predictions.csv", preds)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and len(CSV_COLUMNS) == 6 + 8 + 12 + 1 + 7
    rows = [dict(zip(CSV_COLUMNS, row)) for row in rows[1:]]
    assert len(rows) == preds.n_frames
    for i, row in enumerate(rows):
        assert int(row["frame"]) == i and row["time"] == f"{i / FPS:.3f}"
        assert row["face_present"] == str(int(preds.present[i]))
        if not preds.present[i]:
            assert all(row[c] == "" for c in CSV_COLUMNS[3:])
            continue
        assert row["expression"] == EXPR_NAMES[int(np.argmax(preds.expr[i]))]
        assert row["compound"] == CE_NAMES[int(np.argmax(preds.ce[i]))]
        assert float(row["valence"]) == pytest.approx(preds.va[i, 0], abs=5e-5)
        assert row["p_Happiness"] == f"{preds.expr[i, 4]:.4f}" and row["AU12"] == f"{preds.au[i, 6]:.4f}"
    assert _no_temp_files(path.parent)


def test_overlay_keeps_frame_count_and_size_and_draws_only_on_predicted_frames(tmp_path):
    source = _video(tmp_path / "clip.mp4")
    preds = _preds(n_frames=15)  # the video has 5 frames more: those pass through undrawn
    out = write_overlay(source, tmp_path / "overlay.mp4", preds)
    codec, frames = _decode(out)
    _, original = _decode(source)
    assert codec == ("h264" if "libx264" in av.codecs_available else "mpeg4")
    assert frames.shape == original.shape == (N_FRAMES, 48, 64, 3)
    # The top-left corner holds the V/A panel, or "no face" on faceless frames.
    change = np.abs(frames.astype(int) - original.astype(int))[:, :16, :40].mean(axis=(1, 2, 3))  # (N,)
    assert (change[:15] > 15).all() and (change[15:] < 4).all(), change.round(1)
    assert _no_temp_files(tmp_path)


def test_overlay_of_an_odd_sized_video_is_padded_to_even_and_falls_back_to_mpeg4(tmp_path, monkeypatch):
    source = _video(tmp_path / "odd.mp4", width=63, height=47, n_frames=6)
    monkeypatch.setattr(render, "ENCODERS", ("no_such_encoder", "mpeg4"))
    codec, frames = _decode(write_overlay(source, tmp_path / "overlay.mp4", _preds(n_frames=6)))
    assert codec == "mpeg4" and frames.shape == (6, 48, 64, 3)
    assert _no_temp_files(tmp_path)


def test_timeline_is_a_readable_png(tmp_path):
    path = timeline_png(tmp_path / "timeline.png", _preds(), "clip.mp4")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert _no_temp_files(tmp_path)


def test_timeline_and_csv_cope_with_a_video_without_any_face(tmp_path):
    preds = _preds()
    preds = dataclasses.replace(preds, present=np.zeros(preds.n_frames, bool))
    assert imread(timeline_png(tmp_path / "timeline.png", preds, "no faces")).ndim == 3
    lines = write_csv(tmp_path / "p.csv", preds).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + N_FRAMES and all(line.endswith("," * (len(CSV_COLUMNS) - 3)) for line in lines[1:])


@pytest.mark.parametrize("field, value", [
    ("boxes", np.zeros((N_FRAMES, 3), np.float32)),
    ("va", np.zeros((N_FRAMES - 1, 2), np.float32)),
    ("expr", np.zeros((N_FRAMES, 8), np.float64)),
    ("ce", np.zeros((N_FRAMES, 8), np.float32)),
    ("present", np.ones(N_FRAMES, np.float32)),
])
def test_a_wrong_shape_or_dtype_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}:"):
        dataclasses.replace(_preds(), **{field: value})


def test_n_frames_counts_the_rows():
    assert _preds(n_frames=7).n_frames == 7
