"""Alignment: known landmarks land on the template, eyes come out level, align/unalign round-trip."""

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from pipeline_lib.faces.align import (
    ARCFACE_TEMPLATE_112,
    CROP_SIZE,
    align_points,
    align_to_template,
    template_for,
    unalign_points,
)


def _face_in_frame(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """Template landmarks moved into a frame by a known similarity."""
    known = SimilarityTransform(scale=scale, rotation=np.deg2rad(angle_deg), translation=shift)
    return known(ARCFACE_TEMPLATE_112)


@pytest.mark.parametrize(("angle", "scale", "shift"), [(0, 1, (0, 0)), (17, 2.3, (140, 60)), (-30, 0.7, (20, 90))])
def test_known_landmarks_land_on_the_template(angle, scale, shift):
    landmarks = _face_in_frame(angle, scale, shift)
    np.testing.assert_allclose(align_points(landmarks, landmarks), ARCFACE_TEMPLATE_112, atol=1e-6)


def test_noisy_landmarks_land_within_two_pixels():
    rng = np.random.default_rng(0)
    landmarks = _face_in_frame(12, 1.8, (100, 40)) + rng.normal(0, 0.8, (5, 2))
    error = np.linalg.norm(align_points(landmarks, landmarks) - ARCFACE_TEMPLATE_112, axis=1)
    assert error.max() < 2.0


def test_align_unalign_round_trip():
    landmarks = _face_in_frame(-21, 1.4, (33, 77))
    points = np.array([[0.0, 0.0], [111.0, 5.5], [56.0, 56.0]])
    np.testing.assert_allclose(align_points(unalign_points(points, landmarks), landmarks), points, atol=1e-9)


def test_crop_puts_marked_eyes_level_at_template_positions():
    # Paint two bright dots at the eyes of a rotated face; after alignment they
    # must sit on the template's (level) eye positions.
    frame = np.zeros((240, 320, 3), np.uint8)
    landmarks = _face_in_frame(25, 1.9, (120, 10))
    for x, y in landmarks[:2]:
        frame[int(round(y)) - 2: int(round(y)) + 3, int(round(x)) - 2: int(round(x)) + 3] = 255
    crop = align_to_template(frame, landmarks)
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
    for (tx, ty), half in zip(ARCFACE_TEMPLATE_112[:2], (slice(0, 56), slice(56, 112))):
        ys, xs = np.nonzero(crop[:, half, 0] > 128)
        assert abs(ys.mean() - ty) < 1.5 and abs(xs.mean() + half.start - tx) < 1.5


def test_grey_frames_and_other_sizes():
    frame = np.full((100, 100), 77, np.uint8)
    crop = align_to_template(frame, _face_in_frame(0, 0.8, (5, 5)), size=56)
    assert crop.shape == (56, 56, 3) and (crop == 77).all()
    np.testing.assert_allclose(template_for(224), ARCFACE_TEMPLATE_112 * 2)


def test_degenerate_landmarks_fail_clearly():
    with pytest.raises(ValueError, match="degenerate|finite"):
        align_points(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="finite"):
        align_to_template(np.zeros((10, 10, 3), np.uint8), np.full((5, 2), np.nan))


def test_vectorised_template_fit_matches_the_per_frame_one():
    from pipeline_lib.faces.align import apply_matrices, template_matrices, template_transform

    rng = np.random.default_rng(3)
    landmarks = template_for(112)[None] * rng.uniform(0.5, 3, (20, 1, 1)) + rng.normal(0, 4, (20, 5, 2)) \
        + rng.uniform(0, 300, (20, 1, 2))
    landmarks[3] = np.nan
    matrices = template_matrices(landmarks)
    assert np.isnan(matrices[3]).any()
    for t in (0, 7, 19):
        np.testing.assert_allclose(matrices[t], template_transform(landmarks[t]).params, atol=1e-9)
    np.testing.assert_allclose(apply_matrices(matrices[[0]], landmarks[[0]])[0],
                               template_transform(landmarks[0])(landmarks[0]),
                               atol=1e-9)


def test_fast_interior_path_matches_the_edge_replicating_warp():
    from skimage.transform import warp

    from pipeline_lib.faces.align import template_transform

    rng = np.random.default_rng(0)
    frame = (rng.uniform(0, 255, (120, 160, 3))).astype(np.uint8)
    landmarks = template_for(112) * 0.6 + [40, 20]  # well inside: the fast path runs
    fast = align_to_template(frame, landmarks)
    slow = warp(frame, template_transform(landmarks).inverse, output_shape=(112, 112), order=1, mode="edge",
                preserve_range=True)
    assert np.abs(fast.astype(int) - np.rint(slow)).max() <= 1  # PIL's fixed-point rounding
