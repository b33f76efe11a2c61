"""Per-task data: labels and masks per task, NaN features named, a task without training labels refused."""

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.errors import DataError
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.train.task_data import check_finite, load_task_data, task_labels
from tests.train.conftest import build_corpus


def test_task_labels_pick_columns_and_mask_invalid_markers():
    labels = np.full((3, 15), -1, np.float32)
    labels[:, :2] = [[0.5, -5], [-5, -5], [0.25, 0.5]]
    labels[:, 2] = [3, -1, 0]
    labels[0, 3:] = 1
    va, va_mask = task_labels(labels, "va")
    assert va.tolist() == [[0.5, -5], [-5, -5], [0.25, 0.5]] and va_mask.tolist() == [
        [True, False], [False, False], [True, True]]
    expr, expr_mask = task_labels(labels, "expr")
    assert expr[:, 0].tolist() == [3, -1, 0] and expr_mask[:, 0].tolist() == [True, False, True]
    au, au_mask = task_labels(labels, "au")
    assert au.shape == (3, 12) and au_mask.sum() == 12 and au_mask[0].all()


def test_load_task_data_splits_and_masks(corpus):
    raw, features = corpus
    data = load_task_data(raw, FeatureStore(features, mode="r"), "expr", "mae")
    assert [v.name for v in data.train] == ["tr1", "tr2", "tr3"] and [v.name for v in data.val] == ["va1"]
    assert sorted(v.name for v in data.every) == ["te1", "tr1", "tr2", "tr3", "va1"]
    assert data.entries["te1"].split_of("expr") == "test" and data.width == 8
    tr1 = data.train[0]
    assert tr1.labels.shape == (48, 1) and not tr1.label_mask[0, 0] and tr1.label_mask[1:, 0].all()
    assert not next(v for v in data.every if v.name == "te1").label_mask.any()  # test videos: no labels
    va = load_task_data(raw, FeatureStore(features, mode="r"), "va", "mae")
    assert va.train[0].labels.shape == (48, 2) and not va.train[0].label_mask[1].any()


def test_a_video_trains_one_task_and_validates_another(tmp_path):
    """x1 is in VA's training split and EXPR's validation split: it trains VA and is scored for EXPR only."""
    raw, features = build_corpus(tmp_path, cross=True)
    store = FeatureStore(features, mode="r")
    va = load_task_data(raw, store, "va", "mae")
    expr = load_task_data(raw, store, "expr", "mae")
    assert [v.name for v in va.train] == ["tr1", "tr2", "tr3", "x1"] and [v.name for v in va.val] == ["va1"]
    assert [v.name for v in expr.train] == ["tr1", "tr2", "tr3"] and [v.name for v in expr.val] == ["va1", "x1"]
    x1 = next(v for v in expr.val if v.name == "x1")
    assert x1.label_mask[1:].all() and not x1.label_mask[0].any()  # its EXPR labels, read from Validation_Set


def test_loaded_features_are_centred_per_video(corpus):
    raw, features = corpus
    store = FeatureStore(features, mode="r")
    for video in load_task_data(raw, store, "expr", "mae").every:
        stored, valid = store.read("mae", video.name)
        assert video.features.dtype == np.float16 and video.valid.tolist() == valid.tolist()
        assert isinstance(video.features, np.memmap) and not video.features.flags.writeable  # never all in RAM
        expected = stored.astype(np.float32) - stored[valid].astype(np.float32).mean(axis=0)
        np.testing.assert_allclose(video.features[valid], expected[valid], atol=2e-3)
        assert not video.features[~valid].any()


def test_task_without_validation_labels_names_task_and_folder(tmp_path):
    raw, features = build_corpus(tmp_path)
    for path in (raw / "annotations" / "EXPR_Recognition_Challenge" / "Validation_Set").glob("*.txt"):
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0]] + ["-1"] * (len(lines) - 1)) + "\n")
    with pytest.raises(DataError, match=r"EXPR_Recognition_Challenge/Validation_Set: task expr: no labelled "
                                        r"validation frame with a face \(1 EXPR validation video\(s\)\)"):
        load_task_data(raw, FeatureStore(features, mode="r"), "expr", "mae")


def test_task_without_training_labels_names_task_and_folder(corpus):
    raw, features = corpus
    with pytest.raises(DataError, match=r"AU_Detection_Challenge/Train_Set: task au: no labelled training frame"):
        load_task_data(raw, FeatureStore(features, mode="r"), "au", "mae")


def test_missing_extractor_is_a_clear_error(corpus):
    raw, features = corpus
    with pytest.raises(DataError, match="run `abaw features` with extractor 'finetuned_expr'"):
        load_task_data(raw, FeatureStore(features, mode="r"), "expr", "finetuned_expr")


def test_nan_features_are_reported_with_the_video(tmp_path):
    features = np.zeros((4, 3), np.float32)
    features[2, 1] = np.nan
    valid = np.array([True, False, True, True])
    with pytest.raises(DataError, match=r"vid: 1 frame\(s\) with NaN/inf features \(first at frame 2\)"):
        check_finite("vid", features, valid, Path("x"))
    features[1] = np.nan  # face-less frames are never read
    valid[2] = False
    check_finite("vid", features, valid, Path("x"))
