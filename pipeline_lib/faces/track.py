"""Which detection is the subject, frame by frame.

Single-subject videos follow the face that best overlaps the previous
choice (a bystander entering the frame does not steal the track), starting
from the most confident, largest face. `_left` / `_right` subjects take the
left-most / right-most face, kept stable by box overlap while it lasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from pipeline_lib.faces.detect import Detections, iou

__all__ = ["SubjectTracker", "choose_subject"]


def _fresh_pick(dets: Detections, keep: np.ndarray, side: Literal["left", "right"] | None) -> int:
    candidates = np.flatnonzero(keep)
    centres = (dets.boxes[candidates, 0] + dets.boxes[candidates, 2]) / 2
    if side == "left":
        return int(candidates[np.argmin(centres)])
    if side == "right":
        return int(candidates[np.argmax(centres)])
    boxes = dets.boxes[candidates]  # (K, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return int(candidates[np.argmax(dets.scores[candidates] * areas)])


class SubjectTracker:
    """Online subject choice: feed each frame's detections in order, get the subject's index or -1.

    A face overlapping the last chosen box (IoU >= follow_iou, last seen at most
    `max_gap` frames ago) continues the track; otherwise a fresh pick is made
    (by side for two-subject videos, else by score x area). Being online, it
    lets the face stage align crops while frames stream by.
    """

    def __init__(self, side: Literal["left", "right"] | None = None, min_score: float = 0.9,
                 follow_iou: float = 0.3, max_gap: int = 5) -> None:
        self.side, self.min_score, self.follow_iou, self.max_gap = side, min_score, follow_iou, max_gap
        self._last_box: np.ndarray | None = None
        self._last_seen = -10**9
        self._t = -1

    def carry(self, box: np.ndarray) -> None:
        """Advance one frame on which the subject was followed without a full detection (box re-localised)."""
        self._t += 1
        self._last_box, self._last_seen = np.asarray(box, dtype=np.float32), self._t

    def update(self, dets: Detections) -> int:
        self._t += 1
        keep = dets.scores >= self.min_score
        if not keep.any():
            return -1
        pick = -1
        if self._last_box is not None and self._t - self._last_seen <= self.max_gap:
            overlaps = np.where(keep, iou(self._last_box, dets.boxes), 0.0)
            if overlaps.max() >= self.follow_iou:
                pick = int(np.argmax(overlaps))
                if self.side is not None and keep.sum() > 1:
                    # Two subjects: keep following only while the followed face is still on its side.
                    fresh = _fresh_pick(dets, keep, self.side)
                    pick = pick if pick == fresh or overlaps[fresh] >= self.follow_iou else fresh
        if pick < 0:
            pick = _fresh_pick(dets, keep, self.side)
        self._last_box, self._last_seen = dets.boxes[pick], self._t
        return pick


def choose_subject(detections: Sequence[Detections], side: Literal["left", "right"] | None = None,
                   min_score: float = 0.9, follow_iou: float = 0.3, max_gap: int = 5) -> np.ndarray:
    """Per-frame index of the subject's detection, or -1 where it is absent. Returns (T,) int64."""
    tracker = SubjectTracker(side, min_score, follow_iou, max_gap)
    return np.array([tracker.update(d) for d in detections], dtype=np.int64)
