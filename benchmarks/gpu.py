"""Issue 24's GPU figures side by side in one run: faces, pretraining and features on the accelerator.

    python benchmarks/gpu.py                          # on a CUDA machine, after `dvc repro faces` (~5 min)
    python benchmarks/gpu.py --device cpu --quick     # the same paths on CPU, small: a smoke run of this script

Three comparisons, each inside this one process and run, so machine noise hits both sides alike:

* faces: the face stage over the demo corpus with `faces.device: <device>` (1 worker, key frames batched) vs
  `faces.device: cpu` with every core as a worker (the machine's best CPU configuration), frames/s each
  (target >= 3x); and the device path alone on a generated 1280x720 clip (target >= 1,000 frames/s).
* pretraining: `pretrain_mae` (`--model`, bf16 on CUDA, `--batch`) over the demo face stores, steady-state
  images/s after the first `--warmup` steps, vs a bare training step of the same model on random tensors
  (same batch, precision, AdamW) (target >= 0.7x); peak GPU memory.
* features: `encode_store` over the demo face stores (the stage's read, normalise, encode) vs the bare
  encoder forward on random tensors, same batch and precision (target >= 0.8x).

Writes results/gpu.json (a `--quick` or `--device cpu` run only prints: never mistaken for the GPU figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pipeline_lib.config import load_params
from pipeline_lib.data.demo.clip import generate_clip
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.extract import extract_faces
from pipeline_lib.faces.runner import _detector, extract_settings, plan_jobs, run_jobs
from pipeline_lib.features.encode import encode_store
from pipeline_lib.models.mae import MAE, config_by_name
from pipeline_lib.train.pretrain import pretrain_mae

HERE = Path(__file__).resolve().parent


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def faces(raw: Path, params: Path, device: str, cpu_workers: int, clip_seconds: float,
          limit: int | None) -> dict[str, Any]:
    """Face stage frames/s: the device path (1 worker) vs every core as a CPU worker; then a 1280x720 clip."""
    base = load_params(params).faces
    jobs = plan_jobs(load_raw(raw), base)[:limit]
    out: dict[str, Any] = {"videos": len(jobs)}
    for name, settings in (("device", base.model_copy(update={"device": device, "workers": 1})),
                           ("cpu_all_cores", base.model_copy(update={"device": "cpu", "workers": cpu_workers,
                                                                     "threads_per_worker": 1}))):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            frames = sum(r.frames for r in run_jobs(jobs, settings, Path(tmp)))
            seconds = time.perf_counter() - start
        out[name] = {"frames": frames, "seconds": round(seconds, 2), "frames_per_second": round(frames / seconds, 1),
                     "workers": settings.workers, "faces_device": settings.device}
        print(f"faces {name}: {frames} frames, {frames / seconds:.1f} frames/s", flush=True)
    out["ratio"] = round(out["device"]["frames_per_second"] / out["cpu_all_cores"]["frames_per_second"], 3)
    with tempfile.TemporaryDirectory() as tmp:
        clip = generate_clip(Path(tmp) / "clip720.mp4", seed=7, seconds=clip_seconds, fps=30.0, width=1280,
                             height=720)
        settings = base.model_copy(update={"device": device})
        detector = _detector(device, settings.max_side, settings.min_face_fraction)
        start = time.perf_counter()
        _, report = extract_faces(clip.path, [(None, Path(tmp) / "clip720.h5")], detector, [{"benchmark": True}],
                                  extract_settings(settings))
        seconds = time.perf_counter() - start
    out["clip_1280x720"] = {"frames": report.frames_decoded, "seconds": round(seconds, 2),
                            "frames_per_second": round(report.frames_decoded / seconds, 1)}
    print(f"faces 1280x720 clip: {report.frames_decoded / seconds:.1f} frames/s", flush=True)
    return out


def _bare_steps(model: torch.nn.Module, step: Callable[[torch.Tensor], None], batch: int, device: str, steps: int,
                warmup: int) -> float:
    """Images/s of `step` on one random batch, after `warmup` untimed steps."""
    images = torch.randn(batch, 3, 112, 112, device=device)
    for _ in range(warmup):
        step(images)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(images)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def pretraining(stores: list[Path], params: Path, device: str, model_name: str, batch: int, precision: str,
                warmup: int, steps: int) -> dict[str, Any]:
    """Steady-state images/s of the pretraining stage vs a bare training step of the same model."""
    settings = load_params(params).pretrain.model_copy(update={
        "model": model_name, "batch_size": batch, "precision": precision, "device": device, "epochs": 1,
        "frame_stride": 1, "num_workers": min(8, os.cpu_count() or 1) if device == "cuda" else 0,
        "threads": os.cpu_count() or 1})
    times: list[float] = []

    def on_step(step: int, loss: float, lr: float) -> None:
        _sync(device)
        times.append(time.perf_counter())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        pretrain_mae(stores, settings, Path(tmp), on_step=on_step)
    measured = times[warmup:warmup + steps + 1]
    if len(measured) < 2:
        raise SystemExit(f"pretraining ran {len(times)} steps: too few for --warmup {warmup}; add face stores")
    stage = (len(measured) - 1) * batch / (measured[-1] - measured[0])
    stage_memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None

    torch.manual_seed(0)
    model = MAE(config_by_name(model_name, patch_size=settings.patch_size)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(images: torch.Tensor) -> None:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(images).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    bare = _bare_steps(model, step, batch, device, len(measured) - 1, warmup)
    print(f"pretraining {model_name}: stage {stage:.1f} vs bare {bare:.1f} images/s", flush=True)
    return {"model": model_name, "batch": batch, "precision": precision, "steps_timed": len(measured) - 1,
            "stage_images_per_second": round(stage, 1), "bare_images_per_second": round(bare, 1),
            "ratio": round(stage / bare, 3),
            "gpu_memory_gib": None if stage_memory is None else round(stage_memory, 2)}


def features(stores: list[Path], params: Path, device: str, model_name: str, batch: int,
             precision: str) -> dict[str, Any]:
    """`encode_store` over the face stores vs the bare encoder forward, frames/s each."""
    torch.manual_seed(0)
    patch_size = load_params(params).pretrain.patch_size  # the pipeline's encoder shape, as pretraining builds it
    model = MAE(config_by_name(model_name, patch_size=patch_size)).to(device).eval()
    encode_store(model, stores[0], batch, device, precision)  # warm-up (kernels, allocator)
    _sync(device)
    start, frames = time.perf_counter(), 0
    for store in stores:
        _, valid = encode_store(model, store, batch, device, precision)
        frames += int(valid.sum())
    _sync(device)
    stage = frames / (time.perf_counter() - start)
    bf16 = precision == "bf16"

    def forward(images: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            model.encode(images)

    bare = _bare_steps(model, forward, batch, device, max(3, frames // batch), 2)
    print(f"features {model_name}: stage {stage:.1f} vs bare {bare:.1f} frames/s", flush=True)
    return {"model": model_name, "batch": batch, "precision": precision, "frames": frames,
            "stage_frames_per_second": round(stage, 1), "bare_frames_per_second": round(bare, 1),
            "ratio": round(stage / bare, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--faces", type=Path, default=Path("data/faces"), help="face stores (after `abaw faces`)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="small models, batches and corpus (a smoke run)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("faces", "pretraining", "features"))
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device here (use --device cpu --quick for a smoke run)")
    stores = sorted(args.faces.glob("*.h5"))
    if not stores:
        raise SystemExit(f"no face stores in {args.faces}: run `dvc repro faces` first")
    quick = args.quick
    precision = "bf16" if args.device == "cuda" else "fp32"
    model = "mae_tiny" if quick else "mae_base"
    start = time.perf_counter()
    result: dict[str, Any] = {"device": args.device, "quick": quick, "precision": precision}
    if "faces" not in args.skip:
        result["faces"] = faces(args.raw, args.params, args.device, os.cpu_count() or 1, 2.0 if quick else 10.0,
                                3 if quick else None)
    if "pretraining" not in args.skip:
        result["pretraining"] = pretraining(stores[:4] if quick else stores, args.params, args.device, model,
                                            16 if quick else 256, precision, 2 if quick else 5, 4 if quick else 40)
    if "features" not in args.skip:
        result["features"] = features(stores[:3] if quick else stores, args.params, args.device, model,
                                      32 if quick else 512, precision)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                         "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    if args.device == "cuda" and not quick:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "gpu.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print("wrote benchmarks/results/gpu.json")


if __name__ == "__main__":
    main()
