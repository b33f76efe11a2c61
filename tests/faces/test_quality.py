"""Quality metrics: crop-scale distances, jitter, eye roll, truth comparison and sample grids.

Synthetic fixtures only (no data/): the ArcFace template as reference makes the
crop transform the identity, so expected values are exact.
"""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from pipeline_lib.faces.align import template_for
from pipeline_lib.faces.quality import (
    compare_to_truth,
    crop_scale_distance,
    crop_scale_max_distance,
    eye_roll_degrees,
    landmark_jitter,
    pick_samples,
    save_sample_grid,
)

TEMPLATE = template_for(112)  # (5, 2)


def _repeat(points: np.ndarray, t: int) -> np.ndarray:
    return np.repeat(np.asarray(points, dtype=np.float64)[None], t, axis=0)  # (T, 5, 2)


def _moved(points: np.ndarray, angle_deg: float = 0.0, scale: float = 1.0,
           shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    return SimilarityTransform(scale=scale, rotation=np.deg2rad(angle_deg), translation=shift)(points)


# --- crop_scale_distance ---------------------------------------------------------------------------------------

def test_identical_landmarks_have_zero_distance():
    frames = _repeat(_moved(TEMPLATE, 23, 2.7, (140, 35)), 4)
    np.testing.assert_allclose(crop_scale_distance(frames, frames), 0.0, atol=1e-9)
    np.testing.assert_allclose(crop_scale_max_distance(frames, frames), 0.0, atol=1e-9)


def test_known_shift_at_identity_scale():
    reference = _repeat(TEMPLATE, 2)
    landmarks = reference.copy()
    landmarks[0] += (3.0, 4.0)  # every point 5 px away
    landmarks[1, 2] += (0.0, 10.0)  # only the nose, 10 px
    distance = crop_scale_distance(landmarks, reference)
    assert distance.dtype == np.float64 and distance.shape == (2,)
    np.testing.assert_allclose(distance, [5.0, 2.0], atol=1e-9)
    np.testing.assert_allclose(crop_scale_max_distance(landmarks, reference), [5.0, 10.0], atol=1e-9)


def test_distance_is_in_crop_pixels_not_frame_pixels():
    # The same face twice as big in the frame, shifted 6 frame px: 3 crop px.
    reference = _repeat(_moved(TEMPLATE, 0, 2.0, (50, 20)), 1)
    np.testing.assert_allclose(crop_scale_distance(reference + (6.0, 0.0), reference), [3.0], atol=1e-9)


def test_distance_nan_where_either_frame_has_nan():
    reference = _repeat(TEMPLATE, 3)
    landmarks = reference + (3.0, 4.0)
    landmarks[1, 4, 0] = np.nan
    reference[2] = np.nan
    distance = crop_scale_distance(landmarks, reference)
    assert distance[0] == pytest.approx(5.0)
    assert np.isnan(distance[1]) and np.isnan(distance[2])
    assert np.isnan(crop_scale_max_distance(landmarks, reference)[1:]).all()


def test_distance_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        crop_scale_distance(_repeat(TEMPLATE, 3), _repeat(TEMPLATE, 2))


# --- landmark_jitter --------------------------------------------------------------------------------------------

def test_constant_velocity_has_no_jitter():
    t = np.arange(30, dtype=np.float64)[:, None, None]
    landmarks = _moved(TEMPLATE, 15, 1.8, (60, 40))[None] + t * np.array([2.5, -1.25])  # (30, 5, 2)
    assert landmark_jitter(landmarks, np.ones(30, bool)) < 1e-6


def test_alternating_noise_gives_four_times_amplitude_in_crop_pixels():
    signs = np.where(np.arange(10) % 2 == 0, 1.0, -1.0)[:, None, None]
    noise = signs * np.array([1.0, 0.0])  # +/-1 px in x
    # At identity scale: |e[t+1] - 2e[t] + e[t-1]| = 4 px for every point.
    assert landmark_jitter(_repeat(TEMPLATE, 10) + noise, np.ones(10, bool)) == pytest.approx(4.0)
    # A face twice as big in the frame: the same frame noise is half as much crop.
    assert landmark_jitter(_repeat(TEMPLATE * 2.0, 10) + noise, np.ones(10, bool)) == pytest.approx(2.0)


def test_jitter_uses_only_runs_of_three_present_frames():
    signs = np.where(np.arange(7) % 2 == 0, 1.0, -1.0)[:, None, None]
    landmarks = _repeat(TEMPLATE, 7) + signs * np.array([1.0, 0.0])
    landmarks[3] += 100.0  # a wild frame that must be excluded with its neighbours' windows
    present = np.array([1, 1, 1, 0, 1, 1, 1], bool)
    assert landmark_jitter(landmarks, present) == pytest.approx(4.0)
    assert np.isnan(landmark_jitter(landmarks, np.array([1, 1, 0, 1, 1, 0, 1], bool)))
    assert np.isnan(landmark_jitter(landmarks[:2], np.ones(2, bool)))


# --- eye_roll_degrees -------------------------------------------------------------------------------------------

def test_truth_rotated_ten_degrees_reads_plus_ten():
    # Positive rotation in image coordinates (y down) turns the face clockwise on
    # screen: the right eye goes lower, which eye_roll_degrees reports as +.
    detected = _repeat(_moved(TEMPLATE, 0, 1.5, (30, 10)), 3)
    truth = _repeat(_moved(_moved(TEMPLATE, 10, 1.0, (4, -7)), 0, 1.5, (30, 10)), 3)
    np.testing.assert_allclose(eye_roll_degrees(detected, truth), 10.0, atol=1e-9)
    np.testing.assert_allclose(eye_roll_degrees(truth, detected), -10.0, atol=1e-9)


def test_eye_roll_zero_when_detected_equals_truth():
    frames = _repeat(_moved(TEMPLATE, -33, 0.6, (200, 80)), 2)
    np.testing.assert_allclose(eye_roll_degrees(frames, frames), 0.0, atol=1e-9)


def test_eye_roll_nan_where_not_finite():
    frames = _repeat(TEMPLATE, 3)
    detected = frames.copy()
    detected[1] = np.nan
    roll = eye_roll_degrees(detected, frames)
    assert roll[0] == pytest.approx(0.0, abs=1e-9) and np.isnan(roll[1]) and roll[2] == pytest.approx(0.0, abs=1e-9)


# --- compare_to_truth -------------------------------------------------------------------------------------------

def test_compare_to_truth_counts_on_six_frames():
    present = np.array([1, 1, 0, 1, 1, 0], bool)
    filled = np.array([0, 1, 0, 0, 1, 0], bool)
    truth_present = np.array([1, 1, 1, 1, 0, 0, 1], bool)  # one frame longer: the common prefix is compared
    truth_landmarks = _repeat(TEMPLATE + (0.3, 0.4), 7)
    truth_landmarks[~truth_present] = np.nan
    landmarks = _repeat(TEMPLATE, 6)
    landmarks[~present] = np.nan
    result = compare_to_truth(present, filled, landmarks, truth_present, truth_landmarks)
    assert result == {
        "face_frames": 4,
        "detected": 2,  # frames 0 and 3; frame 1 is filled
        "detection_rate": 0.5,
        "faceless_frames": 2,
        "false_crops": 1,  # frame 4, a filled crop on a face-less frame
        "landmark_error_px": 0.5,
        "landmark_within_3px": 1.0,
        "eye_roll_deg_mean_abs": 0.0,
        "eye_roll_deg_p95_abs": 0.0,
        "jitter_px": None,  # no three consecutive detected frames
        "truth_jitter_px": None,
    }
    assert all(type(value) in (int, float) or value is None for value in result.values())
    json.dumps(result, allow_nan=False)


def test_compare_to_truth_jitter_and_errors_on_a_run():
    n = 8
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None, None]
    truth = _repeat(TEMPLATE, n)
    landmarks = truth + signs * np.array([1.0, 0.0])  # 1 px off, alternating
    landmarks[5] = truth[5] + (2.5, 0.0)  # 2.5 px: within 3 px
    landmarks[6] = truth[6] + (11.0, 0.0)  # 11 px: not
    result = compare_to_truth(np.ones(n, bool), np.zeros(n, bool), landmarks, np.ones(n, bool), truth)
    assert result["detection_rate"] == 1.0 and result["false_crops"] == 0 and result["faceless_frames"] == 0
    assert result["landmark_within_3px"] == 0.875
    assert result["landmark_error_px"] == (6 * 1.0 + 2.5 + 11.0) / 8
    assert result["truth_jitter_px"] == 0.0
    assert result["jitter_px"] > 4.0


def test_compare_to_truth_no_face_frames_gives_none():
    result = compare_to_truth(np.zeros(3, bool), np.zeros(3, bool), np.full((3, 5, 2), np.nan),
                              np.zeros(3, bool), np.full((3, 5, 2), np.nan))
    assert result["face_frames"] == 0 and result["detection_rate"] is None
    assert result["faceless_frames"] == 3 and result["false_crops"] == 0
    assert result["landmark_error_px"] is None and result["eye_roll_deg_p95_abs"] is None
    json.dumps(result, allow_nan=False)


# --- pick_samples -----------------------------------------------------------------------------------------------

def test_pick_samples_spread_sorted_and_deterministic():
    present = np.zeros(1000, bool)
    present[100:900] = True
    chosen = pick_samples(present, 8)
    assert chosen.dtype == np.int64 and len(chosen) == 8
    assert np.all(np.diff(chosen) > 0) and present[chosen].all()
    # One per stratum of 100 present frames: the whole span is covered.
    np.testing.assert_array_equal((chosen - 100) // 100, np.arange(8))
    np.testing.assert_array_equal(chosen, pick_samples(present, 8))
    np.testing.assert_array_equal(pick_samples(present, 8, rng_seed=0), pick_samples(present, 8, rng_seed=0))


def test_pick_samples_fewer_present_than_k_and_empty():
    present = np.array([0, 1, 0, 1, 1, 0], bool)
    np.testing.assert_array_equal(pick_samples(present, 10), [1, 3, 4])
    assert pick_samples(np.zeros(5, bool), 4).size == 0
    assert pick_samples(present, 0).size == 0


# --- save_sample_grid -------------------------------------------------------------------------------------------

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def test_save_sample_grid_three_crops(tmp_path):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / "deep" / "grid.png"
    save_sample_grid(crops, [TEMPLATE + 1.0, None, TEMPLATE], ["t=0", "t=5", "t=9"], path)
    data = path.read_bytes()
    assert data[:8] == PNG_HEADER and len(data) > 1000
    assert plt.get_fignums() == []


def test_save_sample_grid_zero_crops(tmp_path):
    path = tmp_path / "empty" / "grid.png"
    save_sample_grid([], [], [], path)
    data = path.read_bytes()
    assert data[:8] == PNG_HEADER and len(data) > 100
    assert plt.get_fignums() == []


def test_save_sample_grid_rejects_mismatched_lists(tmp_path):
    with pytest.raises(ValueError):
        save_sample_grid([np.zeros((112, 112, 3), np.uint8)], [], ["a"], tmp_path / "x.png")
