"""`generate_corpus`: plan, render (in worker processes), write the official layout, truth and card.

Videos are rendered in a spawn-context process pool (or in-process with
workers=1); each depends only on its plan, so the output is identical for any
number of workers. The parent writes every annotation file, the MTL files,
the test lists, `demo_truth/<subject>.npz` and `corpus_card.md`.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline_lib.config import DemoCorpusSettings
from pipeline_lib.data.annotations import write_annotation
from pipeline_lib.data.demo.annotate import file_values
from pipeline_lib.data.demo.plan import GROUPS, MAIN_TASKS, VideoPlan, plan_corpus
from pipeline_lib.data.demo.produce import VideoResult, render_video
from pipeline_lib.data.demo.summary import CorpusSummary, LabelTally, render_card
from pipeline_lib.data.labels import LABEL_COLUMNS, task_spec
from pipeline_lib.data.layout import TEST_LIST_TASKS, AffWild2Layout, write_test_list
from pipeline_lib.data.mtl import frame_is_annotated, write_mtl

__all__ = ["CARD_FILE", "TRUTH_DIR", "generate_corpus"]

CARD_FILE = "corpus_card.md"
TRUTH_DIR = "demo_truth"


def _render(job: tuple[VideoPlan, Path]) -> VideoResult:
    plan, path = job
    return render_video(plan, path)


def _rendered(jobs: list[tuple[VideoPlan, Path]], workers: int) -> Iterator[VideoResult]:
    """Results in plan order, from a spawn pool of `workers` processes (or in-process)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_render, jobs)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=min(workers, len(jobs))) as pool:
        yield from pool.imap(_render, jobs, chunksize=1)


def _mtl_labels(labels: np.ndarray, tasks: tuple[str, ...]) -> np.ndarray:
    """Frame-aligned (T, 15) labels with the tasks the video is not annotated for marked invalid."""
    out = labels.copy()
    for task, columns in LABEL_COLUMNS.items():
        if task not in tasks:
            out[:, columns] = task_spec(task).invalid
    return out


def generate_corpus(root: Path, settings: DemoCorpusSettings, seed: int, progress: bool = True,
                    workers: int = 2) -> CorpusSummary:
    """Write the demo corpus under `root` in the official layout; return its counts.

    Also writes `root/demo_truth/<subject>.npz` (face_present (T,), landmarks (T, 5, 2), box (T, 4),
    occluded (T,), labels (T, 15), ce (T,), labels_clean, ce_clean, identity, split, fps) and
    `root/corpus_card.md`. Same settings and seed give identical annotation files and decoded frames.
    """
    root = Path(root)
    layout = AffWild2Layout(root)
    layout.videos_dir().mkdir(parents=True, exist_ok=True)
    (root / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    plans = plan_corpus(settings, seed)
    jobs = [(plan, layout.videos_dir() / f"{plan.name}.mp4") for plan in plans]

    tally = LabelTally()
    video_files: dict[str, int] = {g: 0 for g in GROUPS}
    frames: dict[str, int] = {g: 0 for g in GROUPS}
    identities: dict[str, set[str]] = {"train": set(), "val": set(), "test": set(), "unlabeled": set()}
    mtl: dict[str, dict[str, np.ndarray]] = {"train": {}, "val": {}}
    quirks = dict.fromkeys(["two_subject_videos", "task_subset_videos", "cross_task_videos", "face_exit_events",
                            "cut_events",
                            "face_less_frames", "occluded_frames", "invalid_span_files",
                            "mismatched_annotation_files"], 0)
    mismatched: list[tuple[str, int, int]] = []
    bar = tqdm(total=sum(p.n_frames for p in plans), unit="frame", desc="demo corpus", disable=not progress)
    for result in _rendered(jobs, workers):
        plan = result.plan
        video_files[plan.group] += 1
        frames[plan.group] += plan.n_frames
        quirks["two_subject_videos"] += int(len(result.subjects) == 2)
        quirks["task_subset_videos"] += int(plan.split in ("train", "val") and "CE" not in plan.tasks
                                            and plan.tasks != MAIN_TASKS)
        quirks["cross_task_videos"] += int(plan.moved_task is not None)
        quirks["face_exit_events"] += result.exits
        quirks["cut_events"] += result.cuts
        present_any = np.any([s.face_present for s in result.subjects], axis=0)
        quirks["face_less_frames"] += int((~present_any).sum())
        for subject in result.subjects:
            identities[plan.split].add(subject.identity)
            quirks["occluded_frames"] += int(subject.occluded.sum())
            quirks["invalid_span_files"] += int(plan.invalid_span)
            # numpy's stubs let a ** mapping fill allow_pickle (a bool) too; these keys are array names
            np.savez_compressed(root / TRUTH_DIR / f"{subject.name}.npz",
                                **subject.truth_arrays(plan.fps, plan.split))  # type: ignore[arg-type]
            for task in plan.tasks:
                values = file_values(subject.labels, task, plan.count_delta)
                path = layout.annotation_path(task, plan.split_of(task), subject.name)
                write_annotation(path, task, values)
                tally.add(task, plan.split_of(task), values)
                if len(values) != plan.n_frames:
                    quirks["mismatched_annotation_files"] += 1
                    mismatched.append((path.relative_to(root).as_posix(), len(values), plan.n_frames))
            for split in mtl:  # a cross-task video has rows in both files, each with its split's tasks
                tasks = tuple(t for t in plan.tasks if t in MAIN_TASKS and plan.split_of(t) == split)
                if tasks:
                    mtl[split][subject.name] = _mtl_labels(subject.labels.labels, tasks)
        bar.set_postfix_str(f"{plan.name} ({plan.group})", refresh=False)
        bar.update(plan.n_frames)
    bar.close()

    mtl_rows = {}
    for split, labels in mtl.items():
        write_mtl(layout.mtl_path(split), labels)
        mtl_rows[split] = int(sum(frame_is_annotated(a).sum() for a in labels.values()))
    test_names = [p.name for p in plans if p.group == "test"]
    for task_name in TEST_LIST_TASKS:
        write_test_list(layout.test_list_path(task_name), test_names)

    summary = CorpusSummary(
        seed=seed, settings=settings.model_dump(), video_files=video_files, frames=frames,
        identities={k: tuple(sorted(v)) for k, v in identities.items()},
        annotation_files=dict(sorted(tally.files.items())), annotation_lines=dict(sorted(tally.lines.items())),
        valid_lines=dict(sorted(tally.valid.items())),
        expr_frames={k: tuple(v) for k, v in sorted(tally.expr.items())},
        ce_frames={k: tuple(v) for k, v in sorted(tally.ce.items())},
        au_positives={k: tuple(v) for k, v in sorted(tally.au.items())},
        mtl_rows=mtl_rows, test_lists={t: len(test_names) for t in TEST_LIST_TASKS}, quirks=quirks,
        mismatched_files=tuple(sorted(mismatched)),
    )
    (root / CARD_FILE).write_text(render_card(summary) + "\n", encoding="utf-8")
    return summary

