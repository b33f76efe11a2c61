"""`generate_clip`: one standalone labelled demo clip outside the corpus (for `abaw predict` tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline_lib.data.demo._landmark_table import SOURCE_FACES
from pipeline_lib.data.demo.identities import identity_pool
from pipeline_lib.data.demo.plan import MAIN_TASKS, VideoPlan
from pipeline_lib.data.demo.produce import render_video

__all__ = ["ClipTruth", "generate_clip"]

_CLIP_INDEX = 1_000_000  # seeds clips apart from every corpus video index


@dataclass(frozen=True, eq=False)
class ClipTruth:
    """Per-frame truth of a generated clip (T frames, frame pixel coordinates).

    labels: (T, 15) float32 as an annotator would give them (noise, -5/-1 where the face is absent);
    labels_clean: the same without annotation noise; ce / ce_clean: (T,) int64 compound labels (-1 mostly,
    a basic clip has none); face_present, occluded: (T,) bool; landmarks (T, 5, 2) and box (T, 4) float32,
    NaN where absent.
    """

    path: Path
    identity: str
    fps: float
    labels: np.ndarray
    labels_clean: np.ndarray
    ce: np.ndarray
    ce_clean: np.ndarray
    face_present: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    occluded: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.face_present)


def generate_clip(path: Path, seed: int, seconds: float, fps: float = 15.0, width: int = 256, height: int = 192,
                  identity: str | None = None) -> ClipTruth:
    """Render one labelled single-person clip to `path` (mp4) and return its truth.

    The clip has expressions, head motion, lighting, blur and one occluder, but no face exits or cuts.
    `identity` is a demo identity name (e.g. 'grace_hopper', 'lfw_007'); None picks one from `seed`.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive; got {seconds}, {fps}")
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise ValueError(f"width and height must be even and >= 64; got {width}x{height}")
    if identity is None:
        pool = identity_pool(24)
        identity = pool[int(np.random.default_rng([seed, _CLIP_INDEX]).integers(len(pool)))]
    elif identity not in SOURCE_FACES:
        raise ValueError(f"unknown demo identity {identity!r}; e.g. grace_hopper, astronaut, camera, lfw_000..lfw_099")
    path = Path(path)
    plan = VideoPlan(
        seed=seed, index=_CLIP_INDEX, name=path.stem, group="test", split="test", kind="basic",
        identities=(identity,), subjects=(path.stem,), tasks=MAIN_TASKS, n_frames=max(int(round(seconds * fps)), 2),
        fps=fps, width=width, height=height, occluders=1,
    )
    subject = render_video(plan, path).subjects[0]
    return ClipTruth(
        path=path, identity=identity, fps=fps, labels=subject.labels.labels, labels_clean=subject.labels.clean,
        ce=subject.labels.ce, ce_clean=subject.labels.ce_clean, face_present=subject.face_present,
        landmarks=subject.landmarks, box=subject.box, occluded=subject.occluded,
    )
