"""The `landmarks` extractor: similarity-free 5-point geometry, its validity mask, and its place in the store."""


import numpy as np
import pytest

from pipeline_lib.faces.align import CROP_SIZE, template_for
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.features.encode import extract_features
from pipeline_lib.features.geometry import landmark_features
from pipeline_lib.features.store import FeatureStore


def _similar(points: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, s], [-s, c]]) + np.array(shift)


def test_template_face_anywhere_in_the_frame_is_zero():
    poses = ((0.5, 0.0), (2.0, 0.3), (3.1, -1.2))  # (scale, angle)
    face = np.stack([_similar(template_for(), k, a, (k * 40, 300 - k * 20)) for k, a in poses])
    features, valid = landmark_features(face, np.ones(3, bool))
    assert valid.all() and features.shape == (3, 10) and features.dtype == np.float32
    np.testing.assert_allclose(features, 0.0, atol=1e-6)


def test_a_raised_mouth_corner_reads_the_same_at_any_pose():
    smile = template_for().copy()
    smile[3] += (-2.0, -4.0)  # left mouth corner out and up by a few crop pixels
    moved = np.stack([smile, _similar(smile, 2.5, 0.4, (100.0, 50.0))])
    features, valid = landmark_features(moved, np.ones(2, bool))
    np.testing.assert_allclose(features[0], features[1], atol=1e-6)
    residual = features[0].reshape(5, 2) * CROP_SIZE  # crop pixels off the template
    # The fit spreads part of the move over the other points; most of it stays on the moved one.
    assert -4.0 < residual[3, 1] < -2.0 and abs(residual[3, 1]) == pytest.approx(np.abs(residual[:, 1]).max())
    np.testing.assert_allclose(residual.sum(axis=0), 0.0, atol=1e-6)  # the fit leaves no mean offset


def test_frames_without_usable_points_are_zero_and_invalid():
    points = np.stack([template_for(), template_for(), np.full((5, 2), np.nan), np.full((5, 2), 7.0)])
    present = np.array([True, False, True, True])  # a face; no face; face but no points; all points on one pixel
    features, valid = landmark_features(points, present)
    assert valid.tolist() == [True, False, False, False]
    assert not features[~valid].any()


def test_extractor_writes_the_geometry_group_without_a_checkpoint(tmp_path):
    t = 4
    landmarks = np.stack([_similar(template_for(), 1.0 + 0.1 * i, 0.0, (5.0 * i, 0.0)) for i in range(t)])
    landmarks[2] = np.nan
    present = np.array([True, True, False, True])
    write_faces(tmp_path / "faces" / "a.h5", FaceTrack(np.zeros((t, 112, 112, 3), np.uint8), present,
                                                      np.zeros(t, bool), np.zeros((t, 4), np.float32),
                                                      landmarks.astype(np.float32), present.astype(np.float32)),
                {"v": "a"})
    store = FeatureStore(tmp_path / "f.zarr")
    absent = tmp_path / "no-checkpoint.pt"  # geometry needs no encoder
    first = extract_features(tmp_path / "faces", ["a"], store, ["landmarks"], absent)
    assert [(v.extractor, v.encoded, v.skipped) for v in first] == [("landmarks", 3, False)]
    features, valid = store.read("landmarks", "a")
    assert features.shape == (4, 10) and valid.tolist() == [True, True, False, True]
    np.testing.assert_allclose(features.astype(np.float32), 0.0, atol=1e-3)
    assert store.provenance("landmarks", "a")["geometry"] == "5pt-aligned-residual-v1"
    again = extract_features(tmp_path / "faces", ["a"], store, ["landmarks"], absent)
    assert [v.skipped for v in again] == [True]
