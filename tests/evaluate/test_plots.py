"""Evaluate-stage plots: real PNGs written atomically, invalid markers dropped, clear errors on bad input."""

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from pipeline_lib.evaluate.plots import (
    au_f1_bars_png,
    confusion_counts,
    confusion_matrix_png,
    va_scatter_png,
    va_timeseries_png,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ("a", "b", "c")


def _assert_png(path: Path, expected: Path) -> None:
    assert path == expected and path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert not list(path.parent.glob("*.partial*"))


def _va(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.uniform(-1, 1, (n, 2))
    return np.clip(true + rng.normal(0, 0.2, (n, 2)), -1, 1), true


def test_confusion_counts_drop_invalid_frames_exactly():
    true = np.array([0, 0, 1, -1, 2, 2, -1, 1])
    pred = np.array([0, 1, 1, 2, 2, 0, 0, 1])
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(confusion_counts(true, pred, 3), expected)
    # The (T, 15) label layout stores classes as floats.
    np.testing.assert_array_equal(confusion_counts(true.astype(np.float32), pred, 3), expected)


@pytest.mark.parametrize(("true", "pred", "match"), [
    ([-1, -1], [0, 1], "no annotated frames"),
    ([0, 1, 2], [0, 1], "equal shapes"),
    ([[0, 1]], [[0, 1]], r"shape \(N,\)"),
    ([0, 3], [0, 1], "0..2"),
    ([0, 1], [0, 5], "0..2"),
    ([0.5, 1], [0, 1], "integer"),
])
def test_confusion_counts_reject_bad_input(true, pred, match):
    with pytest.raises(ValueError, match=match):
        confusion_counts(np.array(true), np.array(pred), 3)


def test_confusion_matrix_png(tmp_path: Path):
    out = tmp_path / "plots" / "expr" / "confusion.png"
    written = confusion_matrix_png(np.array([0, 1, 2, -1, 1]), np.array([0, 2, 2, 1, 1]), NAMES, out, "expr")
    _assert_png(written, out)


def test_confusion_matrix_png_all_invalid_raises_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "confusion.png"
    with pytest.raises(ValueError, match="no annotated frames"):
        confusion_matrix_png(np.full(4, -1), np.zeros(4, int), NAMES, out, "expr")
    assert not out.exists()


def test_au_f1_bars_png(tmp_path: Path):
    scores = {"temporal": {"AU1": 0.4, "AU2": 0.7, "AU4": 0.1}, "fusion": {"AU4": 0.3, "AU1": 0.5, "AU2": 0.9}}
    out = tmp_path / "au_f1.png"
    _assert_png(au_f1_bars_png(scores, out, "AU F1"), out)


@pytest.mark.parametrize(("scores", "match"), [
    ({}, "at least one model"),
    ({"m": {}}, "no AU scores"),
    ({"m": {"AU1": 0.4, "AU2": 0.5}, "n": {"AU1": 0.3}}, "'n' lacks"),
])
def test_au_f1_bars_png_rejects_bad_input(tmp_path: Path, scores, match):
    with pytest.raises(ValueError, match=match):
        au_f1_bars_png(scores, tmp_path / "au.png", "AU F1")


def test_va_scatter_png(tmp_path: Path):
    pred, true = _va(50)
    true[::7, 0] = -5.0
    out = tmp_path / "va" / "scatter.png"
    _assert_png(va_scatter_png(pred, true, out, "VA"), out)


def test_va_scatter_png_subsamples_large_input(tmp_path: Path):
    pred, true = _va(20_001)
    out = tmp_path / "scatter.png"
    _assert_png(va_scatter_png(pred, true, out, "VA"), out)


def test_va_scatter_png_one_empty_column_still_draws_the_other(tmp_path: Path):
    pred, true = _va(30)
    true[:, 1] = -5.0
    out = tmp_path / "scatter.png"
    _assert_png(va_scatter_png(pred, true, out, "VA"), out)
    true[:, 0] = -5.0
    with pytest.raises(ValueError, match="no annotated"):
        va_scatter_png(pred, true, tmp_path / "empty.png", "VA")


@pytest.mark.parametrize(("pred", "true"), [
    (np.zeros((5, 2)), np.zeros((4, 2))),
    (np.zeros((5, 3)), np.zeros((5, 3))),
    (np.zeros(5), np.zeros(5)),
    (np.zeros((0, 2)), np.zeros((0, 2))),
])
def test_va_plots_reject_bad_shapes(tmp_path: Path, pred, true):
    with pytest.raises(ValueError):
        va_scatter_png(pred, true, tmp_path / "s.png", "VA")
    with pytest.raises(ValueError):
        va_timeseries_png("vid", pred, true, tmp_path / "t.png")


def test_va_timeseries_png(tmp_path: Path):
    pred, true = _va(40)
    true[10:20] = -5.0
    smoothed = np.convolve(pred[:, 0], np.ones(5) / 5, mode="same")[:, None].repeat(2, axis=1)
    for name, smooth in (("raw.png", None), ("smoothed.png", smoothed)):
        out = tmp_path / "ts" / name
        _assert_png(va_timeseries_png("video_01", pred, true, out, smoothed=smooth), out)


def test_va_timeseries_png_rejects_mismatched_smoothed(tmp_path: Path):
    pred, true = _va(10)
    with pytest.raises(ValueError, match="smoothed"):
        va_timeseries_png("vid", pred, true, tmp_path / "t.png", smoothed=np.zeros((9, 2)))
