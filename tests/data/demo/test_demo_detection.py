"""MTCNN (the face stage's detector) finds the rendered faces where the truth says a face is present."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline_lib.data.demo.generate import TRUTH_DIR
from pipeline_lib.data.demo.video import read_frames
from pipeline_lib.data.layout import AffWild2Layout

EVERY = 3  # sample every 3rd frame


@pytest.fixture(scope="module")
def detector():
    facenet = pytest.importorskip("facenet_pytorch")
    import torch

    torch.set_num_threads(2)
    return facenet.MTCNN(keep_all=True, device="cpu")


def _truth_by_video(root):
    layout = AffWild2Layout(root)
    videos: dict[str, list] = {}
    for path in sorted((root / TRUTH_DIR).glob("*.npz")):
        videos.setdefault(layout.base_video(path.stem), []).append(np.load(path))
    return videos


def test_mtcnn_detects_present_faces_and_not_absent_ones(tiny_corpus, detector):
    root = tiny_corpus.root
    hits = present = faceless = false_alarms = 0
    for video, truths in _truth_by_video(root).items():
        frames = read_frames(root / "videos" / f"{video}.mp4", every=EVERY)
        for k, frame in enumerate(frames):
            t = k * EVERY
            boxes, _ = detector.detect(frame)
            centres = np.zeros((0, 2)) if boxes is None else (boxes[:, :2] + boxes[:, 2:]) / 2
            shown = [truth for truth in truths if truth["face_present"][t]]
            for truth in shown:
                x0, y0, x1, y1 = truth["box"][t]
                inside = (centres[:, 0] > x0) & (centres[:, 0] < x1) & (centres[:, 1] > y0) & (centres[:, 1] < y1)
                present += 1
                hits += bool(inside.any())
            if not shown:
                faceless += 1
                false_alarms += len(centres) > 0
    assert present > 50
    assert hits / present >= 0.95, f"MTCNN found {hits}/{present} present faces"
    assert faceless > 0, "the tiny corpus should include face-less frames"
    assert false_alarms <= max(1, 0.1 * faceless), f"{false_alarms}/{faceless} face-less frames had detections"
