"""Face stage vs bare per-frame MTCNN: throughput side by side, and how well the fast path's landmarks agree.

    python benchmarks/faces_throughput.py [--raw data/raw] [--videos N] [--threads 1]

For each demo video file, in one run and one thread configuration:

* bare: the video's frames are decoded into memory first (not timed), then
  facenet-pytorch's `MTCNN(keep_all=True).detect(frame, landmarks=True)` with
  default settings runs on every frame at source resolution (timed);
* stage: the face stage's `run_job` with params.yaml's `faces` settings
  (1 worker) does everything: decode, key-frame detection, refinement,
  alignment and the HDF5 write (timed end to end).

Agreement: the bare detections go through the same subject choice, and on
frames where both have the subject the two landmark sets are compared at the
112x112 crop's scale (`crop_scale_distance`: mean over the 5 points; the
max-over-points share is reported too). Writes results/faces_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from pipeline_lib.config import load_params
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.detect import Detections
from pipeline_lib.faces.quality import crop_scale_distance, crop_scale_max_distance
from pipeline_lib.faces.runner import _detector, plan_jobs, run_job, store_path
from pipeline_lib.faces.store import read_track_info
from pipeline_lib.faces.track import choose_subject

HERE = Path(__file__).resolve().parent


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def bare_detect(mtcnn, frames: list[np.ndarray]) -> tuple[list[Detections], float]:
    found: list[Detections] = []
    start = time.perf_counter()
    for frame in frames:
        boxes, scores, points = mtcnn.detect(frame, landmarks=True)
        found.append(Detections.empty() if boxes is None else Detections(
            np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1),
            np.asarray(points, np.float32).reshape(-1, 5, 2)))
    return found, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--videos", type=int, default=0, help="first N video files (0 = all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = load_params(args.params).faces.model_copy(update={"workers": 1, "threads_per_worker": args.threads})
    jobs = plan_jobs(load_raw(args.raw), settings)
    jobs = jobs[: args.videos] if args.videos else jobs
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")  # defaults: min_face_size 20, factor 0.709, thresholds .6/.7/.7
    warm = np.zeros((64, 64, 3), np.uint8)
    mtcnn.detect(warm)
    _detector(settings.device, settings.max_side, settings.min_face_fraction).detect([warm])
    bare_seconds = stage_seconds = 0.0
    frames_total = 0
    mean_d: list[np.ndarray] = []
    max_d: list[np.ndarray] = []
    presence = {"both": 0, "bare_only": 0, "stage_only": 0}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for n, job in enumerate(jobs, 1):
            frames = decode_all(job.video_file)
            found, seconds = bare_detect(mtcnn, frames)
            bare_seconds += seconds
            start = time.perf_counter()
            run_job(job, settings, out)
            stage_seconds += time.perf_counter() - start
            frames_total += len(frames)
            for name, side in job.subjects:
                picks = choose_subject(found, side, min_score=settings.min_score)
                bare = np.full((len(frames), 5, 2), np.nan)
                for t, k in enumerate(picks):
                    if k >= 0:
                        bare[t] = found[t].landmarks[k]
                info = read_track_info(store_path(out, name))
                ours = np.where((info["present"] & ~info["filled"])[:len(frames), None, None],
                                info["landmarks"][:len(frames)], np.nan)
                has_bare, has_ours = np.isfinite(bare).all(axis=(1, 2)), np.isfinite(ours).all(axis=(1, 2))
                presence["both"] += int((has_bare & has_ours).sum())
                presence["bare_only"] += int((has_bare & ~has_ours).sum())
                presence["stage_only"] += int((~has_bare & has_ours).sum())
                mean_d.append(crop_scale_distance(ours, bare)[has_bare & has_ours])
                max_d.append(crop_scale_max_distance(ours, bare)[has_bare & has_ours])
            print(f"[{n}/{len(jobs)}] {job.key}: {len(frames)} frames, bare {len(frames) / seconds:.1f} fps, "
                  f"stage so far {frames_total / stage_seconds:.1f} fps", flush=True)
    mean_all, max_all = np.concatenate(mean_d), np.concatenate(max_d)
    result = {
        "videos": len(jobs), "frames": frames_total, "threads": args.threads,
        "bare_mtcnn_fps": round(frames_total / bare_seconds, 2),
        "stage_fps": round(frames_total / stage_seconds, 2),
        "speedup": round(bare_seconds / stage_seconds, 2),
        "agreement_frames": int(len(mean_all)),
        "within_3px_mean_point": round(float((mean_all <= 3).mean()), 4),
        "within_3px_every_point": round(float((max_all <= 3).mean()), 4),
        "median_px": round(float(np.median(mean_all)), 3),
        "p95_px": round(float(np.percentile(mean_all, 95)), 3),
        "presence": presence,
        "settings": settings.model_dump(),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__},
    }
    print(f"\nbare MTCNN {result['bare_mtcnn_fps']} fps | stage {result['stage_fps']} fps | "
          f"speed-up {result['speedup']}x (target >= 3)")
    print(f"landmarks within 3 px of per-frame full detection (112 px crop scale): "
          f"{result['within_3px_mean_point']:.1%} by mean point distance (target >= 95%), "
          f"{result['within_3px_every_point']:.1%} with every point; median {result['median_px']} px")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "faces_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
