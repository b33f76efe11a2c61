"""The face stage over a whole corpus: plan per video file, skip finished stores, fan out to worker processes.

Work is split by video file (a `_left`/`_right` pair shares one), so every
store file has exactly one writer; `shard` splits the same plan across
processes or machines without coordination. A store is finished when it
exists with the provenance this run would write (source hash, settings, code
digest), so an interrupted run resumes by skipping finished videos, and a
change of settings or of this package's code redoes them.
"""

from __future__ import annotations

import hashlib
import os
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_lib.config import FacesSettings
from pipeline_lib.data.layout import AffWild2Layout
from pipeline_lib.data.raw import RawCorpus
from pipeline_lib.faces.extract import ExtractSettings, Side, TrackSummary, extract_faces
from pipeline_lib.faces.imported import import_cropped_aligned
from pipeline_lib.faces.quality import compare_to_truth, landmark_jitter
from pipeline_lib.faces.store import FORMAT_VERSION, is_complete, read_report, read_track_info
from pipeline_lib.files import file_sha256
from pipeline_lib.workers import stop_now

__all__ = ["STORE_SETTINGS", "FaceJob", "JobResult", "code_digest", "extract_settings", "plan_jobs", "run_jobs",
           "store_path"]

# Settings that change what lands in a store (workers and threads do not).
# The faces keys that change what a store holds, so a store's provenance (the device too: GPU kernels give other
# last digits). dvc.yaml's faces params are these plus `strict` and `samples` (tests/test_structure.py checks).
STORE_SETTINGS = ("source", "device", "batch_size", "keyframe_interval", "max_side", "min_face_fraction", "min_score",
                  "track_min_score", "max_motion", "min_inside", "fill_gap")


@dataclass(frozen=True)
class FaceJob:
    """One video file and the subjects (manifest entries) it holds."""

    video_file: Path
    subjects: tuple[tuple[str, Side], ...]  # (entry name, side)
    expected_frames: int
    import_dirs: tuple[Path | None, ...]  # per subject: cropped_aligned folder to import, or None to detect
    truth_files: tuple[Path | None, ...]  # per subject: demo ground truth, when the corpus has it

    @property
    def key(self) -> str:
        return self.video_file.name


@dataclass
class JobResult:
    """What one job did: its report, problems, and per-subject figures."""

    key: str
    skipped: bool
    seconds: float = 0.0
    frames: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)


def store_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.h5"


@cache
def code_digest() -> str:
    """Hash of this package's source: a store written by other code is not a finished store."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def plan_jobs(raw: RawCorpus, settings: FacesSettings, shard: tuple[int, int] = (0, 1)) -> list[FaceJob]:
    """One job per video file in the manifest, sorted by file; shard (i, n) keeps every n-th from the i-th."""
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= i < n")
    layout = AffWild2Layout(raw.video_root)
    by_file: dict[Path, list[Any]] = {}
    for entry in raw.entries:
        by_file.setdefault(raw.video_file(entry), []).append(entry)
    jobs = []
    for path in sorted(by_file, key=lambda p: p.name):
        entries = sorted(by_file[path], key=lambda e: e.name)
        imports = tuple(folder if settings.source == "cropped_aligned" and folder.is_dir() else None
                        for folder in (layout.cropped_aligned_dir(e.name) for e in entries))
        truths = tuple(t if (t := raw.raw_dir / "demo_truth" / f"{e.name}.npz").is_file() else None for e in entries)
        jobs.append(FaceJob(path, tuple((e.name, e.side) for e in entries), max(e.n_frames for e in entries),
                            imports, truths))
    return jobs[index::count]


def provenance(job: FaceJob, name: str, side: Side, settings: FacesSettings, source_sha256: str,
               imported: bool) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "code": code_digest(), "video_file": job.video_file.name,
            "source_sha256": source_sha256, "subject": name, "side": side,
            "method": "cropped_aligned" if imported else "detect",
            "settings": {key: getattr(settings, key) for key in STORE_SETTINGS}}


def extract_settings(settings: FacesSettings) -> ExtractSettings:
    """The extraction loop's settings from the faces section (the stage and `abaw predict` alike)."""
    return ExtractSettings(batch_size=settings.batch_size, keyframe_interval=settings.keyframe_interval,
                           min_score=settings.min_score, track_min_score=settings.track_min_score,
                           max_motion=settings.max_motion, min_inside=settings.min_inside, fill_gap=settings.fill_gap,
                           decode_threads=settings.threads_per_worker)


@cache
def _detector(device: str, max_side: int | None, min_face_fraction: float) -> Any:
    from pipeline_lib.faces.detect import FaceDetector  # one per process, reused across videos

    return FaceDetector(device=device, max_side=max_side, min_face_fraction=min_face_fraction)


def _subject_figures(summary: TrackSummary, truth_file: Path | None) -> dict[str, Any]:
    detected = summary.present & ~summary.filled
    figures: dict[str, Any] = {"frames": int(len(summary.present)), "present": int(summary.present.sum()),
                               "filled": int(summary.filled.sum())}
    jitter = landmark_jitter(summary.landmarks, detected) if np.isfinite(summary.landmarks).any() else float("nan")
    figures["jitter_px"] = None if np.isnan(jitter) else round(float(jitter), 4)
    if truth_file is not None:
        with np.load(truth_file) as truth:
            figures["truth"] = compare_to_truth(summary.present, summary.filled, summary.landmarks,
                                                truth["face_present"], truth["landmarks"])
    return figures


def _import_problems(name: str, report: dict[str, Any]) -> list[str]:
    found = [report["error"]] if report.get("error") else []
    return [f"{name}: {p}" for p in found + [f"unreadable {u}" for u in report.get("unreadable", [])]]


def run_job(job: FaceJob, settings: FacesSettings, out_dir: Path,
            on_frames: Callable[[int], None] | None = None) -> JobResult:
    """Process one video file (all its subjects) unless its stores are already finished."""
    start = time.perf_counter()
    sha = file_sha256(job.video_file) if job.video_file.is_file() else "missing"
    stores = [store_path(out_dir, name) for name, _ in job.subjects]
    provs = [provenance(job, name, side, settings, sha, folder is not None)
             for (name, side), folder in zip(job.subjects, job.import_dirs)]
    if all(is_complete(store, prov) for store, prov in zip(stores, provs)):
        # Finished earlier: report from what the stores remember, so a resumed run's metrics stay whole.
        done = JobResult(job.key, skipped=True)
        for (name, _), store, truth_file in zip(job.subjects, stores, job.truth_files):
            stored = read_report(store)
            done.report["video" if "frames_decoded" in stored else name] = stored
            done.problems += (stored.get("problems", []) if "frames_decoded" in stored
                              else _import_problems(name, stored))
            done.subjects[name] = _subject_figures(TrackSummary(**read_track_info(store)), truth_file)
        done.problems = list(dict.fromkeys(done.problems))  # both subjects of a file share its problems
        return done
    result = JobResult(job.key, skipped=False)
    summaries: dict[str, TrackSummary] = {}
    for (name, _), folder, store, prov in zip(job.subjects, job.import_dirs, stores, provs):
        if folder is not None:
            imported = import_cropped_aligned(folder, store, job.expected_frames, prov, on_frames=on_frames)
            result.report[name] = imported.as_dict()
            result.problems += _import_problems(name, result.report[name])
            summaries[name] = TrackSummary(**read_track_info(store))
            result.frames += imported.frames_total
    detect = [(name, side, store, prov) for (name, side), folder, store, prov
              in zip(job.subjects, job.import_dirs, stores, provs) if folder is None]
    if detect:
        if settings.source == "cropped_aligned":
            result.problems.append(f"no cropped_aligned folder for {', '.join(d[0] for d in detect)}: detected instead")
        detector = _detector(settings.device, settings.max_side, settings.min_face_fraction)
        # Both subjects of a two-subject file come out of one pass over its frames.
        tracks, report = extract_faces(job.video_file, [(side, store) for _, side, store, _ in detect], detector,
                                       [prov for *_, prov in detect], extract_settings(settings),
                                       expected_frames=job.expected_frames, on_frames=on_frames)
        for (name, *_), summary in zip(detect, tracks):
            summaries[name] = summary
        result.report["video"] = report.as_dict()
        result.problems += report.problems()
        result.frames += report.frames_decoded
    for (name, _), truth_file in zip(job.subjects, job.truth_files):
        result.subjects[name] = _subject_figures(summaries[name], truth_file)
    result.seconds = time.perf_counter() - start
    return result


_PROGRESS: Any = None  # the worker's end of the progress queue, set by _init_worker


def _init_worker(threads: int, progress: Any = None) -> None:
    global _PROGRESS
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    _PROGRESS = progress


def _run_in_worker(job: FaceJob, settings: FacesSettings, out_dir: Path) -> JobResult:
    return run_job(job, settings, out_dir, on_frames=lambda n: _PROGRESS.put((job.key, n)))


def run_jobs(jobs: list[FaceJob], settings: FacesSettings, out_dir: Path,
             on_start: Callable[[FaceJob], None] = lambda job: None,
             on_frames: Callable[[str, int], None] = lambda key, n: None,
             on_done: Callable[[JobResult], None] = lambda result: None) -> list[JobResult]:
    """Run jobs on `settings.workers` processes (in this process when 1), reporting progress through the callbacks.

    Results come back sorted by job key whatever the order of completion.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[JobResult] = []
    if settings.workers == 1 or len(jobs) <= 1:
        _init_worker(settings.threads_per_worker)
        for job in jobs:
            on_start(job)

            def frames_of(n: int, key: str = job.key) -> None:
                on_frames(key, n)

            results.append(run_job(job, settings, out_dir, on_frames=frames_of))
            on_done(results[-1])
        return results
    context = get_context("spawn")  # torch, h5py and forked workers do not mix
    # Longest videos first, so no worker is left alone with a long one at the end.
    ordered = sorted(jobs, key=lambda job: -job.expected_frames)
    by_key = {job.key: job for job in jobs}
    progress = context.Queue()  # handed over at process start: no manager process in between
    started: set[str] = set()

    def drain() -> None:
        while True:
            try:
                key, n = progress.get_nowait()
            except queue.Empty:
                return
            if key not in started:
                started.add(key)
                on_start(by_key[key])
            on_frames(key, n)

    with ProcessPoolExecutor(settings.workers, mp_context=context, initializer=_init_worker,
                             initargs=(settings.threads_per_worker, progress)) as pool:
        pending: dict[Future[JobResult], FaceJob] = {
            pool.submit(_run_in_worker, job, settings, out_dir): job for job in ordered}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    job = pending.pop(future)
                    if job.key not in started:
                        started.add(job.key)
                        on_start(job)
                    results.append(future.result())
                    on_done(results[-1])
        except BaseException:
            stop_now(pool)
            raise
    return sorted(results, key=lambda r: r.key)
