"""Build data/faces for a corpus: plan, prune stale stores, run, report, plot, and apply `faces.strict`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_lib.config import FacesSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.runner import FaceJob, JobResult, plan_jobs, run_jobs, store_path
from pipeline_lib.faces.summary import corpus_metrics, per_video_table, write_sample_grid
from pipeline_lib.files import write_text_atomic

__all__ = ["FaceStageResult", "build_face_stores"]


@dataclass(frozen=True)
class FaceStageResult:
    results: list[JobResult]
    metrics: dict[str, Any]
    pruned: list[str]

    def summary_line(self) -> str:
        m = self.metrics
        speed = f", {m['frames_per_second']} frames/s" if m.get("frames_per_second") else ""
        truth = m.get("truth", {})
        found = f", {truth['detection_rate']:.1%} of true face frames found" if truth.get("detection_rate") else ""
        return (f"faces: {m['video_files']} video files ({m['processed']} processed, {m['resumed']} already done), "
                f"{m['frames_processed']} frames in {m['seconds']} s{speed}{found}, "
                f"{len(m['problems'])} with problems")


def _prune(out_dir: Path, names: set[str]) -> list[str]:
    """Delete stores of subjects no longer in the manifest, and leftovers of killed writers."""
    removed = []
    for path in sorted(out_dir.glob("*.h5")) + sorted(out_dir.glob(".*.partial")):
        if path.suffix == ".partial" or path.stem not in names:
            path.unlink()
            removed.append(path.name)
    return removed


def build_face_stores(raw_dir: Path, settings: FacesSettings, out_dir: Path, report: Path, videos_report: Path,
                      plot: Path, *, shard: tuple[int, int] = (0, 1),
                      on_plan: Callable[[list[FaceJob]], None] = lambda jobs: None,
                      **callbacks: Callable[..., None]) -> FaceStageResult:
    """Run the face stage on data/raw and write its stores, metrics, per-video report and sample grid."""
    raw = load_raw(raw_dir)
    jobs = plan_jobs(raw, settings, shard)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A killed writer leaves only a .partial; another shard's finished stores are in the manifest and stay.
    pruned = _prune(out_dir, {e.name for e in raw.entries}) if shard[1] == 1 else []
    on_plan(jobs)
    start = time.perf_counter()
    results = run_jobs(jobs, settings, out_dir, **callbacks)
    metrics = corpus_metrics(results, time.perf_counter() - start, settings.workers)
    metrics["shard"] = f"{shard[0]}/{shard[1]}"
    for path, content in ((report, metrics), (videos_report, per_video_table(results))):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(content, indent=2, sort_keys=False) + "\n")
    names = [name for job in jobs for name, _ in job.subjects]
    write_sample_grid(out_dir, names, plot, settings.samples)
    if settings.strict and metrics["problems"]:
        first = next(iter(metrics["problems"].items()))
        raise DataError(report, f"{len(metrics['problems'])} video file(s) had problems and faces.strict is on "
                                f"(first: {first[0]}: {'; '.join(first[1])}); see the report")
    missing = [name for name in names if not store_path(out_dir, name).is_file()]
    if missing:
        raise DataError(out_dir, f"no store written for {', '.join(missing[:5])}")
    return FaceStageResult(results, metrics, pruned)
