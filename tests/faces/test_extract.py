"""Streaming per-video extraction on real encoded clips, including broken files."""

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.demo.clip import generate_clip
from pipeline_lib.faces.detect import FaceDetector
from pipeline_lib.faces.extract import extract_faces


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return path, generate_clip(path, seed=4, seconds=1.0, fps=10.0, width=192, height=128, identity="astronaut")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(min_face_fraction=0.15)


def test_every_face_frame_gets_an_aligned_crop(clip, detector):
    path, truth = clip
    seen: list[int] = []
    (track,), report = extract_faces(path, [None], detector, expected_frames=10, batch_size=4, on_frames=seen.append)
    assert seen == [4, 4, 2] and report.frames_decoded == 10 and report.error is None
    assert track.n_frames == 10 and track.present.all()
    assert track.crops.shape == (10, 112, 112, 3) and track.crops.reshape(10, -1).std(axis=1).min() > 10
    error = np.linalg.norm(track.landmarks - truth.landmarks, axis=2).mean(axis=1)
    iod = np.linalg.norm(truth.landmarks[:, 1] - truth.landmarks[:, 0], axis=1)
    assert (error < 0.15 * iod).all()


def _remux_to_mpegts(src: Path, dst: Path) -> None:
    """Same packets in MPEG-TS, a container that stays decodable up to where it is cut."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mpegts") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


def test_truncated_video_keeps_what_decodes_and_pads_the_rest(tmp_path, clip, detector):
    path, _ = clip
    whole, cut = tmp_path / "whole.ts", tmp_path / "cut.ts"
    _remux_to_mpegts(path, whole)
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    (track,), report = extract_faces(cut, [None], detector, expected_frames=10)
    assert 0 < report.frames_decoded < 10
    assert track.n_frames == 10 and report.as_dict()["frames_missing"] == 10 - report.frames_decoded
    assert track.present[: report.frames_decoded].all() and not track.present[report.frames_decoded:].any()


def test_truncated_mp4_without_index_is_reported(tmp_path, clip, detector):
    path, _ = clip
    broken = tmp_path / "broken.mp4"
    data = path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the mp4 index sits at the end: nothing decodes
    (track,), report = extract_faces(broken, [None], detector, expected_frames=10)
    assert report.frames_decoded == 0 and "broken.mp4: decoding stopped after 0 frames" in report.error
    assert track.n_frames == 10 and not track.present.any()


@pytest.mark.parametrize("content", [b"", b"this is not a video"])
def test_unreadable_file_is_reported_not_raised(tmp_path, detector, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    (track,), report = extract_faces(bad, [None], detector, expected_frames=3)
    assert report.frames_decoded == 0 and "bad.mp4" in report.error
    assert track.n_frames == 3 and not track.present.any() and (track.crops == 0).all()
