"""The face stage's report: corpus-level figures for metrics/faces.json, the per-video table, the sample grid.

The figures a user checks first are at the top level (how many frames have a
face, how fast, how steady the landmarks are); on the demo corpus, where the
generator knows where every face is, the same file also says how right the
stage was. Videos that need a look are listed with their reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline_lib.faces.align import align_points
from pipeline_lib.faces.quality import pick_samples, save_sample_grid
from pipeline_lib.faces.runner import JobResult, store_path

__all__ = ["corpus_metrics", "per_video_table", "write_sample_grid"]


def _weighted(results: Sequence[JobResult], key: str, weight: str) -> float | None:
    """Mean of a truth figure over subjects, weighted by a count (frames it was measured on)."""
    pairs = [(s["truth"][key], s["truth"][weight]) for r in results for s in r.subjects.values()
             if "truth" in s and s["truth"].get(key) is not None and s["truth"].get(weight)]
    total = sum(w for _, w in pairs)
    return round(sum(v * w for v, w in pairs) / total, 4) if total else None


def corpus_metrics(results: Sequence[JobResult], wall_seconds: float, workers: int) -> dict[str, Any]:
    """Summary over all jobs of this run (skipped ones count as videos, not towards speed)."""
    run = [r for r in results if not r.skipped]
    subjects = [s for r in results for s in r.subjects.values()]
    frames = sum(r.frames for r in run)
    metrics: dict[str, Any] = {
        "video_files": len(results),
        "processed": len(run),
        "resumed": len(results) - len(run),
        "frames_processed": frames,
        "seconds": round(wall_seconds, 2),
        "frames_per_second": round(frames / wall_seconds, 2) if wall_seconds > 0 and frames else None,
        "workers": workers,
    }
    schedule = [r.report["video"] for r in results if "video" in r.report]
    decoded = sum(v["frames_decoded"] for v in schedule)
    if decoded:
        metrics["keyframe_share"] = round(sum(v["keyframes"] for v in schedule) / decoded, 4)
        metrics["refined_share"] = round(sum(v["refined"] for v in schedule) / decoded, 4)
        metrics["redetected_share"] = round(sum(v["redetected"] for v in schedule) / decoded, 4)
    if subjects and all("present" in s for s in subjects):
        total = sum(s["frames"] for s in subjects)
        metrics["face_rate"] = round(sum(s["present"] for s in subjects) / total, 4) if total else None
        metrics["filled_frames"] = sum(s["filled"] for s in subjects)
        jitters = [(s["jitter_px"], s["present"]) for s in subjects if s.get("jitter_px") is not None]
        weight = sum(w for _, w in jitters)
        metrics["jitter_px"] = round(sum(j * w for j, w in jitters) / weight, 4) if weight else None
    truths = [s["truth"] for s in subjects if "truth" in s]
    if truths:
        face_frames = sum(t["face_frames"] for t in truths)
        metrics["truth"] = {
            "subjects": len(truths),
            "face_frames": face_frames,
            "detection_rate": round(sum(t["detected"] for t in truths) / face_frames, 4) if face_frames else None,
            "faceless_frames": sum(t["faceless_frames"] for t in truths),
            "false_crops": sum(t["false_crops"] for t in truths),
            "landmark_error_px": _weighted(results, "landmark_error_px", "detected"),
            "landmark_within_3px": _weighted(results, "landmark_within_3px", "detected"),
            "eye_roll_deg_mean_abs": _weighted(results, "eye_roll_deg_mean_abs", "detected"),
            "jitter_px": _weighted(results, "jitter_px", "detected"),
            "truth_jitter_px": _weighted(results, "truth_jitter_px", "detected"),
        }
    metrics["problems"] = {r.key: r.problems for r in results if r.problems}
    return metrics


def per_video_table(results: Sequence[JobResult]) -> dict[str, Any]:
    """Everything known per video file, for the per-video report (skipped videos say so)."""
    return {r.key: {"skipped": r.skipped, "seconds": round(r.seconds, 3), "frames": r.frames,
                    "report": r.report, "problems": r.problems, "subjects": r.subjects} for r in results}


def write_sample_grid(out_dir: Path, names: Sequence[str], path: Path, samples: int, seed: int = 0) -> int:
    """A grid of `samples` aligned crops spread over subjects and time, landmarks drawn; returns crops shown."""
    crops: list[np.ndarray] = []
    marks: list[np.ndarray | None] = []
    titles: list[str] = []
    stores = [p for p in (store_path(out_dir, n) for n in sorted(names)) if p.is_file()]
    if samples and stores:
        # Evenly spaced subjects, then evenly spaced frames within each.
        picked = [stores[i] for i in np.linspace(0, len(stores) - 1, min(samples, len(stores))).round().astype(int)]
        per_store = max(1, samples // len(picked))
        for store in picked:
            with h5py.File(store, "r") as h5:
                present, filled, landmarks = h5["present"][...], h5["filled"][...], h5["landmarks"][...]
                for t in pick_samples(present, per_store, rng_seed=seed):
                    crops.append(h5["crops"][int(t)])
                    finite = np.isfinite(landmarks[t]).all()
                    marks.append(align_points(landmarks[t], landmarks[t], crops[-1].shape[0]) if finite else None)
                    titles.append(f"{store.stem} #{t}" + (" (filled)" if filled[t] else ""))
    save_sample_grid(crops[:samples], marks[:samples], titles[:samples], path)
    return min(len(crops), samples)
