"""Face stage peak memory on long videos: bounded, and flat in the video's length.

    python benchmarks/faces_memory.py [--minutes 2.5 10] [--base-seconds 20] [--fps 30] [--width 640 --height 360]

Acceptance point: peak memory on a 10-minute 30 fps video stays under 1.5 GB
and does not grow with video length. The stage is built to stream: frames are
decoded a batch at a time and each batch's aligned crops go straight into the
subject's HDF5 store, so memory should be the model plus one batch in flight;
only the small per-frame arrays (boxes, landmarks, scores: ~100 bytes a
frame) accumulate until the store is committed.

A real-face demo clip (`generate_clip`) is rendered once, then looped by
remuxing its packets (no re-encoding, timestamps shifted by the clip's
duration each round; the last round is cut at a key frame) into one video per
requested length. Each video runs through `run_job` in a fresh child process
(1 torch thread, `FacesSettings()` defaults with 1 worker), which reports its
peak RSS (`ru_maxrss`), its RSS once torch and the warmed-up detector are
loaded (baseline), and RSS samples along the run. Verdict: peak of the
longest < 1536 MiB, and peak(longest) - peak(shortest) < 10% of
peak(shortest). Writes results/faces_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av

HERE = Path(__file__).resolve().parent
LIMIT_MIB = 1536.0
GROWTH_SHARE = 0.10


def rss_mib() -> float:
    """Current resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def loop_video(base: Path, out: Path, frames: int) -> int:
    """Write `out` as `base` repeated (packets copied) up to about `frames` frames; returns frames written."""
    with av.open(str(base)) as probe:
        packets = [(p.pts, p.duration, p.is_keyframe) for p in probe.demux(video=0) if p.pts is not None]
    first = min(pts for pts, _, _ in packets)
    step = packets[0][1] or 1  # every packet of the demo clip lasts one frame
    span = max(pts + duration for pts, duration, _ in packets) - first
    n_base = len(packets)
    written = 0
    with av.open(str(base)) as src, av.open(str(out), "w", format="mp4") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for round_ in range(-(-frames // n_base)):
            remaining = frames - round_ * n_base
            # Closed GOPs: the packets before a key frame (decode order) are exactly the frames shown before it.
            cut = n_base if remaining >= n_base else max(
                (pts - first) // step for pts, _, key in packets if key and (pts - first) // step <= remaining)
            if cut == 0:
                break
            src.seek(0)
            for packet in src.demux(src.streams.video[0]):
                if packet.pts is None:
                    continue
                if packet.is_keyframe and (packet.pts - first) // step == cut:
                    break
                packet.pts += round_ * span
                packet.dts += round_ * span
                packet.stream = stream
                dst.mux(packet)
                written += 1
    return written


def child(video: Path, out_dir: Path, frames: int) -> dict[str, Any]:
    """Run the face stage on one video in this (fresh) process and measure its memory."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from pipeline_lib.config import FacesSettings
    from pipeline_lib.faces.runner import FaceJob, _detector, run_job

    settings = FacesSettings().model_copy(update={"workers": 1})
    detector = _detector(settings.device, settings.max_side, settings.min_face_fraction)  # the one run_job uses
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    found = detector.detect([frame])[0]
    if len(found):
        detector.refine(frame, found.boxes[:1])
    baseline = rss_mib()
    samples: list[tuple[int, float]] = []
    done = 0

    def on_frames(n: int) -> None:
        nonlocal done
        done += n
        if not samples or done - samples[-1][0] >= max(frames // 10, 1):
            samples.append((done, round(rss_mib(), 1)))

    job = FaceJob(video, ((video.stem, None),), frames, (None,), (None,))
    start = time.perf_counter()
    result = run_job(job, settings, out_dir, on_frames=on_frames)
    seconds = time.perf_counter() - start
    return {"frames": result.frames, "seconds": round(seconds, 1), "fps": round(result.frames / seconds, 1),
            "baseline_mib": round(baseline, 1), "end_mib": round(rss_mib(), 1),
            "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_samples_mib": samples, "problems": result.problems, "settings": settings.model_dump()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.5, 10.0])
    parser.add_argument("--base-seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--identity", default="astronaut")
    parser.add_argument("--child", nargs=3, metavar=("VIDEO", "OUT_DIR", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))))
        return
    from pipeline_lib.data.demo.clip import generate_clip

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="faces-memory-") as tmp:
        base = Path(tmp) / "base.mp4"
        generate_clip(base, seed=0, seconds=args.base_seconds, fps=args.fps, width=args.width, height=args.height,
                      identity=args.identity)
        for minutes in sorted(args.minutes):
            video = Path(tmp) / f"long_{minutes:g}min.mp4"
            frames = loop_video(base, video, round(minutes * 60 * args.fps))
            with av.open(str(video)) as container:  # probe only: the header's count, no decoding
                probed = container.streams.video[0].frames
            if probed != frames:
                raise SystemExit(f"{video.name}: wrote {frames} frames, header says {probed}")
            proc = subprocess.run([sys.executable, __file__, "--child", str(video), str(Path(tmp) / "faces"),
                                   str(frames)], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            if proc.returncode:
                raise SystemExit(f"child failed on {video.name}:\n{proc.stderr[-3000:]}")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"minutes": round(frames / args.fps / 60, 3),
                         "video_mib": round(video.stat().st_size / 2**20, 1),
                         **report, "growth_mib": round(report["peak_mib"] - report["baseline_mib"], 1)})
            video.unlink()
    print(f"{'minutes':>8} {'frames':>7} {'peak MiB':>9} {'baseline':>9} {'growth':>7} {'fps':>6}")
    for row in rows:
        print(f"{row['minutes']:8.2f} {row['frames']:7d} {row['peak_mib']:9.1f} {row['baseline_mib']:9.1f} "
              f"{row['growth_mib']:7.1f} {row['fps']:6.1f}")
    short, long_ = rows[0], rows[-1]
    delta = long_["peak_mib"] - short["peak_mib"]
    under = long_["peak_mib"] < LIMIT_MIB
    flat = delta < GROWTH_SHARE * short["peak_mib"]
    print(f"peak of longest {long_['peak_mib']:.1f} MiB < {LIMIT_MIB:.0f} MiB: {'PASS' if under else 'FAIL'}; "
          f"longest - shortest {delta:+.1f} MiB < {GROWTH_SHARE:.0%} of shortest: {'PASS' if flat else 'FAIL'}")
    result = {
        "lengths": rows, "peak_limit_mib": LIMIT_MIB, "peak_delta_mib": round(delta, 1),
        "under_limit": under, "flat_in_length": flat, "passed": under and flat,
        "clip": {"base_seconds": args.base_seconds, "fps": args.fps, "width": args.width, "height": args.height,
                 "identity": args.identity, "requested_minutes": sorted(args.minutes)},
        "settings": rows[0]["settings"],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    for row in rows:
        del row["settings"]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "faces_memory.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
