"""Linear probe: frames selection and an F1 that separates informative from useless features."""

import numpy as np
import pytest

from pipeline_lib.features.probe import expr_frames, linear_probe_f1, probe_rows, split_stride


def _video(t: int, informative: bool, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.full((t, 15), -1, np.float32)
    labels[:, 2] = rng.integers(0, 8, t)
    labels[:3, 2] = -1  # unlabelled frames
    features = rng.normal(0, 1, (t, 16)).astype(np.float16)
    if informative:
        features[np.arange(t), labels[:, 2].astype(int).clip(0) % 16] += 4
    valid = np.ones(t, bool)
    valid[-2:] = False  # no face
    return features, valid, labels


def test_expr_frames_keeps_labelled_face_frames_with_stride():
    x, y = expr_frames([_video(20, True, 0)], stride=1)
    assert x.shape == (15, 16) and x.dtype == np.float32 and y.min() >= 0
    assert len(expr_frames([_video(20, True, 0)], stride=2)[0]) == 8


def test_split_stride_keeps_a_split_within_max_frames():
    labels = [_video(20, True, k)[2] for k in range(3)]  # 17 labelled frames each: 51 in the split
    assert split_stride(labels, stride=1, max_frames=None) == 1
    assert split_stride(labels, stride=2, max_frames=100) == 2  # small enough: the given stride
    assert split_stride(labels, stride=1, max_frames=17) == 3
    kept = sum(len(probe_rows(*_video(20, True, k), stride=3)[1]) for k in range(3))
    assert kept == 15 <= 17  # 5 of each video's 15 labelled face frames
    assert split_stride(labels, stride=1, max_frames=51) == 1


def test_informative_features_beat_noise():
    good_train, good_val = expr_frames([_video(400, True, 1)]), expr_frames([_video(200, True, 2)])
    bad_train, bad_val = expr_frames([_video(400, False, 1)]), expr_frames([_video(200, False, 2)])
    assert linear_probe_f1(*good_train, *good_val) > 0.9
    assert linear_probe_f1(*bad_train, *bad_val) < 0.3


def test_probe_needs_labelled_frames():
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="linear probe needs"):
        linear_probe_f1(*empty, *empty)
