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

__all__ = ["choose_subject"]


def _fresh_pick(dets: Detections, keep: np.ndarray, side: Literal["left", "right"] | None) -> int:
    candidates = np.flatnonzero(keep)
    centres = (dets.boxes[candidates, 0] + dets.boxes[candidates, 2]) / 2
    if side == "left":
        return int(candidates[np.argmin(centres)])
    if side == "right":
        return int(candidates[np.argmax(centres)])
    areas = (dets.boxes[candidates, 2] - dets.boxes[candidates, 0]) * (dets.boxes[candidates, 3] - dets.boxes[candidates, 1])
    return int(candidates[np.argmax(dets.scores[candidates] * areas)])


def choose_subject(detections: Sequence[Detections], side: Literal["left", "right"] | None = None,
                   min_score: float = 0.9, follow_iou: float = 0.3, max_gap: int = 5) -> np.ndarray:
    """Per-frame index of the subject's detection, or -1 where it is absent. Returns (T,) int64.

    A face overlapping the last chosen box (IoU >= follow_iou, last seen at most
    `max_gap` frames ago) continues the track; otherwise a fresh pick is made
    (by side for two-subject videos, else by score x area).
    """
    chosen = np.full(len(detections), -1, dtype=np.int64)
    last_box: np.ndarray | None = None
    last_seen = -10**9
    for t, dets in enumerate(detections):
        keep = dets.scores >= min_score
        if not keep.any():
            continue
        pick = -1
        if last_box is not None and t - last_seen <= max_gap:
            overlaps = np.where(keep, iou(last_box, dets.boxes), 0.0)
            if overlaps.max() >= follow_iou:
                pick = int(np.argmax(overlaps))
                if side is not None and keep.sum() > 1:
                    # Two subjects: only keep following if the followed face is still on its side.
                    fresh = _fresh_pick(dets, keep, side)
                    pick = pick if pick == fresh or overlaps[fresh] >= follow_iou else fresh
        if pick < 0:
            pick = _fresh_pick(dets, keep, side)
        chosen[t] = pick
        last_box, last_seen = dets.boxes[pick], t
    return chosen
