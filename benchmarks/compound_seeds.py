"""Compound-expression schedules over several seeds, on the pipeline's current demo outputs.

The demo CE validation split is 3 videos, so one seed's gap is noisy. This re-trains, for seeds 0..N-1 on the
cached features and fusion predictions (same epochs and windows per epoch for all):
- `direct`: CE-labelled windows only;
- `curriculum_real`: the published schedule with real compound windows only (compound.curriculum.synthetic 0);
- `curriculum`: the configured schedule (single -> synthetic -> real compound windows);
- `synthetic_only`: the configured schedule without CE training labels, as on C-EXPR-DB;
and scores the zero-shot compound score beside them. Per-seed CE macro F1, means, sds and win counts go to
benchmarks/results/compound_seeds.json. Run after `dvc repro`:

    python benchmarks/compound_seeds.py [--seeds N] [--synthetic 0,1,1,0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline_lib.config import load_params
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.train.compound import score_compound, train_compound
from pipeline_lib.train.compound_data import load_compound_data
from pipeline_lib.train.curriculum import curriculum_stages, direct_stages


def main(seeds: int = 5, synthetic: list[float] | None = None) -> dict[str, object]:
    params = load_params("params.yaml")
    settings = params.compound
    c = settings.curriculum
    fractions = list(c.synthetic) if synthetic is None else synthetic
    data = load_compound_data(Path("data/raw"), FeatureStore(Path("data/features.zarr"), mode="r"),
                              Path("data/predictions/fusion/fusion.h5"), list(settings.extractors),
                              settings.fusion_features)
    runs = {"direct": direct_stages(c.epochs), "curriculum_real": curriculum_stages(c.epochs, c.share),
            "curriculum": curriculum_stages(c.epochs, c.share, fractions),
            "synthetic_only": curriculum_stages(c.epochs, c.share, fractions, real=False)}
    scores: dict[str, list[float]] = {name: [] for name in runs}
    for seed in range(seeds):
        per_epoch = None
        for name, stages in runs.items():
            trained = train_compound(data.basic_train, [] if name == "synthetic_only" else data.compound_train,
                                     data.val, settings, params.window, stages, seed=seed, per_epoch=per_epoch)
            per_epoch = trained.per_epoch  # every run draws as many windows per epoch as the first (direct)
            scores[name].append(round(trained.best["f1_macro"], 4))
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]}" for k, v in scores.items()), flush=True)
    zero_shot = score_compound([data.zero_shot[v.name] for v in data.val], data.val)["f1_macro"]
    result = {
        "seeds": seeds, "window": params.window, "schedule": {**c.model_dump(), "synthetic": fractions},
        "f1_macro": scores, "zero_shot": zero_shot,
        "mean": {k: round(float(np.mean(v)), 4) for k, v in scores.items()},
        "sd": {k: round(float(np.std(v)), 4) for k, v in scores.items()},
        "curriculum_wins": {k: int(sum(a >= b for a, b in zip(scores["curriculum"], v, strict=True)))
                            for k, v in scores.items() if k != "curriculum"},
    }
    out = Path("benchmarks/results/compound_seeds.json")
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--synthetic", help="synthetic fraction per stage, comma-separated (default: params)")
    args = parser.parse_args()
    chosen = [float(x) for x in args.synthetic.split(",")] if args.synthetic else None
    print(json.dumps(main(args.seeds, chosen)["mean"]))
