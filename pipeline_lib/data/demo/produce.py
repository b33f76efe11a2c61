"""Render one planned video: draw every frame, encode the mp4, return labels and per-frame truth.

All randomness comes from numpy Generators seeded with (corpus seed, video
index) and split into independent streams, so a video renders identically
in any process and in any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from pipeline_lib.data.demo.annotate import SubjectLabels, annotate
from pipeline_lib.data.demo.identities import PATCH_IOD, load_identity
from pipeline_lib.data.demo.nuisance import make_head_path, make_occluders, make_scene
from pipeline_lib.data.demo.plan import VideoPlan
from pipeline_lib.data.demo.render import Subject, make_background, render_frame
from pipeline_lib.data.demo.rig import build_rig
from pipeline_lib.data.demo.timeline import make_track
from pipeline_lib.data.demo.video import VideoWriter

__all__ = ["SubjectResult", "VideoResult", "render_video"]


@dataclass(frozen=True, eq=False)
class SubjectResult:
    """Truth of one subject of a rendered video (T frames)."""

    name: str
    identity: str
    labels: SubjectLabels
    face_present: np.ndarray  # (T,) bool
    landmarks: np.ndarray  # (T, 5, 2) float32, NaN when absent
    box: np.ndarray  # (T, 4) float32, NaN when absent
    occluded: np.ndarray  # (T,) bool
    nuisance: dict[str, np.ndarray]  # (T,) float32 each: yaw, pitch, roll (radians), iod (px), blur (px)

    def truth_arrays(self, fps: float, split: str) -> dict[str, np.ndarray]:
        """The demo_truth/<name>.npz content."""
        return {
            "face_present": self.face_present, "landmarks": self.landmarks, "box": self.box,
            "occluded": self.occluded, "labels": self.labels.labels, "ce": self.labels.ce,
            "labels_clean": self.labels.clean, "ce_clean": self.labels.ce_clean,
            "identity": np.array(self.identity), "split": np.array(split), "fps": np.array(fps, dtype=np.float64),
            **self.nuisance,
        }


@dataclass(frozen=True, eq=False)
class VideoResult:
    """A rendered video: its plan, each subject's truth, and how many exits and cuts it really got."""

    plan: VideoPlan
    subjects: tuple[SubjectResult, ...]
    exits: int
    cuts: int


def _layout(plan: VideoPlan, identity: str, slot: int, rng: np.random.Generator) -> tuple[tuple[float, float], float]:
    """(eye-midpoint centre, IOD) in frame px; the IOD is normalised by the face box so 'camera' comes out smaller."""
    ident = load_identity(identity)
    box_iods = float(ident.box[2] - ident.box[0]) / PATCH_IOD
    size = plan.height / 192.0 * 2.1 / box_iods
    if len(plan.identities) == 1:
        centre = (plan.width * (0.5 + rng.uniform(-0.08, 0.08)), plan.height * rng.uniform(0.36, 0.44))
        return centre, rng.uniform(29.0, 42.0) * size
    x = (0.25 if slot == 0 else 0.75) + rng.uniform(-0.02, 0.02)
    iod = max(rng.uniform(18.0, 23.0) * size, 0.09 * plan.height)  # keep the small 'camera' face detectable
    return (plan.width * x, plan.height * rng.uniform(0.38, 0.44)), iod


def _exits(plan: VideoPlan, centre_x: float, iod: float, rng: np.random.Generator) -> list[tuple[int, int, float]]:
    out = []
    for _ in range(plan.exits):
        length = int(rng.uniform(0.6, 1.2) * plan.fps) + int(0.8 * plan.fps)
        if length > 0.45 * plan.n_frames:  # a short video keeps its face
            continue
        start = int(rng.integers(1, plan.n_frames - length))
        side = 1.0 if rng.random() < 0.5 else -1.0
        edge = plan.width - centre_x if side > 0 else centre_x
        out.append((start, start + length, side * (edge + 3.0 * iod)))
    return out


def render_video(plan: VideoPlan, video_path: Path) -> VideoResult:
    """Render `plan` into `video_path` (mp4) and return each subject's labels and truth."""
    root = np.random.SeedSequence([plan.seed, plan.index])
    scene_seq, pixel_seq, background_seq, *subject_seqs = root.spawn(3 + len(plan.identities))
    scene_rng = np.random.default_rng(scene_seq)
    scene = make_scene(plan.n_frames, plan.fps, plan.cuts, scene_rng)
    background_rng = np.random.default_rng(background_seq)
    background = make_background(plan.height, plan.width, background_rng)
    cut_background = make_background(plan.height, plan.width, background_rng)

    subjects: list[Subject] = []
    label_rngs: list[np.random.Generator] = []
    n_exits = 0
    for slot, identity in enumerate(plan.identities):
        track_rng, head_rng, label_rng = (np.random.default_rng(s) for s in subject_seqs[slot].spawn(3))
        track = make_track(plan.n_frames, plan.fps, plan.kind, track_rng, compound_start=plan.compound_start)
        centre, iod = _layout(plan, identity, slot, head_rng)
        exits = _exits(plan, centre[0], iod, head_rng)
        n_exits += len(exits)
        head = make_head_path(plan.n_frames, plan.fps, centre, iod, track.va[:, 1], head_rng, exits=exits)
        ident = load_identity(identity)
        occluders = make_occluders(plan.n_frames, plan.fps, plan.occluders, ident.skin, head_rng)
        clothing = cast(tuple[float, float, float],  # an RGB colour: 3 channels
                        tuple(float(c) for c in np.clip(head_rng.uniform(25, 200) + head_rng.normal(0, 30, 3), 0, 255)))
        subjects.append(Subject(ident, build_rig(identity), track, head, tuple(occluders), clothing))
        label_rngs.append(label_rng)

    n, k = plan.n_frames, len(subjects)
    present = np.zeros((k, n), dtype=bool)
    occluded = np.zeros((k, n), dtype=bool)
    landmarks = np.full((k, n, 5, 2), np.nan, dtype=np.float32)
    boxes = np.full((k, n, 4), np.nan, dtype=np.float32)
    pixel_rng = np.random.default_rng(pixel_seq)
    with VideoWriter(video_path, plan.fps, plan.width, plan.height, qp=plan.qp) as writer:
        for t in range(n):
            frame, truths = render_frame(t, background, cut_background, scene, subjects, pixel_rng)
            writer.write(frame)
            for s, truth in enumerate(truths):
                present[s, t], occluded[s, t] = truth.present, truth.occluded
                landmarks[s, t], boxes[s, t] = truth.landmarks, truth.box

    results = []
    for s, subject in enumerate(subjects):
        labels = annotate(subject.track, present[s], plan.fps, plan.tasks, plan.invalid_span, label_rngs[s])
        head = subject.head
        nuisance = {"yaw": head.yaw, "pitch": head.pitch, "roll": head.roll, "iod": head.iod, "blur": scene.blur}
        results.append(SubjectResult(name=plan.subjects[s], identity=plan.identities[s], labels=labels,
                                     face_present=present[s], landmarks=landmarks[s], box=boxes[s],
                                     occluded=occluded[s],
                                     nuisance={k: v.astype(np.float32) for k, v in nuisance.items()}))
    cuts = int(np.count_nonzero(np.diff(scene.cut.astype(np.int8), prepend=0) == 1))
    return VideoResult(plan=plan, subjects=tuple(results), exits=n_exits, cuts=cuts)
