"""The plan `abaw corpus` shows before the heavy stages run: what each task trains, validates and is tested
on, which videos sit in one task's training split and another's validation split, and the disk the face
and feature stores will take.

Disk figures are the corpus's frames times bytes per frame measured on the demo corpus (below); the face
store holds every decoded frame (absent faces are zero crops that compress to almost nothing, so the
estimate is an upper bound on a corpus with many face-less frames).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pipeline_lib.data.manifest import LABEL_TASKS, SPLITS, VideoEntry

__all__ = ["FACE_BYTES_PER_FRAME", "FEATURE_BYTES_PER_VALUE", "FEATURE_BYTES_PER_VIDEO", "CorpusPlan", "corpus_plan",
           "feature_bytes"]

# data/faces bytes / subject frames of the demo corpus (HDF5, 112x112x3 uint8 crops, lzf, one chunk per frame,
# plus boxes, landmarks and masks): 229,533,766 B / 8,167 frames, 2026-12-04.
FACE_BYTES_PER_FRAME: Final[float] = 28_100.0
# data/features.zarr per stored feature value: float16, which zarr's default zstd does not shrink measurably;
# plus per video and array the shard index, the .valid mask and metadata. The demo's mae_tiny arrays: 3,809,093 B
# for 8,167 x 192 values (3,136,128 B as float16) in 50 videos, 2026-12-04.
FEATURE_BYTES_PER_VALUE: Final[float] = 2.0
FEATURE_BYTES_PER_VIDEO: Final[float] = 13_500.0
_GB: Final[float] = 1e9


@dataclass(frozen=True)
class CorpusPlan:
    """Counts per task and split, the cross-task videos, and disk estimates (see `metrics`)."""

    tasks: dict[str, dict[str, dict[str, int]]]  # task -> split -> videos / frames (/ labelled_frames)
    unlabeled: dict[str, int]  # videos / frames in no annotation and no test list
    cross_task: dict[str, Any]  # videos in one task's train split and another's val split
    disk: dict[str, Any]  # frames, videos, video_bytes, videos_gb, face_store_gb, feature_store_gb_per_array, bytes

    @property
    def frames(self) -> int:
        return int(self.disk["frames"])

    def metrics(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "unlabeled": self.unlabeled, "cross_task": self.cross_task, "disk": self.disk}

    def lines(self, feature_arrays: Mapping[int, int] | None = None) -> list[str]:
        """The plan as a small text table; `feature_arrays` (width -> arrays) prices the configured extractors."""
        header = f"{'task':<5} " + " ".join(f"{s + ' videos/frames':>24}" for s in SPLITS)
        rows = [header]
        for task, splits in self.tasks.items():
            cells = [f"{splits[s]['videos']:>8} / {splits[s]['frames']:>13,}" if s in splits else f"{'-':>24}"
                     for s in SPLITS]
            rows.append(f"{task:<5} " + " ".join(cells))
        rows.append(f"unlabelled: {self.unlabeled['videos']} videos, {self.unlabeled['frames']:,} frames")
        pairs = ", ".join(f"{k} {v}" for k, v in self.cross_task["pairs"].items()) or "none"
        rows.append(f"in one task's training split and another's validation split: {self.cross_task['videos']} "
                    f"video(s) ({pairs}); each task trains and validates on its own split")
        features = ""
        if feature_arrays:
            total = sum(arrays * feature_bytes(self.frames, self.disk["videos"], width)
                        for width, arrays in feature_arrays.items())
            features = f", feature store ~{_size(total)} for the configured extractors"
        rows.append(f"disk: videos {_size(self.disk['video_bytes'])}, face store "
                    f"~{_size(self.frames * FACE_BYTES_PER_FRAME)}{features}")
        return rows


def feature_bytes(frames: int, videos: int, width: int) -> float:
    """Bytes of one extractor's arrays in the feature store for `videos` videos of `frames` frames in all."""
    return frames * width * FEATURE_BYTES_PER_VALUE + videos * FEATURE_BYTES_PER_VIDEO


def _size(n_bytes: float) -> str:
    return f"{n_bytes / _GB:.1f} GB" if n_bytes >= _GB else f"{n_bytes / 1e6:.1f} MB"


def _cross_task(entries: Iterable[VideoEntry]) -> dict[str, Any]:
    pairs: Counter[str] = Counter()
    names = []
    for entry in entries:
        train, val = entry.tasks_in("train"), entry.tasks_in("val")
        if train and val:
            names.append(entry.name)
            pairs.update(f"{a} train/{b} val" for a in train for b in val)
    return {"videos": len(names), "pairs": dict(sorted(pairs.items())), "names": names}


def corpus_plan(entries: Iterable[VideoEntry], labelled_frames: Mapping[tuple[str, str], int], video_bytes: int,
                feature_widths: Iterable[int] = (10, 192, 384, 768)) -> CorpusPlan:
    """Counts, cross-task videos and disk estimates of a manifest's entries.

    `labelled_frames` maps (task, split) to frames with a label (validate_annotations counts them);
    `feature_widths` are the widths priced per feature array (landmarks 10, mae_tiny/small/base 192/384/768).
    """
    entries = list(entries)
    tasks: dict[str, dict[str, dict[str, int]]] = {}
    for task in LABEL_TASKS:
        for split in SPLITS:
            members = [e for e in entries if e.split_of(task) == split]
            if not members:
                continue
            counts = {"videos": len(members), "frames": sum(e.n_frames for e in members)}
            if split != "test":
                counts["labelled_frames"] = int(labelled_frames.get((task, split), 0))
            tasks.setdefault(task, {})[split] = counts
    unlabeled = [e for e in entries if e.unlabeled]
    frames = sum(e.n_frames for e in entries)
    disk = {
        "frames": frames,
        "videos": len(entries),
        "video_bytes": int(video_bytes),
        "videos_gb": round(video_bytes / _GB, 3),
        "face_store_gb": round(frames * FACE_BYTES_PER_FRAME / _GB, 3),
        "feature_store_gb_per_array": {str(w): round(feature_bytes(frames, len(entries), w) / _GB, 3)
                                       for w in feature_widths},
        "bytes": {"face_store_per_frame": FACE_BYTES_PER_FRAME, "feature_value": FEATURE_BYTES_PER_VALUE,
                  "feature_array_per_video": FEATURE_BYTES_PER_VIDEO},
    }
    return CorpusPlan(tasks, {"videos": len(unlabeled), "frames": sum(e.n_frames for e in unlabeled)},
                      _cross_task(entries), disk)
