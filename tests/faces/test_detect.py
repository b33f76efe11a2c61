"""Real MTCNN on a generated clip: faces found, coordinates mapped back to source pixels."""


import numpy as np
import pytest

from pipeline_lib.data.demo.clip import generate_clip
from pipeline_lib.data.demo.video import read_frames
from pipeline_lib.faces.detect import FaceDetector
from pipeline_lib.faces.track import choose_subject


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    truth = generate_clip(path, seed=2, seconds=0.6, fps=10.0, width=256, height=192, identity="grace_hopper")
    return read_frames(path), truth


@pytest.mark.parametrize("max_side", [None, 160])
def test_landmarks_come_back_in_source_pixels(clip, max_side):
    frames, truth = clip
    detections = FaceDetector(max_side=max_side, min_face_fraction=0.1).detect(list(frames))
    chosen = choose_subject(detections)
    assert (chosen >= 0).all()
    iod = np.linalg.norm(truth.landmarks[:, 1] - truth.landmarks[:, 0], axis=1)
    for t, (dets, k) in enumerate(zip(detections, chosen)):
        error = np.linalg.norm(dets.landmarks[k] - truth.landmarks[t], axis=1).mean()
        assert error < 0.15 * iod[t], (t, error, iod[t])


def test_frames_of_different_sizes_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="one size"):
        FaceDetector().detect([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)])
    with pytest.raises(ValueError, match="max_side"):
        FaceDetector(max_side=8)
    assert FaceDetector().detect([]) == []
    empty = FaceDetector().detect([np.zeros((64, 64, 3), np.uint8)])
    assert len(empty) == 1 and len(empty[0]) == 0
