"""The demo's claims over seeds: each claim's difference per seed, its mean, standard deviation and seeds held.

    python benchmarks/claims.py                 # seeds 0-4 on the pipeline's current outputs (after `dvc repro`)
    python benchmarks/claims.py --seeds 8 --keep /tmp/claims
    python benchmarks/claims.py --table         # results/claims.json as the README's markdown table

One run of the demo says little: on another CPU the same seed flipped two of the README's claims (issue 28).
This re-runs the stages after the feature store, as a user would (`abaw temporal|fusion|compound` with a
params file whose only change is `seed`, one compound run per seed), into a scratch folder, for each seed;
the upstream stages (corpus, faces, pretraining, fine-tuning, features) are re-used as they are, so the claims
are about the recipe's later stages on this pretraining. The MAE-vs-random probe compares the stored `mae`
probe with a `random` init drawn per seed (`probe_random_inits`).

A claim holds when its mean difference exceeds one standard deviation over the seeds (issue 28's bar).
Writes results/claims.json: per claim the per-seed differences and the two sides, mean, sd, seeds held.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pipeline_lib.config import load_params  # noqa: E402
from pipeline_lib.data.labels import BASIC_KEYS  # noqa: E402
from pipeline_lib.features.build import probe_extractors, probe_random_inits  # noqa: E402
from pipeline_lib.features.store import FeatureStore  # noqa: E402

ABAW = str(Path(sys.executable).parent / "abaw")

# claim -> (what it compares, the published direction, reader of (this side, the other side) from a seed's metrics)
Reader = Callable[[dict[str, Any]], tuple[float, float]]


def _temporal(task: str) -> Reader:
    def read(m: dict[str, Any]) -> tuple[float, float]:
        report = m["temporal"][task]
        return report["temporal"][report["metric"]], report["baseline"][report["metric"]]
    return read


def _compound(other: str) -> Reader:
    def read(m: dict[str, Any]) -> tuple[float, float]:
        return m["compound"]["curriculum"]["f1_macro"], m["compound"][other]["f1_macro"]
    return read


def _fusion(m: dict[str, Any]) -> tuple[float, float]:
    return m["fusion"]["val"]["mtl"], m["fusion"]["individual"]["sum"]


def _probe(m: dict[str, Any]) -> tuple[float, float]:
    return m["probe"]["mae"], m["probe"]["random"]


CLAIMS: dict[str, tuple[str, str, Reader]] = {
    **{f"temporal_vs_framewise_{t}": (f"{t.upper()} temporal model vs frame-wise baseline (validation)",
                                      "temporal ahead (all three anchors)", _temporal(t)) for t in BASIC_KEYS},
    "fusion_vs_individual": ("fusion MTL vs the sum of the best individual models",
                             "fusion ahead (multi-task fusion anchor)", _fusion),
    "curriculum_vs_direct": ("compound CE F1, curriculum vs direct training",
                             "curriculum ahead (compound anchor)", _compound("direct")),
    "curriculum_vs_synthetic_only": ("compound CE F1, curriculum vs synthetic-only", "curriculum ahead",
                                     _compound("synthetic_only")),
    "curriculum_vs_zero_shot": ("compound CE F1, curriculum vs zero-shot", "curriculum ahead",
                                _compound("zero_shot")),
    "mae_vs_random_probe": ("EXPR linear probe, MAE vs a random init of the same network",
                            "MAE ahead (MAE anchor)", _probe),
}


def _run(args: list[str]) -> None:
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def seed_params(seed: int, work: Path, **changes: Any) -> Path:
    """work/params.yaml: the project's params.yaml with `seed` and `changes` ("fusion__extractors" sets
    fusion.extractors) applied; the path."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["seed"] = seed
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        section = raw
        for parent in parents:
            section = section[parent]
        section[key] = value
    work.mkdir(parents=True, exist_ok=True)
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return params


def run_seed(seed: int, work: Path) -> dict[str, Any]:
    """The downstream stages at `seed` into work/: (task, fusion, compound) metrics."""
    # one compound run per seed (the stage's own loop would run seed..seed+2)
    params = seed_params(seed, work, compound__seeds=1)
    common = ["--params", str(params), "--raw", "data/raw", "--features", "data/features.zarr"]
    for task in BASIC_KEYS:
        _run([ABAW, "temporal", "--task", task, *common, "--models", str(work / "models/temporal"),
              "--predictions", str(work / "pred/temporal"), "--report", str(work / "metrics/temporal")])
    _run([ABAW, "fusion", *common, "--temporal", str(work / "pred/temporal"), "--models", str(work / "models/fusion"),
          "--predictions", str(work / "pred/fusion"), "--report", str(work / "metrics/fusion.json")])
    _run([ABAW, "compound", *common, "--fusion", str(work / "pred/fusion/fusion.h5"),
          "--models", str(work / "models/compound"), "--predictions", str(work / "pred/compound"),
          "--report", str(work / "metrics/compound.json")])
    read = lambda p: json.loads((work / "metrics" / p).read_text())  # noqa: E731
    return {"temporal": {t: read(f"temporal/{t}.json") for t in BASIC_KEYS}, "fusion": read("fusion.json"),
            "compound": read("compound.json")}


def probes(seeds: list[int]) -> dict[int, dict[str, float | None]]:
    """Per seed: the stored `mae` probe and a `random` init drawn at that seed (seed 0 is the stored group)."""
    params = load_params(ROOT / "params.yaml").features
    store = FeatureStore(ROOT / "data" / "features.zarr", mode="r")
    mae = probe_extractors(ROOT / "data" / "raw", store, ["mae"], params.probe_stride, 0,
                           params.probe_max_frames)["mae"]
    draws = probe_random_inits(ROOT / "data" / "raw", ROOT / "data" / "faces", ROOT / "models" / "mae" / "mae.pt",
                               seeds, params.probe_stride, params.batch_size, params.device, params.probe_max_frames)
    return {seed: {"mae": mae, "random": draws[seed]} for seed in seeds}


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for claim, (what, direction, reader) in CLAIMS.items():
        sides = {seed: reader(metrics) for seed, metrics in per_seed.items()}
        diffs = [round(a - b, 4) for a, b in sides.values() if a is not None and b is not None]
        mean = statistics.fmean(diffs) if diffs else None
        sd = statistics.stdev(diffs) if len(diffs) > 1 else None
        out[claim] = {"what": what, "published": direction,
                      "per_seed": {str(s): {"this": a, "other": b} for s, (a, b) in sides.items()},
                      "differences": diffs, "mean": None if mean is None else round(mean, 4),
                      "sd": None if sd is None else round(sd, 4),
                      "seeds_held": f"{sum(d > 0 for d in diffs)}/{len(diffs)}",
                      "holds": bool(mean is not None and sd is not None and mean > sd)}
    return out


def table(result: dict[str, Any]) -> str:
    """The README's claims table: per claim the published direction, mean +- sd over the seeds, seeds held."""
    lines = ["| claim | published | mean difference +- sd | seeds ahead | holds (mean > sd) |",
             "| --- | --- | --- | --- | --- |"]
    for c in result["claims"].values():
        lines.append(f"| {c['what']} | {c['published']} | {c['mean']:+.4f} +- {c['sd']:.4f} | {c['seeds_held']} "
                     f"| {'**yes**' if c['holds'] else 'no'} |")
    return "\n".join(lines)


def _upstream() -> dict[str, Any]:
    """The upstream settings every seed re-used (what the claims are conditional on)."""
    params = load_params(ROOT / "params.yaml")
    return {"pretrain": {k: getattr(params.pretrain, k) for k in ("model", "epochs", "frame_stride")},
            "finetune_epochs": params.finetune.epochs, "temporal_extractor": params.temporal.common.extractor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--keep", type=Path, help="work here and keep every seed's models and metrics")
    parser.add_argument("--table", action="store_true", help="print results/claims.json as a markdown table")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((HERE / "results" / "claims.json").read_text(encoding="utf-8"))))
        return
    for needed in ("data/features.zarr", "data/predictions", "models/mae/mae.pt"):
        if not (ROOT / needed).exists():
            raise SystemExit(f"{needed} is missing: run `dvc repro` (or `make demo`) first")
    seeds = list(range(args.seeds))
    work = args.keep or Path(tempfile.mkdtemp(prefix="abaw-claims-"))
    start = time.perf_counter()
    try:
        per_seed: dict[int, dict[str, Any]] = {}
        drawn = probes(seeds)
        for seed in seeds:
            per_seed[seed] = {**run_seed(seed, work / f"seed{seed}"), "probe": drawn[seed]}
            print(f"seed {seed}: " + json.dumps({c: round(a - b, 4) for c, (_, _, r) in CLAIMS.items()
                                                 for a, b in [r(per_seed[seed])]}), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    claims = summarise(per_seed)
    result = {"seeds": seeds, "seconds": round(time.perf_counter() - start, 1), "upstream": _upstream(),
              "claims": claims}
    out = HERE / "results" / "claims.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for claim, c in claims.items():
        print(f"{claim:32s} mean {c['mean']:+.4f} sd {c['sd']:.4f} held {c['seeds_held']} "
              f"{'HOLDS' if c['holds'] else 'does not hold'}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
