"""Streaming per-video extraction on real encoded clips: key frames, refinement, gaps, broken files."""

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.demo.clip import generate_clip
from pipeline_lib.faces.align import template_for
from pipeline_lib.faces.detect import Detections, FaceDetector
from pipeline_lib.faces.extract import ExtractSettings, _moved, extract_faces
from pipeline_lib.faces.quality import crop_scale_distance
from pipeline_lib.faces.store import FaceTrack, read_faces, read_provenance


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return path, generate_clip(path, seed=4, seconds=1.0, fps=10.0, width=192, height=128, identity="astronaut")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(min_face_fraction=0.15)


def _run(path: Path, out: Path, detector, expected: int = 10, seen: list[int] | None = None,
         **settings) -> tuple[FaceTrack, object]:
    store = out / f"{path.stem}.h5"
    (summary,), report = extract_faces(path, [(None, store)], detector, [{"run": 1}], ExtractSettings(**settings),
                                       expected_frames=expected, on_frames=None if seen is None else seen.append)
    track = read_faces(store)
    np.testing.assert_array_equal(track.present, summary.present)
    assert read_provenance(store) == {"run": 1} and not list(out.glob(".*partial"))
    return track, report


def test_every_face_frame_gets_an_aligned_crop(tmp_path, clip, detector):
    path, truth = clip
    seen: list[int] = []
    track, report = _run(path, tmp_path, detector, seen=seen, batch_size=4, keyframe_interval=1)
    assert seen == [4, 4, 2] and report.frames_decoded == 10 and report.error is None
    assert report.keyframes == 10 and report.refined == 0
    assert track.n_frames == 10 and track.present.all() and not track.filled.any()
    assert track.crops.shape == (10, 112, 112, 3) and track.crops.reshape(10, -1).std(axis=1).min() > 10
    error = np.linalg.norm(track.landmarks - truth.landmarks, axis=2).mean(axis=1)
    iod = np.linalg.norm(truth.landmarks[:, 1] - truth.landmarks[:, 0], axis=1)
    assert (error < 0.15 * iod).all()


def test_keyframes_and_refinement_agree_with_detecting_every_frame(tmp_path, clip, detector):
    path, _ = clip
    every, _ = _run(path, tmp_path / "every", detector, keyframe_interval=1)
    keyed, report = _run(path, tmp_path / "keyed", detector, keyframe_interval=5)
    assert report.keyframes == 2 and report.refined + report.redetected == 8 and report.refined >= 6
    assert keyed.present.all()
    assert np.nanmax(crop_scale_distance(keyed.landmarks, every.landmarks)) < 3.0


class _ScriptedDetector:
    """Stands in for MTCNN: one face at a fixed place, except where the script says otherwise."""

    def __init__(self, refine_score: float = 0.99, refine_shift: float = 0.0, absent: frozenset[int] = frozenset()):
        self.refine_score, self.refine_shift, self.absent = refine_score, refine_shift, absent
        self.landmarks = (template_for(60) + [60, 30]).astype(np.float32)  # a 60 px face inside a 192x128 frame
        self.box = np.array([60, 30, 120, 90], np.float32)
        self.frames_detected: list[int] = []
        self._next_frame = 0

    def works_at_full_resolution(self, shape) -> bool:
        return True

    def detect(self, frames):
        out = []
        for _ in frames:
            self.frames_detected.append(self._next_frame)
            present = self._next_frame not in self.absent
            out.append(Detections(self.box[None], np.array([0.99], np.float32), self.landmarks[None])
                       if present else Detections.empty())
            self._next_frame += 1
        return out

    def refine(self, frame, boxes):
        shift = np.float32(self.refine_shift * 60)
        return Detections(boxes + [shift, 0, shift, 0], np.full(len(boxes), self.refine_score, np.float32),
                          np.repeat(self.landmarks[None], len(boxes), axis=0) + [shift, 0])


def test_confident_refinement_replaces_detection_between_key_frames(tmp_path, clip):
    fake = _ScriptedDetector(refine_score=0.95)
    track, report = _run(clip[0], tmp_path, fake, keyframe_interval=5)
    assert (report.keyframes, report.refined, report.redetected) == (2, 8, 0)
    np.testing.assert_allclose(track.scores, [0.99] + [0.95] * 4 + [0.99] + [0.95] * 4)


@pytest.mark.parametrize("fake", [_ScriptedDetector(refine_score=0.5), _ScriptedDetector(refine_shift=0.5)],
                         ids=["low-confidence", "box-jumped"])
def test_degraded_refinement_triggers_an_early_full_detection(tmp_path, clip, fake):
    track, report = _run(clip[0], tmp_path, fake, keyframe_interval=5)
    assert (report.keyframes, report.refined, report.redetected) == (2, 0, 8)
    assert track.present.all() and (track.scores == np.float32(0.99)).all()


def test_box_motion_limit():
    box = np.array([0, 0, 100, 100], np.float32)
    assert not _moved(box, box + 10, 0.25)
    assert _moved(box, box + 30, 0.25)
    assert _moved(box, np.array([0, 0, 140, 140], np.float32), 0.25)  # grew by more than e^0.25


@pytest.mark.parametrize("fill_gap", [0, 1])
def test_short_gap_is_filled_only_when_allowed_and_marked(tmp_path, clip, fill_gap):
    fake = _ScriptedDetector(absent=frozenset({3, 7, 8}))
    track, _ = _run(clip[0], tmp_path, fake, keyframe_interval=1, fill_gap=fill_gap)
    assert not track.present[[7, 8]].any() and (track.crops[[7, 8]] == 0).all()  # 2 frames: too long to fill
    if fill_gap:
        assert track.present[3] and track.filled.tolist() == [t == 3 for t in range(10)]
        np.testing.assert_array_equal(track.crops[3], track.crops[2])  # the nearer (earlier on a tie) neighbour
        np.testing.assert_allclose(track.landmarks[3], (track.landmarks[2] + track.landmarks[4]) / 2)
        assert track.scores[3] == 0
    else:
        assert not track.present[3] and not track.filled.any() and (track.crops[3] == 0).all()


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
    track, report = _run(cut, tmp_path, detector)
    assert 0 < report.frames_decoded < 10
    assert track.n_frames == 10 and report.as_dict()["frames_missing"] == 10 - report.frames_decoded
    assert track.present[: report.frames_decoded].all() and not track.present[report.frames_decoded:].any()


def test_truncated_mp4_without_index_is_reported(tmp_path, clip, detector):
    path, _ = clip
    broken = tmp_path / "broken.mp4"
    data = path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the mp4 index sits at the end: nothing decodes
    track, report = _run(broken, tmp_path, detector)
    assert report.frames_decoded == 0 and "broken.mp4: decoding stopped after 0 frames" in report.error
    assert track.n_frames == 10 and not track.present.any()


@pytest.mark.parametrize("content", [b"", b"this is not a video"])
def test_unreadable_file_is_reported_not_raised(tmp_path, detector, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    track, report = _run(bad, tmp_path, detector, expected=3)
    assert report.frames_decoded == 0 and "bad.mp4" in report.error
    assert track.n_frames == 3 and not track.present.any() and (track.crops == 0).all()


def test_an_exception_mid_video_leaves_no_store(tmp_path, clip):
    class _Broken(_ScriptedDetector):
        def refine(self, frame, boxes):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        extract_faces(clip[0], [(None, tmp_path / "v.h5")], _Broken(), [{}], ExtractSettings(keyframe_interval=5))
    assert list(tmp_path.iterdir()) == []


def test_inside_share():
    from pipeline_lib.faces.extract import inside_share

    boxes = np.array([[10, 10, 50, 50], [-20, 0, 20, 40], [90, 90, 130, 130]], np.float32)
    np.testing.assert_allclose(inside_share(boxes, height=100, width=100), [1.0, 0.5, 0.0625])


def test_face_mostly_outside_the_frame_is_absent(tmp_path, clip):
    fake = _ScriptedDetector()
    fake.box = np.array([150, 30, 250, 130], np.float32)  # 42 of 100 px columns inside a 192 px wide frame
    track, _ = _run(clip[0], tmp_path, fake, keyframe_interval=1)
    assert not track.present.any()
    track, _ = _run(clip[0], tmp_path / "lax", fake, keyframe_interval=1, min_inside=0.3)
    assert track.present.all()


def test_frame_arrays_grow_past_their_capacity_and_pad():
    from pipeline_lib.faces.extract import _FrameArrays

    arrays = _FrameArrays(capacity=0)  # starts at 64 slots
    for t in range(150):
        present = t % 3 != 0
        arrays.append(np.full(4, t, np.float32) if present else None,
                      np.full((5, 2), t, np.float32) if present else None, float(present))
    boxes, landmarks, scores = arrays.padded(160)
    assert boxes.shape == (160, 4) and landmarks.shape == (160, 5, 2) and scores.shape == (160,)
    assert boxes[149, 0] == 149 and np.isnan(boxes[150:]).all() and np.isnan(landmarks[0]).all()
    assert scores.tolist() == [float(t % 3 != 0) for t in range(150)] + [0.0] * 10


def test_grey_odd_sized_variable_rate_video_is_decoded_and_its_quirks_reported(tmp_path):
    from fractions import Fraction

    import av

    from pipeline_lib.faces.extract import VideoReport, decode_batches

    path = tmp_path / "quirky.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 63, 47, "gray"
        stream.time_base = Fraction(1, 10)
        for pts in (0, 1, 2, 5, 6, 7):  # a 3-frame hole in the timestamps
            frame = av.VideoFrame.from_ndarray(np.full((47, 63), 20 * pts, np.uint8), format="gray")
            frame.pts, frame.time_base = pts, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    report = VideoReport(frames_expected=6)
    frames = [f for batch in decode_batches(path, 4, report) for f in batch]
    assert len(frames) == 6 and frames[0].shape == (47, 63, 3) and report.error is None
    assert report.problems() == ["odd frame size", "grayscale frames (converted to RGB)",
                                 "variable frame rate (frames indexed in decode order)"]


def test_clean_report_has_no_problems_and_missing_frames_are_counted():
    from pipeline_lib.faces.extract import VideoReport

    clean = VideoReport(frames_decoded=10, frames_expected=10, frame_sizes={(192, 256)}, pixel_formats={"yuv420p"},
                        frame_intervals=(0.1, 0.1))
    assert clean.problems() == []
    short = VideoReport(frames_decoded=7, frames_expected=10, frame_sizes={(192, 256), (96, 128)})
    assert short.problems() == ["3 of 10 frames missing", "frame size changes: 128x96, 256x192"]
