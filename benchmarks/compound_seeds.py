"""Curriculum vs direct compound training over several seeds, on the pipeline's current demo outputs.

The demo CE validation split is 3 videos, so one seed's gap is noisy; this
re-trains both schedules (same budget) for seeds 0..N-1 on the cached
features and fusion predictions and writes the per-seed F1s and means to
benchmarks/results/compound_seeds.json. Run after `dvc repro`:

    python benchmarks/compound_seeds.py [N]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pipeline_lib.config import load_params
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.train.compound import train_compound
from pipeline_lib.train.compound_data import load_compound_data


def main(seeds: int = 3) -> dict[str, object]:
    params = load_params("params.yaml")
    settings = params.compound
    data = load_compound_data(Path("data/raw"), FeatureStore(Path("data/features.zarr"), mode="r"),
                              Path("data/predictions/fusion/fusion.h5"), list(settings.extractors),
                              settings.fusion_features)
    curriculum = list(zip(settings.curriculum.epochs, settings.curriculum.share, strict=True))
    runs = {"curriculum": curriculum, "direct": [(epochs, 1.0) for epochs, _ in curriculum]}
    scores: dict[str, list[float]] = {name: [] for name in runs}
    for seed in range(seeds):
        for name, stages in runs.items():
            trained = train_compound(data.basic_train, data.compound_train, data.val, settings, params.window,
                                     stages, seed=seed)
            scores[name].append(round(trained.best["f1_macro"], 4))
        print(f"seed {seed}: curriculum {scores['curriculum'][-1]}, direct {scores['direct'][-1]}", flush=True)
    result = {"seeds": seeds, "window": params.window, "schedule": settings.curriculum.model_dump(),
              "f1_macro": scores, "mean": {k: round(float(np.mean(v)), 4) for k, v in scores.items()},
              "curriculum_wins": sum(c >= d for c, d in zip(scores["curriculum"], scores["direct"], strict=True))}
    out = Path("benchmarks/results/compound_seeds.json")
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)["mean"]))
