"""Face stage scaling: the demo corpus with 1 worker process vs 2, one thread each.

    python benchmarks/faces_workers.py [--raw data/raw] [--repeats 1]

Each configuration runs the stage's `run_jobs` over every video file into a
fresh folder (nothing resumed), timed end to end: pool start-up, model load,
decode, detect, align, write. Runs alternate (1, 2, 1, 2, ...) so a noisy
neighbour hurts both alike; the best time of each is kept. Writes
results/faces_workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from pipeline_lib.config import load_params
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.runner import plan_jobs, run_jobs

HERE = Path(__file__).resolve().parent


def timed_run(raw: Path, params: Path, workers: int) -> tuple[float, int]:
    settings = load_params(params).faces.model_copy(update={"workers": workers, "threads_per_worker": 1})
    jobs = plan_jobs(load_raw(raw), settings)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = run_jobs(jobs, settings, Path(tmp))
        seconds = time.perf_counter() - start
    return seconds, sum(r.frames for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    best: dict[int, float] = {}
    frames = 0
    for _ in range(args.repeats):
        for workers in (1, 2):
            # A child process per configuration: torch's thread settings from one run do not leak into the next.
            from concurrent.futures import ProcessPoolExecutor
            from multiprocessing import get_context

            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                seconds, frames = pool.submit(timed_run, args.raw, args.params, workers).result()
            best[workers] = min(best.get(workers, float("inf")), seconds)
            print(f"{workers} worker(s): {frames} frames in {seconds:.1f} s = {frames / seconds:.1f} frames/s",
                  flush=True)
    result = {
        "frames": frames,
        "one_worker_fps": round(frames / best[1], 2),
        "two_workers_fps": round(frames / best[2], 2),
        "scaling": round(best[1] / best[2], 3),
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"\n2 workers / 1 worker: {result['scaling']}x (target >= 1.6)")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "faces_workers.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
