"""Demo corpus: generation time and how well MTCNN sees its faces.

    python benchmarks/demo_corpus.py [--out DIR] [--every 5] [--workers 2]

Generates the corpus of params.yaml's `data.demo` section, then runs
facenet-pytorch's MTCNN on every `--every`-th frame and compares with the
generator's truth (`demo_truth/<subject>.npz`): a face-present subject counts
as detected when a detection overlaps its true box (IoU >= 0.3); a face-less
frame counts as a false alarm when any detection is found. Prints a table and
writes JSON beside this script (results/demo_corpus.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from pipeline_lib.config import load_params
from pipeline_lib.data.demo.generate import TRUTH_DIR, generate_corpus
from pipeline_lib.faces.detect import iou

HERE = Path(__file__).resolve().parent


def sampled_frames(path: Path, every: int) -> dict[int, np.ndarray]:
    with av.open(str(path)) as container:
        return {
            i: frame.to_ndarray(format="rgb24")
            for i, frame in enumerate(container.decode(video=0))
            if i % every == 0
        }


def detection_check(root: Path, every: int) -> dict[str, float]:
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(keep_all=True, device="cpu")
    truths = sorted((root / TRUTH_DIR).glob("*.npz"))
    by_video: dict[str, list[tuple[str, dict[str, np.ndarray]]]] = {}
    for path in truths:
        name = path.stem
        base = name.removesuffix("_left").removesuffix("_right")
        by_video.setdefault(base, []).append((name, dict(np.load(path))))
    present = detected = absent = false_alarms = n_frames = 0
    seconds = 0.0
    for base, subjects in by_video.items():
        frames = sampled_frames(root / "videos" / f"{base}.mp4", every)
        for i, frame in frames.items():
            start = time.perf_counter()
            boxes, _ = mtcnn.detect(frame)
            seconds += time.perf_counter() - start
            n_frames += 1
            boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, dtype=float).reshape(-1, 4)
            if not any(bool(truth["face_present"][i]) for _, truth in subjects):
                absent += 1
                false_alarms += len(boxes) > 0
            for _, truth in subjects:
                if truth["face_present"][i]:
                    present += 1
                    detected += bool((iou(truth["box"][i], boxes) >= 0.3).any())
    return {
        "subject_frames": sum(len(truth["face_present"]) for subjects in by_video.values() for _, truth in subjects),
        "sampled_face_frames": present,
        "detection_rate": detected / max(present, 1),
        "sampled_faceless_frames": absent,
        "false_alarm_rate": false_alarms / max(absent, 1),
        "mtcnn_frames_per_s": round(n_frames / max(seconds, 1e-9), 1),
    }


def main() -> None:  # guarded below: the generator's spawn workers re-import this file
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=None, help="keep the corpus here (default: a temp dir)")
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    params = load_params(args.params)
    root = args.out or Path(tempfile.mkdtemp(prefix="abaw-demo-"))
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    summary = generate_corpus(root, params.data.demo, seed=params.seed, workers=args.workers, progress=False)
    gen_seconds = time.perf_counter() - start
    detection = detection_check(root, args.every)
    result = {
        "settings": params.data.demo.model_dump(),
        "workers": args.workers,
        "generate_seconds": round(gen_seconds, 1),
        "videos": summary.total_videos,
        "frames": summary.total_frames,
        "generated_subject_frames_per_s": round(detection["subject_frames"] / gen_seconds, 1),
        **detection,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "demo_corpus.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if key != "settings":
            print(f"{key:32s} {value}")
    print(f"{'videos_per_group':32s} {summary.video_files}")
    if args.out is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
