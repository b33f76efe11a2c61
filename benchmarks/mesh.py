"""The `mesh` extractor on the demo beside `landmarks`, `mae` and the fine-tuned encoders, over seeds (issue 26).

    python benchmarks/mesh.py                 # seeds 0-2, after `dvc repro`
    python benchmarks/mesh.py --table         # results/mesh.json as the README's markdown table
    python benchmarks/mesh.py --landmarker 1 2   # only the landmarker's time with 1 and 2 worker processes

On a scratch copy of the feature store with `mesh` added (the pipeline's own store is left alone), per seed:
the EXPR linear probe of every extractor; each task's temporal model trained on each extractor (the stage's
CLI, a params file whose only changes are `seed` and that task's extractor); fusion with the pipeline's
`fusion.extractors` and with `mesh` added. An input becomes a default only where it beats the current
default on at least 2 of 3 seeds; results/mesh.json says where it does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from claims import ABAW, _run, seed_params  # noqa: E402

from pipeline_lib.config import load_params  # noqa: E402
from pipeline_lib.data.labels import BASIC_KEYS  # noqa: E402
from pipeline_lib.data.raw import load_raw  # noqa: E402
from pipeline_lib.features.build import probe_extractors  # noqa: E402
from pipeline_lib.features.encode import extract_features  # noqa: E402
from pipeline_lib.features.store import FeatureStore  # noqa: E402

MESH = "mesh"


def _extractors(task: str) -> list[str]:
    return ["landmarks", MESH, "mae", f"finetuned_{task}"]


def landmarker_workers(work: Path, counts: list[int]) -> dict[str, Any]:
    """The `mesh` extraction over every demo face store with each worker count (`features.workers`), from
    scratch into its own store: wall seconds, frames/s, the speed-up over one process, and whether the arrays
    equal one process's."""
    names = [e.name for e in load_raw(ROOT / "data" / "raw").entries]
    runs: dict[str, Any] = {}
    stores: dict[int, FeatureStore] = {}
    for workers in counts:
        stores[workers] = FeatureStore(work / f"workers{workers}.zarr")
        start = time.perf_counter()
        done = extract_features(ROOT / "data" / "faces", names, stores[workers], [MESH],
                                ROOT / "models" / "mae" / "mae.pt", workers=workers)
        seconds = time.perf_counter() - start
        frames = sum(v.frames for v in done)
        runs[str(workers)] = {"seconds": round(seconds, 1), "frames": frames,
                              "frames_per_second": round(frames / seconds, 1)}
        print(f"mesh, {workers} worker(s): {json.dumps(runs[str(workers)])}", flush=True)
    first = counts[0]
    for workers in counts[1:]:
        runs[str(workers)]["speedup"] = round(runs[str(first)]["seconds"] / runs[str(workers)]["seconds"], 2)
        runs[str(workers)]["same_arrays"] = all(
            np.array_equal(stores[workers].read(MESH, n)[0], stores[first].read(MESH, n)[0]) for n in names)
    return {"cpus": os.cpu_count(), "runs": runs}


def add_mesh(work: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of data/features.zarr with the `mesh` group added; how long the landmarker took."""
    store_path = work / "features.zarr"
    shutil.copytree(ROOT / "data" / "features.zarr", store_path)
    names = [e.name for e in load_raw(ROOT / "data" / "raw").entries]
    start = time.perf_counter()
    done = extract_features(ROOT / "data" / "faces", names, FeatureStore(store_path), [MESH],
                            ROOT / "models" / "mae" / "mae.pt")
    seconds = time.perf_counter() - start
    frames = sum(v.frames for v in done)
    found = sum(v.encoded for v in done)
    return store_path, {"videos": len(done), "frames": frames, "faces_landmarked": found,
                        "seconds": round(seconds, 1), "frames_per_second": round(frames / seconds, 1)}


def temporal(seed: int, task: str, extractor: str, store: Path, work: Path) -> float:
    """Validation metric of `task`'s temporal model on `extractor` at `seed` (predictions kept in work/)."""
    default = extractor == load_params(ROOT / "params.yaml").temporal.resolve(task, 32).extractor
    params = seed_params(seed, work, **{f"temporal__{task}__extractor": extractor,
                                        "temporal__common__baseline": default})
    _run([ABAW, "temporal", "--task", task, "--params", str(params), "--raw", "data/raw", "--features", str(store),
          "--models", str(work / "models"), "--predictions", str(work / "pred"), "--report", str(work / "metrics")])
    report = json.loads((work / "metrics" / f"{task}.json").read_text())
    return float(report["temporal"][report["metric"]])


def fusion(seed: int, extractors: list[str], store: Path, temporal_dir: Path, work: Path) -> float:
    """Fusion's validation MTL with these frame-feature `extractors`, on the default temporal predictions."""
    params = seed_params(seed, work, fusion__extractors=extractors)
    _run([ABAW, "fusion", "--params", str(params), "--raw", "data/raw", "--features", str(store),
          "--temporal", str(temporal_dir), "--models", str(work / "models"), "--predictions", str(work / "pred"),
          "--report", str(work / "metrics.json")])
    return float(json.loads((work / "metrics.json").read_text())["val"]["mtl"])


def _stats(values: dict[int, float], reference: dict[int, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"per_seed": {str(s): round(v, 4) for s, v in values.items()},
                           "mean": round(statistics.fmean(values.values()), 4),
                           "sd": round(statistics.stdev(values.values()), 4) if len(values) > 1 else None}
    if reference is not None:
        out["beats_default"] = f"{sum(values[s] > reference[s] for s in values)}/{len(values)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--keep", type=Path, help="work here and keep the models and metrics")
    parser.add_argument("--table", action="store_true", help="print results/mesh.json as a markdown table")
    parser.add_argument("--landmarker", type=int, nargs="+", metavar="WORKERS",
                        help="only time the mesh extraction with these worker counts (e.g. 1 2) into "
                             "results/mesh.json's 'landmarker_workers'")
    args = parser.parse_args()
    out = HERE / "results" / "mesh.json"
    if args.table:
        print(table(json.loads(out.read_text(encoding="utf-8"))))
        return
    if args.landmarker:
        with tempfile.TemporaryDirectory(prefix="abaw-mesh-") as tmp:
            timing = landmarker_workers(Path(tmp), args.landmarker)
        result = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
        result["landmarker_workers"] = timing
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
        return
    for needed in ("data/features.zarr", "data/faces", "models/mae/mae.pt"):
        if not (ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro` (or `make demo`) first")
    seeds = list(range(args.seeds))
    work = args.keep or Path(tempfile.mkdtemp(prefix="abaw-mesh-"))
    params = load_params(ROOT / "params.yaml")
    start = time.perf_counter()
    try:
        store, extraction = add_mesh(work)
        print(f"mesh extraction: {json.dumps(extraction)}", flush=True)
        every = ["landmarks", MESH, "mae", *(f"finetuned_{t}" for t in BASIC_KEYS)]
        probes = {s: probe_extractors(ROOT / "data" / "raw", FeatureStore(store, mode="r"), every,
                                      params.features.probe_stride, s, params.features.probe_max_frames)
                  for s in seeds}
        scores: dict[str, dict[str, dict[int, float]]] = {t: {e: {} for e in _extractors(t)} for t in BASIC_KEYS}
        fused: dict[str, dict[int, float]] = {"default": {}, "with_mesh": {}}
        for seed in seeds:
            for task in BASIC_KEYS:
                for extractor in _extractors(task):
                    scores[task][extractor][seed] = temporal(seed, task, extractor, store,
                                                             work / f"seed{seed}" / extractor)
            default_dir = work / f"seed{seed}" / params.temporal.common.extractor / "pred"
            base = list(params.fusion.extractors)
            fused["default"][seed] = fusion(seed, base, store, default_dir, work / f"seed{seed}" / "fusion")
            fused["with_mesh"][seed] = fusion(seed, [*base, MESH], store, default_dir,
                                              work / f"seed{seed}" / "fusion_mesh")
            print(f"seed {seed}: " + json.dumps({t: {e: round(v[seed], 4) for e, v in s.items()}
                                                 for t, s in scores.items()})
                  + f" fusion {fused['default'][seed]:.4f} -> {fused['with_mesh'][seed]:.4f}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    default = {t: params.temporal.resolve(t, 32).extractor for t in BASIC_KEYS}
    previous = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    result = {
        **{k: v for k, v in previous.items() if k == "landmarker_workers"},
        "seeds": seeds, "seconds": round(time.perf_counter() - start, 1), "extraction": extraction,
        "expr_probe_macro_f1": {e: _stats({s: probes[s][e] or 0.0 for s in seeds}) for e in every},
        "temporal": {t: {"default": default[t], "metric": "ccc_mean" if t == "va" else "f1",
                         "extractors": {e: _stats(v, scores[t][default[t]]) for e, v in scores[t].items()}}
                     for t in BASIC_KEYS},
        "fusion_mtl": {"default": _stats(fused["default"]),
                       "with_mesh": _stats(fused["with_mesh"], fused["default"])},
    }
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {out}")


def table(result: dict[str, Any]) -> str:
    """Markdown: per task, each extractor's temporal-model score (mean +- sd, seeds ahead of the default)."""
    n = len(result["seeds"])
    lines = [f"| input | EXPR probe | VA CCC | EXPR F1 | AU F1 | ({n} seeds: mean +- sd, seeds ahead of the default) |",
             "| --- | --- | --- | --- | --- | --- |"]
    rows = ["landmarks", MESH, "mae", "finetuned_<task>"]
    for row in rows:
        probe = result["expr_probe_macro_f1"].get(row if row != "finetuned_<task>" else "finetuned_expr")
        cells = [f"{probe['mean']:.3f}" if probe else "-"]
        for task in BASIC_KEYS:
            name = row.replace("<task>", task)
            s = result["temporal"][task]["extractors"][name]
            mark = " (default)" if name == result["temporal"][task]["default"] else f", {s['beats_default']}"
            cells.append(f"{s['mean']:.4f} +- {s['sd']:.4f}{mark}")
        lines.append(f"| {row} | " + " | ".join(cells) + " | |")
    f = result["fusion_mtl"]
    lines.append(f"\nFusion MTL: {f['default']['mean']:.4f} +- {f['default']['sd']:.4f} as configured, "
                 f"{f['with_mesh']['mean']:.4f} +- {f['with_mesh']['sd']:.4f} with `mesh` added "
                 f"(ahead on {f['with_mesh']['beats_default']} seeds).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
