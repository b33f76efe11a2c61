"""Pseudo-labels: class-wise thresholds, which frames get labels, the pool prior, counterfactual debiasing,
class-uniform window weights, and how kept labels compare with a known truth."""

import numpy as np
import pytest

from pipeline_lib.train.pseudo import (
    class_thresholds,
    counterfactual_probs,
    make_pseudo_labels,
    truth_agreement,
    uniform_window_weights,
)


def _probs(rows):
    out = np.full((len(rows), 8), 0.0)
    for i, (c, p) in enumerate(rows):
        out[i] = (1 - p) / 7
        out[i, c] = p
    return out


def test_global_threshold_without_per_class():
    assert class_thresholds(_probs([(0, 0.9), (1, 0.5)]), 0.7, per_class=False).tolist() == [0.7] * 8


def test_per_class_thresholds_scale_with_the_teachers_mean_confidence():
    probs = _probs([(0, 0.9), (0, 0.7), (1, 0.4)])  # class 0 mean 0.8, class 1 mean 0.4, others never predicted
    expected = [0.6, 0.3] + [0.6] * 6
    assert class_thresholds(probs, 0.6).tolist() == pytest.approx(expected)


def test_confident_eligible_frames_get_labels_and_the_rest_minus_one():
    teacher = {"a": _probs([(0, 0.9), (0, 0.5), (1, 0.45), (2, 0.99)]), "b": _probs([(1, 0.8)])}
    eligible = {"a": np.array([True, True, True, False]), "b": np.array([True])}
    pseudo = make_pseudo_labels(teacher, eligible, threshold=0.8, per_class=False)
    assert pseudo.labels["a"].tolist() == [0, -1, -1, -1]  # frame 3 is confident but already labelled
    assert pseudo.labels["b"].tolist() == [1]
    assert pseudo.pool_frames == 4 and pseudo.kept == 2
    assert pseudo.kept_per_class.tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert pseudo.prior.tolist() == pytest.approx([2 / 10, 2 / 10] + [1 / 10] * 6)  # add-one smoothed


def test_per_class_thresholds_let_an_unsure_rare_class_through():
    teacher = {"a": _probs([(0, 0.95), (0, 0.95), (3, 0.5)])}
    eligible = {"a": np.ones(3, bool)}
    assert make_pseudo_labels(teacher, eligible, 0.9, per_class=False).labels["a"].tolist() == [0, 0, -1]
    assert make_pseudo_labels(teacher, eligible, 0.9, per_class=True).labels["a"].tolist() == [0, 0, 3]


def test_counterfactual_probs_divide_the_bias_out_and_renormalise():
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    bias = np.array([0.5, 0.25, 0.25])
    full = counterfactual_probs(probs, bias, 1.0)
    expected = np.array([[1.2, 1.2, 0.4], [0.4, 0.8, 2.4]])  # probs / bias, then rows sum to one
    np.testing.assert_allclose(full, expected / expected.sum(1, keepdims=True), rtol=1e-12)
    half = counterfactual_probs(probs, bias, 0.5)
    expected = probs / np.sqrt(bias)
    np.testing.assert_allclose(half, expected / expected.sum(1, keepdims=True), rtol=1e-12)
    assert counterfactual_probs(probs, bias, 0.0) is probs
    tiny = counterfactual_probs(probs.astype(np.float16), np.array([1e-9, 0.5, 0.5], np.float16), 1.0)
    assert tiny.dtype == np.float16 and np.isfinite(tiny).all() and tiny[:, 0].tolist() == [1.0, 1.0]


def test_counterfactual_labels_move_borderline_frames_off_the_over_predicted_class():
    # The teacher hands out class 0 on three of four frames; the last two are torn between 0 and 2.
    teacher = {"a": np.zeros((4, 8))}
    teacher["a"][:, :3] = [[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.5, 0.1, 0.4], [0.0, 0.1, 0.9]]
    # mean (0.575, 0.1, 0.325): frame 2 becomes 0.5/0.575 = 0.87 for class 0 vs 0.4/0.325 = 1.23 for class 2
    eligible = {"a": np.ones(4, bool)}
    plain = make_pseudo_labels(teacher, eligible, 0.3, per_class=False)
    debiased = make_pseudo_labels(teacher, eligible, 0.3, per_class=False, counterfactual=1.0)
    assert plain.labels["a"].tolist() == [0, 0, 0, 2]
    assert debiased.labels["a"].tolist() == [0, 0, 2, 2]
    # the mean is reported either way, and taken over eligible frames only
    assert debiased.teacher_mean.tolist() == pytest.approx(teacher["a"].mean(0).tolist())
    assert plain.teacher_mean.tolist() == pytest.approx(debiased.teacher_mean.tolist())
    partial = make_pseudo_labels(teacher, {"a": np.array([True, True, True, False])}, 0.3, per_class=False,
                                 counterfactual=1.0)
    assert partial.teacher_mean.tolist() == pytest.approx(teacher["a"][:3].mean(0).tolist())


def test_empty_pool_keeps_nothing():
    pseudo = make_pseudo_labels({"a": _probs([(0, 0.9)])}, {"a": np.zeros(1, bool)}, 0.5)
    assert pseudo.pool_frames == 0 and pseudo.kept == 0 and pseudo.labels["a"].tolist() == [-1]
    assert pseudo.thresholds.tolist() == [0.5] * 8


def test_uniform_weights_equalise_classes():
    windows = [np.array([0, 0]), np.array([0, 0]), np.array([0, 0]), np.array([1, 1]), np.array([-1, -1])]
    weights = uniform_window_weights(windows)
    # class 0: 6 frames (inverse 1/6), class 1: 2 frames (1/2); the label-less window gets the median (1/6)
    raw = np.array([1 / 6, 1 / 6, 1 / 6, 1 / 2, 1 / 6])
    assert weights.tolist() == pytest.approx((raw / raw.sum()).tolist())
    drawn_class_0 = weights[:3].sum() * 2  # expected frames of class 0 per draw-pair vs class 1
    assert drawn_class_0 == pytest.approx(weights[3] * 2)


def test_truth_agreement_scores_kept_frames_that_have_a_true_class():
    labels = {"a": np.array([0, 0, 1, -1, 2, 2]), "b": np.array([1, 1]), "c": np.array([3])}
    truth = {"a": np.array([0, 1, 1, 4, -1]), "b": np.array([1, 0, 0])}  # a is one frame short; c has no truth
    found = truth_agreement(labels, truth)
    # kept frames with truth: a0 (0 vs 0), a1 (0 vs 1), a2 (1 vs 1), b0 (1 vs 1), b1 (1 vs 0); a4 has no basic truth
    assert found["frames"] == 6 and found["frames_with_truth"] == 5 and found["frames_without_basic_truth"] == 1
    assert found["precision"] == pytest.approx(3 / 5)
    assert found["chance"] == pytest.approx(3 / 5)  # true classes 0, 1, 1, 1, 0: class 1 is 3 of 5
    assert found["per_class_precision"]["Neutral"] == pytest.approx(0.5)  # class 0 given twice, right once
    assert found["per_class_precision"]["Anger"] == pytest.approx(2 / 3, abs=1e-4)  # rounded to 4 places
    assert found["per_class_precision"]["Disgust"] is None  # given only on a frame without truth


def test_truth_agreement_without_truth_has_no_precision():
    found = truth_agreement({"a": np.array([1, -1])}, {})
    assert found["frames"] == 0 and found["precision"] is None and found["chance"] is None
