"""Build the pipeline's raw folder (data/raw) from the demo generator or a real Aff-Wild2 copy.

Either way data/raw ends up holding the annotations in the official layout, a
`manifest.csv` (one row per video/subject) and `source.json` saying where the
videos are. For the demo the videos live inside data/raw; for a real copy they
stay where they are (hundreds of GB are not duplicated), and only the small
annotation and test-list files are copied so DVC tracks the labels.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from pipeline_lib.config import DataSettings
from pipeline_lib.data.annotations import read_annotation
from pipeline_lib.data.errors import DataError, LayoutError
from pipeline_lib.data.labels import LABEL_COLUMNS, SPLIT_FOLDERS, task_spec
from pipeline_lib.data.layout import AffWild2Layout
from pipeline_lib.data.manifest import Split, VideoEntry, build_manifest, write_manifest
from pipeline_lib.data.mtl import read_mtl
from pipeline_lib.data.plan import CorpusPlan, corpus_plan
from pipeline_lib.data.raw import MANIFEST_FILE, SOURCE_FILE


@dataclass(frozen=True)
class PrepareResult:
    """What `abaw corpus` did, for its report, its plan and its one-line summary."""

    kind: str
    source: str
    entries: tuple[VideoEntry, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    labelled_frames: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (task, split) -> frames
    skipped: tuple[str, ...] = ()  # videos or subjects left out (missing, unreadable, outside the root)
    video_bytes: int = 0  # size on disk of the video files the manifest names

    @cached_property
    def plan(self) -> CorpusPlan:
        return corpus_plan(self.entries, self.labelled_frames, self.video_bytes)

    def metrics(self) -> dict[str, object]:
        return {
            "source": self.source,
            "videos": len(self.entries),
            "frames": int(sum(e.n_frames for e in self.entries)),
            **self.plan.metrics(),
            "skipped_videos": list(self.skipped),
            "warnings": len(self.warnings),
            "warning_lines": list(self.warnings),
        }

    def summary_line(self) -> str:
        frames, cross = self.plan.frames, self.plan.cross_task["videos"]
        return (f"corpus ({self.kind}): {len(self.entries)} videos/subjects, {frames} frames, {cross} in one task's "
                f"training and another's validation split; {len(self.skipped)} skipped, "
                f"{len(self.warnings)} warning(s)")


def _replace_dir(partial: Path, final: Path) -> None:
    """Swap a finished folder into place so an interrupted run never looks complete."""
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def _fresh_partial(out: Path) -> Path:
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _shown(err: DataError, label_root: Path, shown_root: Path | None) -> str:
    """`err` as one line, its file named under `shown_root` (where the folder ends up) rather than `label_root`."""
    if shown_root is None or err.path is None or not err.path.is_relative_to(label_root):
        return str(err)
    return str(DataError(shown_root / err.path.relative_to(label_root), err.message, err.line))


def _labelled(values: np.ndarray, task: str) -> np.ndarray:
    """(N,) bool: rows of a task's label values (as read_annotation / the MTL columns give them) with a label."""
    spec = task_spec(task)
    marked = (values != spec.invalid).reshape(len(values), -1)  # (N, L)
    # A VA row needs both values; an AU row counts once any AU is annotated.
    return marked.all(axis=1) if spec.kind == "regression" else marked.any(axis=1)


def validate_annotations(label_root: Path, entries: list[VideoEntry], shown_root: Path | None = None
                         ) -> tuple[list[VideoEntry], list[str], dict[tuple[str, str], int]]:
    """Parse every annotation file once, now rather than mid-training; count labelled frames per (task, split).

    A broken file costs only its own task for its own video: the task is
    dropped from that entry and the file's one-line error becomes a warning.
    A video whose every label file is broken becomes unlabelled (its faces
    still serve pretraining), unless one of them was a validation file: then
    it is left out, so that it never joins the pseudo-label pool.
    A file whose line count differs from the video's decoded frames is kept
    (labels are aligned by frame index) and reported once, here. Warnings name
    files under `shown_root` when given (the finished folder of a build that
    is still being written under `label_root`).
    """
    layout = AffWild2Layout(label_root)
    warnings: list[str] = []
    mtl: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLIT_FOLDERS:
        if layout.mtl_path(split).is_file():
            try:
                mtl[split] = read_mtl(layout.mtl_path(split))
            except DataError as exc:
                warnings.append(f"{_shown(exc, label_root, shown_root)}; MTL file ignored")
    labelled: Counter[tuple[str, str]] = Counter()
    checked: list[VideoEntry] = []
    for entry in entries:
        kept: dict[str, Split] = {}
        for task, split in entry.splits.items():
            if split not in SPLIT_FOLDERS:  # test tasks have no label files
                kept[task] = split
                continue
            path = layout.annotation_path(task, split, entry.name)
            try:
                if path.is_file():
                    values = read_annotation(path, task)
                else:  # the split's MTL file holds this task (build_manifest saw its rows)
                    rows = mtl.get(split, {}).get(entry.name)
                    values = rows[:, LABEL_COLUMNS[task]] if rows is not None else np.empty((0, 1))
            except DataError as exc:
                warnings.append(f"{_shown(exc, label_root, shown_root)}; {task} labels of '{entry.name}' skipped")
                continue
            kept[task] = split
            labelled[task, split] += int(_labelled(values[: entry.n_frames], task).sum())
            if path.is_file() and len(values) != entry.n_frames:
                mismatch = DataError(path, f"{len(values)} label lines for {entry.n_frames} decoded frames; "
                                           "aligned by frame index")
                warnings.append(_shown(mismatch, label_root, shown_root))
        if not kept and "val" in entry.splits.values():
            # Left as an unlabelled video it would join the pseudo-label pool though it sits in a validation split.
            warnings.append(f"{entry.name}: no readable label file left and a validation split among them; "
                            "video skipped")
            continue
        checked.append(dataclasses.replace(entry, splits=kept) if len(kept) < len(entry.splits) else entry)
    return checked, warnings, dict(labelled)


def _finish(partial: Path, out: Path, kind: str, video_root: str, source: str) -> PrepareResult:
    # Labels are checked where the user keeps them, so messages name their files.
    label_root = partial if video_root == "." else Path(video_root)
    entries, warnings, skipped = build_manifest(label_root)
    shown_root = out if label_root == partial else None  # the demo's files are named where they end up
    scanned = {e.name for e in entries}
    entries, label_warnings, labelled = validate_annotations(label_root, entries, shown_root)
    skipped = sorted({*skipped, *(scanned - {e.name for e in entries})})
    warnings = [*warnings, *label_warnings]
    write_manifest(partial / MANIFEST_FILE, entries)
    info = {"kind": kind, "video_root": video_root, "source": source}
    (partial / SOURCE_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    _replace_dir(partial, out)
    root = out if video_root == "." else Path(video_root)
    video_bytes = sum((root / path).stat().st_size for path in {e.video_path for e in entries})
    return PrepareResult(kind=kind, source=source, entries=tuple(entries), warnings=tuple(warnings),
                         labelled_frames=labelled, skipped=tuple(skipped), video_bytes=video_bytes)


def prepare_demo(out: Path, data: DataSettings, seed: int, workers: int = 2, progress: bool = True) -> PrepareResult:
    """Generate the embedded demo corpus into `out` (official layout, videos included)."""
    from pipeline_lib.data.demo.generate import generate_corpus  # heavy imports: only when needed

    partial = _fresh_partial(out)
    generate_corpus(partial, data.demo, seed=seed, workers=workers, progress=progress)
    return _finish(partial, out, kind="demo", video_root=".", source="demo")


def import_affwild2(out: Path, source_root: Path) -> PrepareResult:
    """Copy the annotations of an Aff-Wild2-layout root into `out`; videos stay in place."""
    root = source_root.expanduser().resolve()
    if not root.is_dir():
        raise LayoutError(root, "data.source is neither 'demo' nor an existing folder")
    missing = [name for name in ("videos", "annotations") if not (root / name).is_dir()]
    if missing:
        raise LayoutError(root, f"not an Aff-Wild2 layout root: missing {', '.join(m + '/' for m in missing)} "
            "(see README, 'Running on a real Aff-Wild2 copy')")
    partial = _fresh_partial(out)
    for name in ("annotations", "test_set"):
        if (root / name).is_dir():
            shutil.copytree(root / name, partial / name)
    return _finish(partial, out, kind="affwild2", video_root=str(root), source=str(root))


def prepare_raw(out: Path, data: DataSettings, seed: int, workers: int = 2, progress: bool = True) -> PrepareResult:
    """data.source 'demo' generates the demo corpus; a path imports that Aff-Wild2 copy."""
    if data.is_demo:
        return prepare_demo(out, data, seed=seed, workers=workers, progress=progress)
    return import_affwild2(out, Path(data.source))
