"""Feature extraction vs the bare encoder, and the window loader vs slicing a numpy array.

    python benchmarks/features_throughput.py [--faces data/faces] [--checkpoint models/mae/mae.pt] [--batch 128]

Two acceptance ratios of the features stage, each measured side by side in one run:

* extraction: `encode_store` (HDF5 reads, normalisation, encoder, fp16 write
  to the zarr store) over the demo face stores, vs the same encoder's forward
  on random tensors of the same batch size under `torch.inference_mode`
  (the bare encoder throughput), frames per second each; target >= 0.8x.
* windows: `WindowDataset[i]` over in-RAM arrays read from the feature store,
  vs slicing a numpy float16 array of the same shape and casting to float32;
  windows per second each; target >= 0.5x.

Writes results/features_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline_lib.features.encode import encode_store
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.models.mae import load_mae

HERE = Path(__file__).resolve().parent


def bare_encoder_fps(model: torch.nn.Module, batch: int, frames: int) -> float:
    images = torch.randn(batch, 3, 112, 112)
    with torch.inference_mode():
        model.encode(images)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < frames:
            model.encode(images)
            done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--checkpoint", type=Path, default=Path("models/mae/mae.pt"))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternating stage/baseline rounds (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_mae(args.checkpoint)[0]
    stores = sorted(args.faces.glob("*.h5"))

    stage_runs, bare_runs, loader_runs, slice_runs = [], [], [], []
    # Rounds alternate the stage and its bare baseline; the median round's ratio is reported, because one
    # round on a busy 2-core machine moves either side by 10-20 %.
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            store = FeatureStore(Path(tmp) / "features.zarr")
            start = time.perf_counter()
            frames = 0
            for path in stores:
                features, valid = encode_store(model, path, args.batch)
                store.write("mae", path.stem, features, valid, {"benchmark": True})
                frames += int(valid.sum())
            stage_runs.append(frames / (time.perf_counter() - start))
            bare_runs.append(bare_encoder_fps(model, args.batch, frames))

            videos = []
            for path in stores:
                features, valid = store.read("mae", path.stem)
                labels = np.zeros((len(valid), 15), np.float32)
                videos.append(VideoArrays(path.stem, features, valid, labels, np.ones_like(labels, bool)))
        dataset = WindowDataset(videos, args.window)
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]
        loader_runs.append(len(dataset) / (time.perf_counter() - start))
        # The bare baseline: one big in-memory array of the same total shape, the same window starts.
        flat = np.concatenate([v.features for v in videos])  # (sum T, D) float16
        offsets = np.cumsum([0] + [v.n_frames for v in videos])[:-1]
        starts = offsets[dataset.video_ids] + dataset.starts
        start = time.perf_counter()
        for s in starts:
            torch.from_numpy(flat[s:s + args.window].astype(np.float32))
        slice_runs.append(len(starts) / (time.perf_counter() - start))
    extraction = [a / b for a, b in zip(stage_runs, bare_runs)]
    loading = [a / b for a, b in zip(loader_runs, slice_runs)]
    middle = int(np.argsort(extraction)[len(extraction) // 2])
    stage_fps, bare_fps = stage_runs[middle], bare_runs[middle]
    middle = int(np.argsort(loading)[len(loading) // 2])
    loader_wps, bare_wps = loader_runs[middle], slice_runs[middle]

    result = {
        "frames": frames, "batch": args.batch, "threads": args.threads,
        "extraction_fps": round(stage_fps, 1), "bare_encoder_fps": round(bare_fps, 1),
        "extraction_ratio": round(stage_fps / bare_fps, 3), "rounds": args.rounds,
        "extraction_ratios": [round(r, 3) for r in extraction], "loader_ratios": [round(r, 3) for r in loading],
        "windows": len(dataset), "window": args.window,
        "loader_windows_per_second": round(loader_wps), "numpy_slice_windows_per_second": round(bare_wps),
        "loader_ratio": round(loader_wps / bare_wps, 3),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    print(f"extraction {stage_fps:.0f} frames/s vs bare encoder {bare_fps:.0f}: {result['extraction_ratio']}x "
          f"(target >= 0.8; median of {[round(r, 3) for r in extraction]})")
    print(f"window loader {loader_wps:.0f} windows/s vs numpy slicing {bare_wps:.0f}: {result['loader_ratio']}x "
          f"(target >= 0.5; median of {[round(r, 3) for r in loading]})")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "features_throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
