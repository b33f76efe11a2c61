"""The `mesh` extractor: pose and geometry from the landmarker's output, the zero-shot AU map, the store."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pipeline_lib.data.demo.identities import load_identity
from pipeline_lib.data.demo.render import render_portrait
from pipeline_lib.data.demo.rig import build_rig
from pipeline_lib.data.labels import AU_NAMES
from pipeline_lib.faces.mesh import BLENDSHAPES, N_POINTS, MeshFrames
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.features.encode import GEOMETRIC, extract_features
from pipeline_lib.features.mesh import (
    AU_BLENDSHAPES,
    MESH_COLUMNS,
    MESH_VERSION,
    blendshape_au_scores,
    mesh_features,
)
from pipeline_lib.features.store import FeatureStore

_GEOMETRY = slice(len(BLENDSHAPES) + 6, None)
_POSE = slice(len(BLENDSHAPES), len(BLENDSHAPES) + 6)


def _frames(points: np.ndarray, pose: np.ndarray | None = None) -> MeshFrames:
    n = len(points)
    pose = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)) if pose is None else pose
    return MeshFrames(points.astype(np.float32), np.zeros((n, len(BLENDSHAPES)), np.float32),
                      pose.astype(np.float32), np.ones(n, bool))


def test_geometry_ignores_where_the_face_sits_its_size_and_roll():
    rng = np.random.default_rng(0)
    face = rng.uniform(20, 90, size=(N_POINTS, 3))
    face[33, :2], face[263, :2] = (35, 50), (77, 50)  # eye corners: a level eye line
    c, s = np.cos(0.4), np.sin(0.4)
    moved = face.copy()
    moved[:, :2] = 1.7 * face[:, :2] @ np.array([[c, s], [-s, c]]) + (13.0, -8.0)
    features, valid = mesh_features(_frames(np.stack([face, moved])))
    assert valid.all() and features.shape == (2, len(MESH_COLUMNS)) == (2, 78)
    np.testing.assert_allclose(features[0, _GEOMETRY], features[1, _GEOMETRY], atol=1e-5)
    # one column by hand: the mouth opening (13 -> 14), downwards, in inter-ocular distances (42 px)
    column = MESH_COLUMNS.index("mouth_open")
    assert features[0, column] == pytest.approx((face[14, 1] - face[13, 1]) / 42.0, abs=1e-6)


def test_pose_reads_yaw_pitch_roll_and_translation():
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_euler("YXZ", [0.3, -0.2, 0.1]).as_matrix()
    matrix[:3, 3] = (1.0, 2.0, -40.0)
    points = np.zeros((2, N_POINTS, 3))
    points[:, 263, 0] = 1.0  # any eye line
    features, _ = mesh_features(_frames(points, np.stack([np.eye(4), matrix])))
    np.testing.assert_allclose(features[0, _POSE], 0.0, atol=1e-6)
    np.testing.assert_allclose(features[1, _POSE], [0.3, -0.2, 0.1, 1.0, 2.0, -40.0], atol=1e-5)


def test_frames_without_a_face_or_an_eye_line_are_zero_and_invalid():
    points = np.zeros((3, N_POINTS, 3))
    points[0, 263, 0] = 1.0
    frames = _frames(points)
    frames.found[1] = False  # no face
    frames.blendshapes[1] = 0.5  # whatever is there is not read
    features, valid = mesh_features(frames)  # frame 2: every point on one spot, no eye line
    assert valid.tolist() == [True, False, False]
    assert not features[1:].any()


def test_every_au_reads_the_mean_of_its_blendshapes():
    features = np.zeros((1, len(MESH_COLUMNS)), np.float32)
    features[0, MESH_COLUMNS.index("jawOpen")] = 0.9
    features[0, MESH_COLUMNS.index("mouthSmileLeft")] = 0.6
    scores = blendshape_au_scores(features)
    expected = dict.fromkeys(AU_NAMES, 0.0) | {"AU26": 0.9, "AU25": 0.3, "AU12": 0.3}
    np.testing.assert_allclose(scores[0], [expected[a] for a in AU_NAMES], atol=1e-6)
    assert all(set(names) <= set(BLENDSHAPES) for names in AU_BLENDSHAPES.values())


def test_the_extractor_writes_the_mesh_group_of_a_face_store(tmp_path):
    face = render_portrait(load_identity("grace_hopper"), build_rig("grace_hopper"), np.zeros(12), size=112)[0]
    t = 4
    crops = np.stack([face, face, np.zeros_like(face), np.full_like(face, 128)])
    present = np.array([True, False, True, True])  # frame 1 absent; 2 and 3 "present" but no face in them
    nan = np.full((t, 5, 2), np.nan, np.float32)
    write_faces(tmp_path / "faces" / "a.h5", FaceTrack(crops, present, np.zeros(t, bool),
                                                      np.zeros((t, 4), np.float32), nan,
                                                      present.astype(np.float32)), {"v": "a"})
    store = FeatureStore(tmp_path / "f.zarr")
    first = extract_features(tmp_path / "faces", ["a"], store, ["mesh"], tmp_path / "no-checkpoint.pt")
    assert [(v.extractor, v.encoded, v.skipped) for v in first] == [("mesh", 1, False)]
    features, valid = store.read("mesh", "a")
    assert features.shape == (t, GEOMETRIC["mesh"]) and valid.tolist() == [True, False, False, False]
    assert store.provenance("mesh", "a")["geometry"] == MESH_VERSION
    assert 0.0 < float(features[0, : len(BLENDSHAPES)].max()) <= 1.0
    again = extract_features(tmp_path / "faces", ["a"], store, ["mesh"], tmp_path / "no-checkpoint.pt")
    assert [v.skipped for v in again] == [True]


def test_worker_processes_write_what_one_process_writes(tmp_path):
    name = "grace_hopper"
    for i in range(3):
        aus = np.eye(12)[[i, 4 + i, 8 + i]].sum(0)  # a different expression per video and frame
        crops = np.stack([render_portrait(load_identity(name), build_rig(name), aus * k, size=112)[0]
                          for k in (0.0, 0.5, 1.0)])
        present = np.array([True, True, i != 1])
        write_faces(tmp_path / "faces" / f"v{i}.h5", FaceTrack(crops, present, np.zeros(3, bool),
                                                              np.zeros((3, 4), np.float32),
                                                              np.full((3, 5, 2), np.nan, np.float32),
                                                              present.astype(np.float32)), {"v": f"v{i}"})
    videos = ["v0", "v1", "v2"]
    one, two = FeatureStore(tmp_path / "one.zarr"), FeatureStore(tmp_path / "two.zarr")
    done = {workers: extract_features(tmp_path / "faces", videos, store, ["mesh"], tmp_path / "none.pt",
                                      workers=workers)
            for workers, store in ((1, one), (2, two))}
    assert [(v.video, v.encoded) for v in done[2]] == [(v.video, v.encoded) for v in done[1]] == [
        ("v0", 3), ("v1", 2), ("v2", 3)]
    for video in videos:
        np.testing.assert_array_equal(two.read("mesh", video)[0], one.read("mesh", video)[0])
        np.testing.assert_array_equal(two.read("mesh", video)[1], one.read("mesh", video)[1])
        assert two.provenance("mesh", video) == one.provenance("mesh", video)


def test_a_landmarker_worker_does_not_import_torch():
    """`features.workers` processes unpickle the extractor's `read`: by name, from a module without torch."""
    import pickle
    import subprocess
    import sys

    from pipeline_lib.features.encode import build_extractor

    read = build_extractor("mesh", None, 0).read
    script = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
              "print(sorted(m for m in ('torch', 'pipeline_lib.features.encode') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(read), capture_output=True, check=True)
    assert out.stdout.decode().strip() == "[]"
