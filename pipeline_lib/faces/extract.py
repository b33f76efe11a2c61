"""One video file -> one FaceTrack per subject, streaming: never the whole video in memory.

Frames are decoded with PyAV in batches of consecutive frames, detected
together (equal size, which batched MTCNN needs), the subject chosen online,
and aligned crops kept. Memory is one batch of frames plus the crops. A
decode error ends the video where it happened: what was decoded is kept, the
rest is recorded as missing, the error is reported, never raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np

from pipeline_lib.faces.align import CROP_SIZE, align_to_template
from pipeline_lib.faces.detect import Detections, FaceDetector
from pipeline_lib.faces.store import FaceTrack
from pipeline_lib.faces.track import SubjectTracker

__all__ = ["VideoReport", "decode_batches", "extract_faces"]

Side = Literal["left", "right"] | None


@dataclass
class VideoReport:
    """What happened to one video file (all its subjects)."""

    frames_decoded: int = 0
    frames_expected: int = 0
    seconds: float = 0.0
    error: str | None = None
    frame_sizes: set[tuple[int, int]] = field(default_factory=set)

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_decoded": self.frames_decoded,
            "frames_expected": self.frames_expected,
            "frames_missing": max(0, self.frames_expected - self.frames_decoded),
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "frame_sizes": sorted(f"{w}x{h}" for h, w in self.frame_sizes),
        }


def decode_batches(path: Path, batch_size: int, report: VideoReport) -> Iterator[list[np.ndarray]]:
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
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                report.frames_decoded += 1
                report.frame_sizes.add(rgb.shape[:2])
                if batch and (len(batch) == batch_size or batch[0].shape != rgb.shape):
                    yield batch
                    batch = []
                batch.append(rgb)
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # corrupt, truncated or unreadable
        report.error = f"{path.name}: decoding stopped after {report.frames_decoded} frames: {exc}"
    if batch:
        yield batch


class _SubjectBuffer:
    """Per-frame results of one subject, growing as frames stream by."""

    def __init__(self, side: Side, min_score: float, size: int) -> None:
        self.tracker = SubjectTracker(side=side, min_score=min_score)
        self.size = size
        self.crops: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.landmarks: list[np.ndarray] = []
        self.scores: list[float] = []

    def add(self, frame: np.ndarray, dets: Detections) -> None:
        k = self.tracker.update(dets)
        if k < 0:
            self.crops.append(np.zeros((self.size, self.size, 3), np.uint8))
            self.boxes.append(np.full(4, np.nan, np.float32))
            self.landmarks.append(np.full((5, 2), np.nan, np.float32))
            self.scores.append(0.0)
            return
        self.crops.append(align_to_template(frame, dets.landmarks[k], self.size))
        self.boxes.append(dets.boxes[k])
        self.landmarks.append(dets.landmarks[k])
        self.scores.append(float(dets.scores[k]))

    def track(self, n_frames: int) -> FaceTrack:
        """Pad to `n_frames` (frames the container promised but did not decode are absent)."""
        pad = n_frames - len(self.scores)
        crops = np.stack(self.crops) if self.crops else np.zeros((0, self.size, self.size, 3), np.uint8)
        boxes = np.stack(self.boxes) if self.boxes else np.zeros((0, 4), np.float32)
        landmarks = np.stack(self.landmarks) if self.landmarks else np.zeros((0, 5, 2), np.float32)
        scores = np.asarray(self.scores, np.float32)
        if pad > 0:
            crops = np.concatenate([crops, np.zeros((pad, self.size, self.size, 3), np.uint8)])
            boxes = np.concatenate([boxes, np.full((pad, 4), np.nan, np.float32)])
            landmarks = np.concatenate([landmarks, np.full((pad, 5, 2), np.nan, np.float32)])
            scores = np.concatenate([scores, np.zeros(pad, np.float32)])
        present = scores > 0
        return FaceTrack(crops=crops, present=present, filled=np.zeros(len(present), bool),
                         boxes=boxes.astype(np.float32), landmarks=landmarks.astype(np.float32), scores=scores)


def extract_faces(path: Path, sides: list[Side], detector: FaceDetector, *, expected_frames: int = 0,
                  batch_size: int = 32, min_score: float = 0.9, crop_size: int = CROP_SIZE,
                  on_frames: Callable[[int], None] | None = None) -> tuple[list[FaceTrack], VideoReport]:
    """Faces of each subject of one video file (`sides`: [None] or ['left', 'right']).

    Returns one FaceTrack per entry of `sides`, each max(decoded, expected)
    frames long, and the video's report. `on_frames(n)` is called after each
    batch (for progress bars).
    """
    report = VideoReport(frames_expected=expected_frames)
    buffers = [_SubjectBuffer(side, min_score, crop_size) for side in sides]
    start = time.perf_counter()
    for batch in decode_batches(path, batch_size, report):
        for frame, dets in zip(batch, detector.detect(batch)):
            for buffer in buffers:
                buffer.add(frame, dets)
        if on_frames is not None:
            on_frames(len(batch))
    report.seconds = time.perf_counter() - start
    n_frames = max(report.frames_decoded, expected_frames)
    return [buffer.track(n_frames) for buffer in buffers], report
