"""Official metrics: exact values on hand-computed cases, agreement with independent implementations."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from pipeline_lib.data.labels import AU_NAMES, TASKS, Task, empty_labels
from pipeline_lib.metrics import (
    apply_au_thresholds,
    au_f1,
    ccc,
    ce_f1,
    expr_f1,
    mtl_from_predictions,
    mtl_score,
    smooth_va,
    task_scores,
    tune_au_thresholds,
    va_score,
)


def _ccc_reference(p: np.ndarray, t: np.ndarray) -> float:
    cov = np.cov(p, t, bias=True)
    return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (p.mean() - t.mean()) ** 2)


# --- CCC and VA -----------------------------------------------------------------------------------

def test_ccc_identical_is_one_and_negated_is_minus_one():
    x = np.random.default_rng(0).normal(size=200)
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-12)
    centred = x - x.mean()
    assert ccc(-centred, centred) == pytest.approx(-1.0, abs=1e-12)


def test_ccc_hand_computed():
    # means 2, 4; var_p 2/3, var_t 8/3, cov 4/3 -> 2 * 4/3 / (2/3 + 8/3 + 4) = 4/11
    assert ccc(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == pytest.approx(4 / 11, abs=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ccc_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, 500)
    p = 0.6 * t + rng.normal(0.2, 0.3, 500)
    assert ccc(p, t) == pytest.approx(_ccc_reference(p, t), abs=1e-12)
    assert ccc(p.astype(np.float32), t.astype(np.float32)) == pytest.approx(_ccc_reference(p, t), abs=1e-5)


def test_ccc_degenerate_input_is_finite():
    assert ccc(np.full(5, 0.1), np.full(5, 0.1)) == 1.0
    assert ccc(np.full(5, 0.1), np.full(5, 0.2)) == 0.0
    assert ccc(np.zeros(4), np.array([1.0, 2.0, 3.0, 4.0])) == 0.0


def test_ccc_rejects_bad_input():
    with pytest.raises(ValueError, match="equal shapes"):
        ccc(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        ccc(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="non-finite"):
        ccc(np.array([0.0, np.nan]), np.array([0.0, 1.0]))


def test_va_score_drops_invalid_per_dimension():
    true = np.array([[1, 2], [2, 4], [3, 6], [-5, 8], [5, -5]], dtype=np.float32)
    pred = np.array([[1, 1], [2, 2], [3, 3], [9, 4], [5, 100]], dtype=np.float64)
    scores = va_score(pred, true)
    # valence: frames 0,1,2,4 -> identical -> 1; arousal: frames 0..3, [1,2,3,4] vs [2,4,6,8] -> 5 / 12.5
    assert scores["ccc_valence"] == pytest.approx(1.0, abs=1e-12)
    assert scores["ccc_arousal"] == pytest.approx(0.4, abs=1e-12)
    assert scores["ccc_mean"] == pytest.approx(0.7, abs=1e-12)
    # Dropping whole rows instead would leave arousal at 4/11.
    assert scores["ccc_arousal"] != pytest.approx(4 / 11)


def test_va_score_drops_non_finite_labels_and_rejects_bad_shapes():
    true = np.array([[0.1, 0.2], [0.3, np.nan], [np.inf, 0.5], [0.7, -0.1]])
    pred = np.array([[0.0, 0.1], [0.2, 0.9], [0.4, 0.3], [0.5, 0.0]])
    scores = va_score(pred, true)
    assert scores["ccc_valence"] == pytest.approx(_ccc_reference(pred[[0, 1, 3], 0], true[[0, 1, 3], 0]))
    assert scores["ccc_arousal"] == pytest.approx(_ccc_reference(pred[[0, 2, 3], 1], true[[0, 2, 3], 1]))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        va_score(pred[:, :1], true[:, :1])
    with pytest.raises(ValueError, match="no annotated arousal"):
        va_score(pred, np.column_stack([true[:, 0], np.full(4, -5.0)]))


# --- F1 scores ------------------------------------------------------------------------------------

def test_expr_and_ce_f1_hand_computed():
    true = np.array([0, 0, 1, 1, -1])
    pred = np.array([0, 1, 1, 1, 1])  # the -1 frame would add a false positive to class 1 if counted
    # class 0: tp 1 fn 1 -> 2/3; class 1: tp 2 fp 1 -> 4/5; the rest 0
    assert expr_f1(pred, true) == pytest.approx((2 / 3 + 4 / 5) / 8, abs=1e-12)
    assert ce_f1(pred, true) == pytest.approx((2 / 3 + 4 / 5) / 7, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expr_and_ce_f1_match_sklearn_on_filtered_frames(seed):
    rng = np.random.default_rng(seed)
    for scorer, n_classes in ((expr_f1, 8), (ce_f1, 7)):
        true = rng.integers(0, n_classes, 300)
        true[rng.random(300) < 0.2] = -1
        pred = np.where(rng.random(300) < 0.5, true.clip(0), rng.integers(0, n_classes, 300))
        keep = true != -1
        expected = f1_score(true[keep], pred[keep], labels=list(range(n_classes)), average="macro", zero_division=0)
        assert scorer(pred, true.astype(np.float32)) == pytest.approx(expected, abs=1e-12)


def test_class_f1_rejects_unlabelled_or_misshaped_input():
    with pytest.raises(ValueError, match="no annotated"):
        expr_f1(np.zeros(3, int), np.full(3, -1))
    with pytest.raises(ValueError, match=r"\(N,\)"):
        ce_f1(np.zeros((3, 1), int), np.zeros((3, 1), int))


def test_au_f1_hand_computed():
    true = np.ones((4, 12), dtype=np.float32)
    pred = np.ones((4, 12), dtype=np.int64)
    true[:, 0], pred[:, 0] = [1, 1, 0, -1], [1, 0, 0, 1]  # tp 1 fn 1 -> 2/3; the -1 frame ignored
    true[:, 1], pred[:, 1] = 0, 0  # no positive anywhere -> 0
    true[:, 2] = -1  # nothing annotated -> 0
    scores = au_f1(pred, true)
    assert list(scores) == [*AU_NAMES, "mean"]
    assert scores["AU1"] == pytest.approx(2 / 3)
    assert scores["AU2"] == 0.0 and scores["AU4"] == 0.0 and scores["AU26"] == 1.0
    assert scores["mean"] == pytest.approx((2 / 3 + 9) / 12, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_au_f1_matches_sklearn_per_column(seed):
    rng = np.random.default_rng(seed)
    true = (rng.random((400, 12)) < rng.uniform(0.05, 0.6, 12)).astype(np.int64)
    true[rng.random((400, 12)) < 0.15] = -1
    pred = np.where(rng.random((400, 12)) < 0.7, true.clip(0), rng.integers(0, 2, (400, 12)))
    expected = [f1_score(true[true[:, j] != -1, j], pred[true[:, j] != -1, j], zero_division=0) for j in range(12)]
    scores = au_f1(pred, true)
    assert [scores[name] for name in AU_NAMES] == pytest.approx(expected, abs=1e-12)
    assert scores["mean"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_au_f1_rejects_probabilities_and_bad_shapes():
    with pytest.raises(ValueError, match="0/1"):
        au_f1(np.full((3, 12), 0.7), np.ones((3, 12)))
    with pytest.raises(ValueError, match=r"\(N, 12\)"):
        au_f1(np.ones((3, 11), int), np.ones((3, 11)))


# --- MTL and dispatch -----------------------------------------------------------------------------

def test_mtl_score_and_from_predictions():
    assert mtl_score(1.0, 1.0, 1.0) == 3.0
    rng = np.random.default_rng(5)
    labels = empty_labels(60)
    labels[:50, :2] = rng.uniform(-1, 1, (50, 2))
    labels[10:, 2] = rng.integers(0, 8, 50)
    labels[:, 3:] = rng.integers(0, 2, (60, 12))
    va_pred, expr_pred, au_pred = rng.uniform(-1, 1, (60, 2)), rng.integers(0, 8, 60), rng.integers(0, 2, (60, 12))
    scores = mtl_from_predictions(va_pred, expr_pred, au_pred, labels)
    ccc_mean = (ccc(va_pred[:50, 0], labels[:50, 0]) + ccc(va_pred[:50, 1], labels[:50, 1])) / 2
    assert scores["ccc_mean"] == pytest.approx(ccc_mean)
    assert scores["expr_f1"] == pytest.approx(expr_f1(expr_pred[10:], labels[10:, 2]))
    assert scores["mtl"] == pytest.approx(ccc_mean + scores["expr_f1"] + au_f1(au_pred, labels[:, 3:])["mean"])


def test_task_scores_dispatch_per_task_on_activated_outputs():
    rng = np.random.default_rng(6)
    va_true, va_pred = rng.uniform(-1, 1, (50, 2)), rng.uniform(-1, 1, (50, 2))
    cls_true, expr_probs, ce_probs = rng.integers(0, 7, 50), rng.uniform(size=(50, 8)), rng.uniform(size=(50, 7))
    au_true, au_probs = rng.integers(0, 2, (50, 12)), rng.uniform(size=(50, 12))
    assert task_scores("va", va_pred, va_true) == va_score(va_pred, va_true)
    assert task_scores(Task.EXPR, expr_probs, cls_true[:, None]) == {
        "f1_macro": expr_f1(expr_probs.argmax(1), cls_true)}
    assert task_scores("ce", ce_probs, cls_true)["f1_macro"] == ce_f1(ce_probs.argmax(1), cls_true)
    au = au_f1((au_probs >= 0.5).astype(np.int64), au_true)
    scores = task_scores("au", au_probs, au_true)
    assert scores["f1_mean"] == au["mean"] and scores["f1_AU12"] == au["AU12"] and len(scores) == 13
    assert {task: spec.metric for task, spec in TASKS.items()} == {
        "va": "ccc_mean", "expr": "f1_macro", "au": "f1_mean", "ce": "f1_macro"}
    assert all(TASKS[task].metric in task_scores(task, *args) for task, args in (
        ("va", (va_pred, va_true)), ("expr", (expr_probs, cls_true)), ("au", (au_probs, au_true))))
    with pytest.raises(ValueError, match="unknown task 'mtl'"):
        task_scores("mtl", va_pred, va_true)


# --- AU thresholds --------------------------------------------------------------------------------

def test_tune_au_thresholds_finds_known_threshold():
    probs = np.full((7, 12), 0.5)
    true = np.zeros((7, 12))
    # AU1: negatives <= 0.6, positives >= 0.72: F1 1 at 0.65 and 0.70, the tie goes to 0.65.
    # The -1 frame at 0.68 would be a false positive at 0.65 if it were counted.
    probs[:, 0] = [0.1, 0.2, 0.6, 0.72, 0.8, 0.9, 0.68]
    true[:, 0] = [0, 0, 0, 1, 1, 1, -1]
    # AU2: separable everywhere on the grid -> nearest to 0.5 wins.
    probs[:, 1] = [0.01] * 3 + [0.99] * 4
    true[:, 1] = [0] * 3 + [1] * 4
    # AU4: only 0.3 and below catch the weak positive without false positives.
    probs[:, 2] = [0.1, 0.12, 0.2, 0.32, 0.9, 0.9, 0.9]
    true[:, 2] = [0, 0, 0, 1, 1, 1, 1]
    true[:, 3] = -1  # AU6 nothing annotated; AU7.. no positive
    thresholds = tune_au_thresholds(probs, true)
    assert thresholds.shape == (12,)
    assert thresholds[:4] == pytest.approx([0.65, 0.5, 0.3, 0.5])
    assert thresholds[4:] == pytest.approx([0.5] * 8)
    decisions = apply_au_thresholds(probs, thresholds)
    assert decisions.dtype == np.int64 and np.array_equal(decisions, (probs >= thresholds).astype(int))
    assert au_f1(decisions, true)["AU1"] == 1.0 and au_f1(decisions, true)["AU4"] == 1.0


def test_tune_au_thresholds_equidistant_tie_takes_lower():
    probs = np.tile([[0.01], [0.99]], (1, 12))
    true = np.tile([[0], [1]], (1, 12))
    assert tune_au_thresholds(probs, true, grid=[0.6, 0.4]) == pytest.approx([0.4] * 12)


def test_tuned_thresholds_reach_best_grid_f1():
    rng = np.random.default_rng(7)
    true = (rng.random((300, 12)) < 0.3).astype(np.int64)
    probs = np.clip(0.35 * true + rng.uniform(0, 0.7, (300, 12)), 0, 1)
    true[rng.random((300, 12)) < 0.1] = -1
    grid = np.linspace(0.05, 0.95, 19)
    tuned = au_f1(apply_au_thresholds(probs, tune_au_thresholds(probs, true)), true)
    for j, name in enumerate(AU_NAMES):
        keep = true[:, j] != -1
        best = max(f1_score(true[keep, j], probs[keep, j] >= g, zero_division=0) for g in grid)
        assert tuned[name] == pytest.approx(best, abs=1e-12)


# --- VA smoothing ---------------------------------------------------------------------------------

def _smooth_reference(x: np.ndarray, window: int, valid: np.ndarray) -> np.ndarray:
    out = x.astype(np.float64).copy()
    for t in range(len(x)):
        lo, hi = max(0, t - (window - 1) // 2), min(len(x), t + window // 2 + 1)
        if valid[t]:
            out[t] = x[lo:hi][valid[lo:hi]].mean()
    return out


def test_smooth_va_hand_computed_with_shrinking_ends():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    assert smooth_va(x, 3) == pytest.approx([1.5, 2.0, 3.0, 17 / 3, 7.0])
    # even window: one frame before, two after
    assert smooth_va(x, 4) == pytest.approx([2.0, 2.5, 4.75, 17 / 3, 7.0])


def test_smooth_va_identity_for_window_0_and_1():
    x = np.random.default_rng(8).normal(size=(20, 2)).astype(np.float32)
    for window in (0, 1):
        out = smooth_va(x, window)
        assert out.dtype == np.float32 and np.array_equal(out, x) and out is not x
    with pytest.raises(ValueError, match=">= 0"):
        smooth_va(x, -1)


def test_smooth_va_skips_invalid_frames():
    x = np.array([1.0, 2.0, 100.0, 4.0, 5.0])
    valid = np.array([True, True, False, True, True])
    assert smooth_va(x, 3, valid=valid) == pytest.approx([1.5, 1.5, 100.0, 4.5, 4.5])
    # A non-finite frame is treated as invalid and does not poison the cumulative sums.
    with_nan = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    out = smooth_va(with_nan, 3)
    assert np.isnan(out[2]) and out[[0, 1, 3, 4]] == pytest.approx([1.5, 1.5, 4.5, 4.5])
    with pytest.raises(ValueError, match="valid mask"):
        smooth_va(x, 3, valid=valid[:4])


@pytest.mark.parametrize("window", [2, 5, 8, 31, 200])
def test_smooth_va_matches_loop_on_two_columns(window):
    rng = np.random.default_rng(window)
    x = rng.normal(size=(97, 2)).astype(np.float32)
    valid = rng.random(97) < 0.8
    out = smooth_va(x, window, valid=valid)
    assert out.shape == x.shape and out.dtype == np.float32
    for column in range(2):
        expected = _smooth_reference(x[:, column], window, valid)
        assert out[:, column] == pytest.approx(expected, abs=1e-5)
        assert np.array_equal(smooth_va(x[:, column], window, valid=valid), out[:, column])
    assert np.array_equal(out[~valid], x[~valid])
