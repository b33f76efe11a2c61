"""One video file -> one face store per subject, streaming: memory is one batch of frames, never the video.

Frames are decoded with PyAV in batches of consecutive frames. Full MTCNN
detection runs on key frames only (batched, on a down-scaled copy when the
frame is large); between key frames each subject's face is followed by
re-localising its previous box with MTCNN's last stage at full resolution
(`FaceDetector.refine`). A low refinement confidence, or a jump of the box,
triggers a full detection on that frame right away, as does a subject with
no face to follow. Aligned crops stream into each subject's store file; the
small per-frame arrays stay in memory and are written at the end.

A decode error ends the video where it happened: what was decoded is kept,
the rest is recorded as missing, the error is reported, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from pipeline_lib.faces.align import CROP_SIZE, align_to_template
from pipeline_lib.faces.detect import Detections, FaceDetector
from pipeline_lib.faces.gaps import fillable_gaps, interpolate_gaps, nearest_source
from pipeline_lib.faces.store import FaceStoreWriter
from pipeline_lib.faces.track import SubjectTracker
from pipeline_lib.heap import release_freed_memory

__all__ = ["ExtractSettings", "TrackSummary", "VideoReport", "decode_batches", "extract_faces", "inside_share"]

Side = Literal["left", "right"] | None


@dataclass(frozen=True)
class ExtractSettings:
    """How one video is processed (the face stage's params, minus the detector's own)."""

    batch_size: int = 32  # frames decoded (and key frames detected) together
    keyframe_interval: int = 10  # full detection every N frames; 1 = every frame
    min_score: float = 0.9  # detector confidence for a face to count
    track_min_score: float = 0.8  # refinement confidence to keep following a face
    max_motion: float = 0.25  # box centre shift or log-size change (in box sides) that forces a re-detect
    min_inside: float = 0.6  # share of a face box that must lie inside the frame for the face to count
    fill_gap: int = 0  # fill absent runs up to this many frames from neighbours (0 = off)
    crop_size: int = CROP_SIZE
    decode_threads: int = 0  # 0 = let FFmpeg choose

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.keyframe_interval < 1 or self.fill_gap < 0 or self.decode_threads < 0:
            raise ValueError(f"invalid extract settings: {self}")


@dataclass
class VideoReport:
    """What happened to one video file (all its subjects)."""

    frames_decoded: int = 0
    frames_expected: int = 0
    seconds: float = 0.0
    error: str | None = None
    frame_sizes: set[tuple[int, int]] = field(default_factory=set)
    pixel_formats: set[str] = field(default_factory=set)
    frame_intervals: tuple[float, float] | None = None  # (shortest, longest) seconds between frames
    keyframes: int = 0  # frames with a scheduled full detection
    refined: int = 0  # frames followed by box refinement only
    redetected: int = 0  # unscheduled full detections (lost, moved, or searching)

    @property
    def variable_frame_rate(self) -> bool:
        # Timestamps rounded to the stream's time base jitter a little; a real VFR stream varies by far more.
        return self.frame_intervals is not None and self.frame_intervals[1] > 1.5 * self.frame_intervals[0]

    def problems(self) -> list[str]:
        """Human-readable reasons this video needs a look (empty when it decoded cleanly)."""
        found = [self.error] if self.error else []
        if not self.error and self.frames_decoded == 0:
            found.append("no frames decoded")
        if self.frames_expected and self.frames_decoded < self.frames_expected:
            found.append(f"{self.frames_expected - self.frames_decoded} of {self.frames_expected} frames missing")
        if len(self.frame_sizes) > 1:
            found.append(f"frame size changes: {', '.join(sorted(f'{w}x{h}' for h, w in self.frame_sizes))}")
        if any(h % 2 or w % 2 for h, w in self.frame_sizes):
            found.append("odd frame size")
        if any(fmt.startswith("gray") for fmt in self.pixel_formats):
            found.append("grayscale frames (converted to RGB)")
        if self.variable_frame_rate:
            found.append("variable frame rate (frames indexed in decode order)")
        return found

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_decoded": self.frames_decoded,
            "frames_expected": self.frames_expected,
            "frames_missing": max(0, self.frames_expected - self.frames_decoded),
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "frame_sizes": sorted(f"{w}x{h}" for h, w in self.frame_sizes),
            "pixel_formats": sorted(self.pixel_formats),
            "variable_frame_rate": self.variable_frame_rate,
            "keyframes": self.keyframes,
            "refined": self.refined,
            "redetected": self.redetected,
        }


@dataclass(frozen=True, eq=False)
class TrackSummary:
    """A subject's per-frame arrays as written to its store, without the crops (for metrics)."""

    present: np.ndarray  # (T,) bool
    filled: np.ndarray  # (T,) bool
    boxes: np.ndarray  # (T, 4) float32, NaN where absent
    landmarks: np.ndarray  # (T, 5, 2) float32, NaN where absent
    scores: np.ndarray  # (T,) float32


def decode_batches(path: Path, batch_size: int, report: VideoReport, threads: int = 0) -> Iterator[list[np.ndarray]]:
    """Yield lists of up to `batch_size` consecutive equal-size (H, W, 3) uint8 RGB frames.

    A size change (variable-size streams) closes the batch early. Grey or
    odd-sized frames come out as RGB via PyAV. Decoding stops at the first
    error, which lands in `report.error`.
    """
    batch: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                report.error = f"{path.name}: no video stream"
                return
            stream = container.streams.video[0]
            if threads:
                stream.codec_context.thread_count = threads
            else:
                stream.thread_type = "AUTO"
            last_time: float | None = None
            shortest, longest = np.inf, 0.0
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                report.frames_decoded += 1
                report.frame_sizes.add(rgb.shape[:2])
                report.pixel_formats.add(frame.format.name)
                if frame.time is not None:
                    if last_time is not None and frame.time > last_time:
                        shortest, longest = min(shortest, frame.time - last_time), max(longest, frame.time - last_time)
                        report.frame_intervals = (shortest, longest)
                    last_time = frame.time
                if batch and (len(batch) == batch_size or batch[0].shape != rgb.shape):
                    yield batch
                    batch = []
                batch.append(rgb)
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # corrupt, truncated or unreadable
        report.error = f"{path.name}: decoding stopped after {report.frames_decoded} frames: {exc}"
    if batch:
        yield batch


def inside_share(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Share of each box (N, 4) lying inside a height x width frame -> (N,)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
    cut_w = np.clip(np.minimum(boxes[:, 2], width) - np.maximum(boxes[:, 0], 0), 0, None)
    cut_h = np.clip(np.minimum(boxes[:, 3], height) - np.maximum(boxes[:, 1], 0), 0, None)
    return cut_w * cut_h / area


def _within_frame(dets: Detections, height: int, width: int, min_inside: float) -> Detections:
    """Drop faces mostly outside the frame: their aligned crop would be mostly replicated border pixels."""
    keep = inside_share(dets.boxes, height, width) >= min_inside
    return dets if keep.all() else Detections(dets.boxes[keep], dets.scores[keep], dets.landmarks[keep])


def _moved(before: np.ndarray, after: np.ndarray, limit: float) -> bool:
    """True when a box's centre moved, or its size changed, by more than `limit` box sides."""
    side = max(float(before[2] - before[0]), float(before[3] - before[1]), 1.0)
    shift = np.hypot((after[0] + after[2] - before[0] - before[2]) / 2,
                     (after[1] + after[3] - before[1] - before[3]) / 2)
    new_side = max(float(after[2] - after[0]), float(after[3] - after[1]), 1.0)
    return bool(shift > limit * side or abs(np.log(new_side / side)) > limit)


class _FrameArrays:
    """Per-frame boxes, landmarks and scores in arrays grown by doubling.

    Appending one small array per frame to Python lists fragments the heap
    between the large per-frame buffers (decoded frames, tensors): measured,
    RSS then grew ~0.4 MiB a frame on a 10-minute video. Copying into
    preallocated arrays keeps memory flat in the video's length.
    """

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.boxes = np.full((max(capacity, 64), 4), np.nan, np.float32)  # (C, 4)
        self.landmarks = np.full((max(capacity, 64), 5, 2), np.nan, np.float32)  # (C, 5, 2)
        self.scores = np.zeros(max(capacity, 64), np.float32)  # (C,)

    def append(self, box: np.ndarray | None, landmarks: np.ndarray | None, score: float) -> None:
        if self.n == len(self.scores):
            self._grow(2 * len(self.scores))
        if box is not None and landmarks is not None:
            self.boxes[self.n] = box
            self.landmarks[self.n] = landmarks
        self.scores[self.n] = score
        self.n += 1

    def _grow(self, capacity: int) -> None:
        extra = capacity - len(self.scores)
        if extra > 0:
            self.boxes = np.concatenate([self.boxes, np.full((extra, 4), np.nan, np.float32)])
            self.landmarks = np.concatenate([self.landmarks, np.full((extra, 5, 2), np.nan, np.float32)])
            self.scores = np.concatenate([self.scores, np.zeros(extra, np.float32)])

    def padded(self, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes, landmarks, scores) exactly `n_frames` long (NaN / 0 beyond what was appended)."""
        self._grow(n_frames)
        return self.boxes[:n_frames].copy(), self.landmarks[:n_frames].copy(), self.scores[:n_frames].copy()


class _Subject:
    """One subject's state while frames stream by: the tracker, the store writer, the per-frame arrays."""

    def __init__(self, side: Side, writer: FaceStoreWriter, settings: ExtractSettings, expected_frames: int) -> None:
        self.tracker = SubjectTracker(side=side, min_score=settings.min_score)
        self.writer, self.size = writer, settings.crop_size
        self.box: np.ndarray | None = None  # last box, while the face is being followed (a copy)
        self.frames = _FrameArrays(expected_frames + 8)
        self._pending = np.zeros((settings.batch_size, self.size, self.size, 3), np.uint8)  # (B, S, S, 3) reused
        self._n_pending = 0

    def _slot(self) -> np.ndarray:
        if self._n_pending == len(self._pending):
            self.flush()
        self._n_pending += 1
        return self._pending[self._n_pending - 1]

    def take(self, frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray, score: float) -> None:
        self._slot()[...] = align_to_template(frame, landmarks, self.size)
        self.box = np.array(box, np.float32)
        self.frames.append(box, landmarks, score)

    def miss(self) -> None:
        self._slot()[...] = 0
        self.box = None
        self.frames.append(None, None, 0.0)

    def flush(self) -> None:
        if self._n_pending:
            self.writer.append(self._pending[: self._n_pending])
            self._n_pending = 0

    def summary(self, n_frames: int, fill_gap: int) -> TrackSummary:
        """Per-frame arrays padded to `n_frames`, short gaps filled (crops copied inside the store)."""
        self.flush()
        boxes, landmarks, scores = self.frames.padded(n_frames)
        present = scores > 0
        filled = np.zeros(n_frames, bool)
        gaps = fillable_gaps(present, fill_gap)
        if gaps:
            boxes, landmarks = interpolate_gaps(boxes, gaps), interpolate_gaps(landmarks, gaps)
            for start, stop in gaps:
                for t in range(start, stop):
                    self.writer.write_crop(t, self.writer.read_crop(nearest_source(start, stop, t)))
                present[start:stop] = filled[start:stop] = True
        return TrackSummary(present, filled, boxes, landmarks, scores)


def extract_faces(path: Path, subjects: Sequence[tuple[Side, Path]], detector: FaceDetector,
                  provenance: Sequence[Mapping[str, Any]], settings: ExtractSettings = ExtractSettings(), *,
                  expected_frames: int = 0,
                  on_frames: Callable[[int], None] | None = None) -> tuple[list[TrackSummary], VideoReport]:
    """Detect, follow and align the faces of one video file into one store per subject.

    subjects: (side, store path) pairs, side None for single-subject videos or
    'left' / 'right'; provenance: one JSON-able mapping per subject, stored
    in its file's attrs. Each store gets max(decoded, expected) frames. Returns
    the subjects' per-frame arrays and the video's report; `on_frames(n)` is
    called after each batch (for progress bars).
    """
    report = VideoReport(frames_expected=expected_frames)
    start = time.perf_counter()
    writers = [FaceStoreWriter(store, settings.crop_size) for _, store in subjects]
    try:
        states = [_Subject(side, writer, settings, expected_frames) for (side, _), writer in zip(subjects, writers)]
        t0 = 0
        for batch in decode_batches(path, settings.batch_size, report, settings.decode_threads):
            _process_batch(batch, t0, states, detector, settings, report)
            for state in states:
                state.flush()
            release_freed_memory()  # each frame's large freed buffers: RSS would creep up over a long video
            t0 += len(batch)
            if on_frames is not None:
                on_frames(len(batch))
        n_frames = max(report.frames_decoded, expected_frames)
        summaries = [state.summary(n_frames, settings.fill_gap) for state in states]
        report.seconds = time.perf_counter() - start
        for writer, summary, attrs in zip(writers, summaries, provenance, strict=True):
            writer.commit(summary.present, summary.filled, summary.boxes, summary.landmarks, summary.scores, attrs,
                          report={**report.as_dict(), "problems": report.problems()})
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return summaries, report


def _process_batch(batch: list[np.ndarray], t0: int, states: list[_Subject], detector: FaceDetector,
                   settings: ExtractSettings, report: VideoReport) -> None:
    keys = [i for i in range(len(batch)) if (t0 + i) % settings.keyframe_interval == 0]
    key_dets = dict(zip(keys, detector.detect([batch[i] for i in keys])))
    report.keyframes += len(keys)
    full_res = detector.works_at_full_resolution(batch[0].shape)
    for i, frame in enumerate(batch):
        dets = key_dets.get(i)
        if dets is None:
            if all(state.box is not None for state in states):
                refined = detector.refine(frame, np.stack([state.box for state in states]))  # type: ignore[misc]
                inside = inside_share(refined.boxes, *frame.shape[:2])
                kept = all(refined.scores[j] >= settings.track_min_score and inside[j] >= settings.min_inside
                           and not _moved(state.box, refined.boxes[j], settings.max_motion)  # type: ignore[arg-type]
                           for j, state in enumerate(states))
                if kept:
                    for j, state in enumerate(states):
                        state.tracker.carry(refined.boxes[j])
                        state.take(frame, refined.boxes[j], refined.landmarks[j], float(refined.scores[j]))
                    report.refined += 1
                    continue
            dets = detector.detect([frame])[0]
            report.redetected += 1
        _assign(frame, dets, states, detector, full_res, settings)


def _assign(frame: np.ndarray, dets: Detections, states: list[_Subject], detector: FaceDetector, full_res: bool,
            settings: ExtractSettings) -> None:
    """Give each subject its face from a full detection (or mark it absent)."""
    dets = _within_frame(dets, frame.shape[0], frame.shape[1], settings.min_inside)
    for state in states:
        k = state.tracker.update(dets)
        if k < 0:
            state.miss()
            continue
        box, landmarks, score = dets.boxes[k], dets.landmarks[k], float(dets.scores[k])
        if not full_res:
            # Detected on a shrunk copy: re-localise at full resolution for sharper landmarks.
            sharp = detector.refine(frame, box[None])
            if sharp.scores[0] >= settings.track_min_score:
                box, landmarks = sharp.boxes[0], sharp.landmarks[0]
        state.take(frame, box, landmarks, score)
