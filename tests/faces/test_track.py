"""Subject choice on hand-made detections: follow by overlap, sides for _left/_right, gaps."""

import numpy as np

from pipeline_lib.faces.detect import Detections, iou
from pipeline_lib.faces.track import choose_subject


def _dets(*faces: tuple[float, float, float, float, float]) -> Detections:
    """faces: (x0, y0, x1, y1, score) each."""
    if not faces:
        return Detections.empty()
    a = np.array(faces, dtype=np.float32)
    return Detections(a[:, :4], a[:, 4], np.zeros((len(a), 5, 2), np.float32))


def test_iou():
    np.testing.assert_allclose(iou(np.array([0, 0, 10, 10]),
                                   np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])),
                               [1.0, 50 / 150, 0.0])


def test_single_subject_is_followed_when_a_bigger_face_enters():
    subject, bystander = (50, 50, 90, 90, 0.99), (150, 40, 230, 120, 0.999)
    moved = (54, 52, 94, 92, 0.98)
    frames = [_dets(subject), _dets(bystander, subject), _dets(moved, bystander)]
    np.testing.assert_array_equal(choose_subject(frames), [0, 1, 0])


def test_first_pick_is_most_confident_largest_and_low_scores_are_absent():
    frames = [_dets((0, 0, 10, 10, 0.99), (100, 100, 160, 160, 0.98)), _dets((100, 100, 160, 160, 0.5)), _dets()]
    np.testing.assert_array_equal(choose_subject(frames, min_score=0.9), [1, -1, -1])


def test_sides_pick_left_and_right_and_stay_stable():
    left, right = (20, 50, 60, 90, 0.99), (180, 50, 220, 90, 0.99)
    frames = [_dets(right, left), _dets(left, right), _dets(right)]
    np.testing.assert_array_equal(choose_subject(frames, side="left"), [1, 0, 0])
    np.testing.assert_array_equal(choose_subject(frames, side="right"), [0, 1, 0])


def test_track_is_dropped_after_a_long_gap():
    a, b = (0, 0, 40, 40, 0.99), (10, 0, 50, 40, 0.99)  # b overlaps a
    big = (100, 100, 200, 200, 0.99)
    frames = [_dets(a)] + [_dets()] * 6 + [_dets(b, big)]
    np.testing.assert_array_equal(choose_subject(frames, max_gap=5)[[0, -1]], [0, 1])
    np.testing.assert_array_equal(choose_subject(frames, max_gap=10)[[0, -1]], [0, 0])
