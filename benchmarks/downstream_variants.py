"""Temporal model vs frame-wise baseline per task under single changes: per-video centring and convergence.

Re-trains each task's temporal model and its frame-wise baseline on the
pipeline's current feature store (run after `dvc repro`) with the settings of
params.yaml, changing one thing at a time:

- `centred` / `raw`: features centred per video (what every stage does) or as stored;
- `convergence`: the temporal model's local aggregation (1 = off, params.yaml's value).

For another pretraining run, point `--store` at its feature store (for instance
one written by `dvc exp run -S pretrain.epochs=8` and copied aside). Writes the
per-seed validation scores to benchmarks/results/downstream_variants.json.

    python benchmarks/downstream_variants.py [--seeds 0,1] [--extractor mae] [--store data/features.zarr]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline_lib.config import load_params
from pipeline_lib.data.labels import BASIC_KEYS
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.train.task_data import load_task_data
from pipeline_lib.train.temporal import train_temporal

HERE = Path(__file__).resolve().parent


def main(seeds: list[int], extractor: str, store_path: Path) -> dict[str, object]:
    params = load_params("params.yaml")
    store = FeatureStore(store_path, mode="r")
    default = params.temporal.common.convergence
    variants = [("centred", True, default), ("centred", True, 1), ("raw", False, default)]
    rows = []
    for task in BASIC_KEYS:
        settings = params.temporal.resolve(task, params.window).model_copy(update={"extractor": extractor})
        loaded = {center: load_task_data(Path("data/raw"), store, task, extractor, center=center)
                  for center in (True, False)}
        for label, center, convergence in variants:
            data = loaded[center]
            for seed in seeds:
                scores = {}
                for model, run in (("temporal", settings.model_copy(update={"convergence": convergence})),
                                   ("baseline", settings.model_copy(update={"encoder": "framewise",
                                                                            "convergence": 1}))):
                    trained = train_temporal(data.train, data.val, run, seed=seed)
                    scores[model] = round(trained.best[trained.metric], 4)
                rows.append({"task": task, "features": label, "convergence": convergence, "seed": seed, **scores})
                print(json.dumps(rows[-1]), flush=True)
    result = {"store": str(store_path), "extractor": extractor, "window": params.window, "rows": rows}
    out = HERE / "results" / "downstream_variants.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="comma-separated pipeline seeds")
    parser.add_argument("--extractor", default="mae")
    parser.add_argument("--store", type=Path, default=Path("data/features.zarr"))
    args = parser.parse_args()
    main([int(s) for s in args.seeds.split(",")], args.extractor, args.store)
