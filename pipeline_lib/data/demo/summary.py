"""What a generated corpus holds: the `CorpusSummary` counts and the `corpus_card.md` built from them.

Label counts are tallied from the exact arrays written to the annotation
files (`LabelTally.add`), so a reader that parses those files back and
tallies them the same way must arrive at the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, EXPR_NAMES, task_spec

__all__ = ["CorpusSummary", "LabelTally", "render_card"]


@dataclass
class LabelTally:
    """Running per-(task, split) counts of annotation files, lines, valid lines and classes."""

    files: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    valid: dict[str, int] = field(default_factory=dict)
    expr: dict[str, list[int]] = field(default_factory=dict)
    ce: dict[str, list[int]] = field(default_factory=dict)
    au: dict[str, list[int]] = field(default_factory=dict)

    def add(self, task: str, split: str, values: np.ndarray) -> None:
        """Count one annotation file's values (as read_annotation returns them)."""
        key = f"{task}/{split}"
        values = np.asarray(values)
        self.files[key] = self.files.get(key, 0) + 1
        self.lines[key] = self.lines.get(key, 0) + len(values)
        spec = task_spec(task)
        marked = values != spec.invalid  # (N,) or (N, L)
        valid = marked.all(axis=1) if marked.ndim == 2 else marked
        if spec.kind == "multilabel":  # positives per output
            counts = self.au.setdefault(split, [0] * spec.outputs)
            for a, n in enumerate((values[valid] == 1).sum(axis=0).tolist()):
                counts[a] += int(n)
        elif spec.kind == "multiclass":  # frames per class
            counts = getattr(self, spec.key).setdefault(split, [0] * spec.outputs)
            for c, n in enumerate(np.bincount(values[valid].astype(np.int64), minlength=spec.outputs).tolist()):
                counts[c] += int(n)
        self.valid[key] = self.valid.get(key, 0) + int(valid.sum())


@dataclass(frozen=True)
class CorpusSummary:
    """Counts of a generated demo corpus (everything corpus_card.md reports).

    Keys: groups are train, val, two_subject, ce_train, ce_val, test, unlabeled; "<task>/<split>" for
    annotation counts (split train or val); per-split class counts in EXPR_NAMES / CE_NAMES / AU_NAMES order.
    """

    seed: int
    settings: Mapping[str, Any]
    video_files: Mapping[str, int]
    frames: Mapping[str, int]
    identities: Mapping[str, tuple[str, ...]]
    annotation_files: Mapping[str, int]
    annotation_lines: Mapping[str, int]
    valid_lines: Mapping[str, int]
    expr_frames: Mapping[str, tuple[int, ...]]
    ce_frames: Mapping[str, tuple[int, ...]]
    au_positives: Mapping[str, tuple[int, ...]]
    mtl_rows: Mapping[str, int]
    test_lists: Mapping[str, int]
    quirks: Mapping[str, int]
    mismatched_files: tuple[tuple[str, int, int], ...]  # (annotation file, lines, decoded frames)

    @property
    def total_videos(self) -> int:
        return sum(self.video_files.values())

    @property
    def total_frames(self) -> int:
        return sum(self.frames.values())


_QUIRK_TEXT = {
    "two_subject_videos": "videos holding two people side by side, annotated as `<video>_left` / `<video>_right`",
    "task_subset_videos": "labelled videos annotated for only some of VA, EXPR, AU",
    "face_exit_events": "times a face leaves the frame and comes back",
    "cut_events": "cuts to an empty background",
    "face_less_frames": "frames where no face is present (exits, cuts); labelled invalid (-5 / -1)",
    "occluded_frames": "subject-frames with a hand or object over part of the face (face present, labels valid)",
    "invalid_span_files": "subjects with one extra invalid span (0.5-1.5 s) in one task",
    "mismatched_annotation_files": "annotation files with 1-3 lines more or fewer than the video's frames",
}


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def render_card(summary: CorpusSummary) -> str:
    """The markdown corpus card; every number in it comes from `summary`."""
    s = summary
    lines = [
        "# Demo corpus card", "",
        f"Synthetic Aff-Wild2-layout corpus from `pipeline_lib.data.demo` (seed {s.seed}): real face photos",
        "(matplotlib's Grace Hopper, scikit-image's astronaut, camera and lfw_subset faces) animated by",
        "action-unit-driven piecewise-affine warps. Expressions are EMFACS AU prototypes with onset-apex-offset",
        "intensity, compound expressions the union of two basic ones, valence/arousal follow the circumplex",
        "(smoothed). Labels are smooth in time; frames are not: per-frame AU jitter, unlabelled 2-3 frame AU",
        "twitches, blinks, head sway that grows with arousal, lighting drift, blur bursts, sensor noise and",
        "H.264 compression. Annotation noise: 0-2 frame lag, VA error, short EXPR swaps and AU flips.",
        "`demo_truth/<video>.npz` (outside the official layout) holds per-frame face presence, 5 landmarks and",
        "boxes in frame pixels, occlusion flags and the labels (clean and as annotated) of every subject.", "",
        "## Videos and frames", "",
    ]
    groups = list(s.video_files)
    lines += _table(["group", "videos", "frames"],
                    [[g, s.video_files[g], s.frames[g]] for g in groups] + [["total", s.total_videos, s.total_frames]])
    lines += ["## Annotation files", ""]
    lines += _table(["task/split", "files", "lines", "valid lines"],
                    [[k, s.annotation_files[k], s.annotation_lines[k], s.valid_lines[k]] for k in s.annotation_files])
    lines += ["## EXPR frames per class (valid lines)", ""]
    lines += _table(["split", *EXPR_NAMES], [[k, *v] for k, v in s.expr_frames.items()])
    lines += ["## CE frames per class (valid lines)", ""]
    lines += _table(["split", *CE_NAMES], [[k, *v] for k, v in s.ce_frames.items()])
    lines += ["## AU positives (valid lines)", ""]
    lines += _table(["split", *AU_NAMES], [[k, *v] for k, v in s.au_positives.items()])
    lines += ["## MTL rows", ""]
    lines += _table(["split", "rows"], [[k, v] for k, v in s.mtl_rows.items()])
    lines += ["## Test lists", ""]
    lines += _table(["task", "videos"], [[k, v] for k, v in s.test_lists.items()])
    lines += ["## Identities", "", "Train and validation people are disjoint; test uses validation people,",
              "unlabelled videos use lfw faces outside the labelled pool.", ""]
    lines += _table(["split", "count", "names"], [[k, len(v), ", ".join(v)] for k, v in s.identities.items()])
    lines += ["## Quirks", ""]
    lines += _table(["quirk", "count", "what"], [[k, v, _QUIRK_TEXT.get(k, "")] for k, v in s.quirks.items()])
    lines += ["## Annotation files whose length differs from the video", ""]
    lines += _table(["file", "lines", "frames"], [list(row) for row in s.mismatched_files])
    lines += ["## Settings", ""]
    lines += _table(["key", "value"], [[k, v] for k, v in s.settings.items()])
    return "\n".join(lines)
