"""Per-video centring: the face frames' mean removed, no-face rows kept at 0, dtype kept."""

import numpy as np
import pytest

from pipeline_lib.features.normalize import center_per_video, feature_stats
from pipeline_lib.features.windows import VideoArrays


def test_face_frames_lose_their_mean_and_absent_rows_stay_zero():
    features = np.array([[1, 10], [3, 20], [0, 0], [5, 30]], np.float16)
    valid = np.array([True, True, False, True])
    centred = center_per_video(features, valid)
    assert centred.dtype == np.float16
    assert centred.tolist() == [[-2, -10], [0, 0], [0, 0], [2, 10]]


def test_a_constant_offset_per_video_is_removed():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(50, 8)).astype(np.float32)
    valid = rng.random(50) > 0.2
    one, other = center_per_video(shared + 3.0, valid), center_per_video(shared - 7.0, valid)
    np.testing.assert_allclose(one, other, atol=1e-5)
    np.testing.assert_allclose(one[valid].mean(axis=0), 0.0, atol=1e-5)


def test_a_video_without_faces_is_unchanged_and_not_aliased():
    features = np.zeros((4, 3), np.float16)
    centred = center_per_video(features, np.zeros(4, bool))
    assert centred.tolist() == features.tolist() and centred is not features


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="expected features"):
        center_per_video(np.zeros((4, 3), np.float32), np.ones(3, bool))


def test_feature_stats_equal_numpy_on_the_joined_rows_to_the_bit_without_joining():
    rng = np.random.default_rng(3)
    videos = []
    for k, t in enumerate((1, 300, 0, 57, 1000)):
        features = (rng.normal(size=(t, 33)) * rng.uniform(0.1, 40) + rng.uniform(-9, 9)).astype(np.float16)
        videos.append(VideoArrays(f"v{k}", features, rng.random(t) < 0.8, np.zeros((t, 1), np.float32),
                                  np.zeros((t, 1), bool)))
    videos[1].features[:, 4] = 2.0  # a constant column: std floored at 1e-3
    rows = np.concatenate([v.features[v.valid].astype(np.float32) for v in videos])  # (N, D)
    mean, std = feature_stats(videos)
    assert mean.numpy().tobytes() == rows.mean(axis=0).tobytes()
    assert std.numpy().tobytes() == np.maximum(rows.std(axis=0), 1e-3).tobytes()
