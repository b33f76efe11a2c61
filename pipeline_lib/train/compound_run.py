"""The compound stage end to end: inputs, curriculum training (and direct training with the same budget when
asked to compare), zero-shot scores, predictions for every video, checkpoint and metrics.

Outputs (DESIGN.md sections 3 and 4):
- `<models>/compound.pt`: weights-only checkpoint of the curriculum model.
- `<predictions>/compound.h5`: per video `ce` (T, 7) compound probabilities, `basic` (T, 8) basic-expression
  probabilities of the same model, `zero_shot` (T, 7) scores from the fusion model, `valid`; attrs: split.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_lib import __version__
from pipeline_lib.artifacts.checkpoints import save_spec_model, write_checkpoint
from pipeline_lib.artifacts.predictions import write_groups
from pipeline_lib.config import CompoundSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import CE_NAMES, EXPR_NAMES
from pipeline_lib.data.manifest import format_splits
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.mapped import Spill
from pipeline_lib.models.compound import zero_shot_probabilities
from pipeline_lib.train.compound import TrainedCompound, ce_class_f1, predict_compound, score_compound, train_compound
from pipeline_lib.train.compound_data import COL_BASIC, COL_CE, CompoundData, load_compound_data
from pipeline_lib.train.curriculum import Stage, curriculum_stages, direct_stages
from pipeline_lib.train.synthetic import SyntheticCompound, pure_windows

__all__ = ["run_compound"]



def _write_predictions(path: Path, data: CompoundData, predicted: list[dict[str, np.ndarray]],
                       meta: dict[str, Any]) -> None:
    def datasets(video: VideoArrays, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = {"ce": rows["ce"].astype(np.float32)}
        if "basic" in rows:
            found["basic"] = rows["basic"].astype(np.float32)
        found.update(zero_shot=data.zero_shot[video.name].astype(np.float32), valid=video.valid)
        return found

    write_groups(path, meta, ((video.name, datasets(video, rows), format_splits(data.entries[video.name].splits))
                              for video, rows in zip(data.every, predicted, strict=True)))


def _report(trained: TrainedCompound, probs: list[np.ndarray], data: CompoundData) -> dict[str, Any]:
    report: dict[str, Any] = {"best_epoch": trained.best_epoch + 1, **trained.best}
    if data.val:
        report.update(class_f1=ce_class_f1(probs, data.val), curve=[round(v, 4) for v in trained.val_f1])
    return {**report, "seconds": round(trained.seconds, 1)}


def _real_frames(data: CompoundData) -> int:
    """CE-labelled training frames with a face."""
    return sum(int((v.label_mask[:, COL_CE] & v.valid).sum()) for v in data.compound_train)


def _synthetic_pools(data: CompoundData, settings: CompoundSettings, window: int) -> dict[int, np.ndarray]:
    """The pure single-expression windows synthetic compounds would be mixed from (empty when switched off)."""
    if not settings.synthetic.enabled or not data.basic_train:
        return {}
    s = settings.synthetic
    return pure_windows(WindowDataset(data.basic_train, window, max(1, window // 2)), COL_BASIC, s.purity, s.min_frames)


def _untrainable(data: CompoundData, settings: CompoundSettings, pools: dict[int, np.ndarray]) -> str | None:
    """Why no compound model can be trained: no CE-labelled training frame and no synthetic compound either."""
    if _real_frames(data) > 0:
        return None
    missing = f"no CE-labelled training frame with a face ({len(data.compound_train)} CE training video(s))"
    if not settings.synthetic.enabled:
        return f"{missing} and compound.synthetic is off"
    if not data.basic_train:
        return f"{missing} and no EXPR training video to make synthetic compound windows from"
    if not SyntheticCompound.available(pools):
        counts = {EXPR_NAMES[c]: len(v) for c, v in pools.items()}
        return f"{missing}, and no compound has pure windows of both its expressions to mix (pure windows: {counts})"
    c = settings.curriculum
    if not any(stage.synthetic > 0 for stage in curriculum_stages(c.epochs, c.share, c.synthetic, real=False)):
        return (f"{missing}, and no stage of compound.curriculum draws synthetic compound windows "
                f"(synthetic {c.synthetic} for share {c.share})")
    return None


def _zero_shot_only(data: CompoundData, reason: str, meta: dict[str, Any], models_dir: Path,
                    predictions_path: Path) -> dict[str, Any]:
    """Predictions from the fusion model's zero-shot scores alone, and a checkpoint that says so."""
    predicted = [{"ce": zero_shot_probabilities(data.zero_shot[v.name])} for v in data.every]
    write_checkpoint(models_dir / "compound.pt", {"zero_shot_only": True, "meta": {**meta, "reason": reason}})
    _write_predictions(predictions_path, data, predicted, {**meta, "zero_shot_only": True})
    return {"trained": False, "reason": reason}


def _runs(settings: CompoundSettings, real: bool, synthetic: bool) -> dict[str, list[Stage]]:
    """The schedules to train: the curriculum (the submitted model), and with `compare` direct training and the
    synthetic-only curriculum beside it (both need CE training labels to differ from it). `synthetic`: some
    compound can be mixed from pure single-expression windows."""
    c = settings.curriculum
    runs = {"curriculum": curriculum_stages(c.epochs, c.share, c.synthetic if synthetic else None, real=real)}
    if settings.compare and real:
        runs["direct"] = direct_stages(c.epochs)
        if synthetic:
            runs["synthetic_only"] = curriculum_stages(c.epochs, c.share, c.synthetic, real=False)
    return runs


def _seed_summary(scores: dict[str, list[float]], seeds: list[int]) -> dict[str, Any]:
    """Per-run F1 at every seed, their mean and sd, and how often the curriculum beat each other run."""
    out: dict[str, Any] = {"seeds": seeds, "f1_macro": scores,
                           "mean": {k: round(float(np.mean(v)), 4) for k, v in scores.items()},
                           "sd": {k: round(float(np.std(v)), 4) for k, v in scores.items()}}
    out["curriculum_wins"] = {k: sum(c >= o for c, o in zip(scores["curriculum"], v, strict=True))
                              for k, v in scores.items() if k != "curriculum"}
    return out


def run_compound(raw_dir: Path, store_path: Path, fusion_predictions: Path, settings: CompoundSettings,
                 window: int, models_dir: Path, predictions_path: Path, *, seed: int = 0,
                 on_epoch: Callable[[str, int, float, float], None] | None = None,
                 notice: Callable[[str], None] = lambda message: warnings.warn(message, stacklevel=2)
                 ) -> dict[str, Any]:
    """Train the curriculum model (and the compared runs); returns the stage metrics.

    Without CE training labels (C-EXPR-DB ships none) the curriculum trains on synthetic compound windows;
    without a CE validation video its last epoch is kept. Only when neither real nor synthetic compound
    windows exist does `notice` say so and the fusion model's zero-shot scores become the compound predictions.
    Compared runs train at `settings.seeds` seeds (seed, seed + 1, ...) when there is a CE validation video.
    """
    store = FeatureStore(store_path, mode="r")
    data = load_compound_data(raw_dir, store, fusion_predictions, list(settings.extractors),
                              settings.fusion_features)
    meta = {"sources": data.sources, "window": window, "seed": seed, "settings": settings.model_dump(),
            "library": __version__, "labels": list(CE_NAMES)}
    pools = _synthetic_pools(data, settings, window)
    reason = _untrainable(data, settings, pools)
    if reason is not None:
        notice(f"compound: {reason}; writing the fusion model's zero-shot compound scores instead")
        return {"window": window, "sources": data.sources, **_zero_shot_only(data, reason, meta, models_dir,
                                                                            predictions_path)}
    real = _real_frames(data) > 0
    runs = _runs(settings, real, bool(SyntheticCompound.available(pools)))
    if not data.basic_train and any(st.real + st.synthetic < 1 for st in runs["curriculum"]):
        raise DataError(raw_dir / "annotations" / "EXPR_Recognition_Challenge" / "Train_Set",
                        "compound: the curriculum starts from single expressions but no EXPR training video exists; "
                        "set compound.curriculum.share to 1.0 for every stage")
    if not data.val:
        notice("compound: no CE-labelled validation video; the last epoch is kept and no CE score is reported")
    metrics: dict[str, Any] = {
        "trained": True, "window": window, "sources": data.sources, "schedule": settings.curriculum.model_dump(),
        "real_compound_labels": real,
        "train_videos": {"basic": len(data.basic_train), "compound": len(data.compound_train)},
        "val_videos": len(data.val),
    }
    if data.val:
        zero_shot = [data.zero_shot[v.name] for v in data.val]
        metrics["zero_shot"] = {**score_compound(zero_shot, data.val), "class_f1": ce_class_f1(zero_shot, data.val)}
    seeds = [seed + k for k in range(settings.seeds if data.val else 1)]
    scores: dict[str, list[float]] = {name: [] for name in runs}
    per_epoch = None
    for run_seed in seeds:
        for name, stages in runs.items():
            compound_train = [] if name == "synthetic_only" else data.compound_train

            def run_epoch(e: int, loss: float, val: float, name: str = name) -> None:
                assert on_epoch is not None  # passed on only when there is one
                on_epoch(name, e, loss, val)

            trained = train_compound(data.basic_train, compound_train, data.val, settings, window, stages,
                                     seed=run_seed, per_epoch=per_epoch if name == "synthetic_only" else None,
                                     on_epoch=None if on_epoch is None or run_seed != seed else run_epoch)
            per_epoch = trained.per_epoch if name == "curriculum" else per_epoch  # synthetic_only: same budget
            if data.val:
                scores[name].append(trained.best["f1_macro"])
            if run_seed != seed:
                continue
            predicted = predict_compound(trained.model, data.every, window, settings.device,
                                         keep=Spill(predictions_path.parent))
            by_name = {v.name: p["ce"] for p, v in zip(predicted, data.every, strict=True)}
            metrics[name] = _report(trained, [by_name[v.name] for v in data.val], data)
            if name == "curriculum":
                metrics["synthetic"] = trained.synthetic
                save_spec_model(models_dir / "compound.pt", trained.model,
                                {**meta, "best_epoch": trained.best_epoch + 1, "val": trained.best})
                _write_predictions(predictions_path, data, predicted, meta)
    if data.val:
        scores["zero_shot"] = [metrics["zero_shot"]["f1_macro"]] * len(seeds)  # no training: the same at every seed
        metrics["seeds"] = _seed_summary(scores, seeds)
    if "direct" in metrics and data.val:
        gap = metrics["curriculum"]["f1_macro"] - metrics["direct"]["f1_macro"]
        metrics["curriculum_minus_direct"] = round(gap, 4)
        metrics["curriculum_beats_direct"] = bool(gap >= 0)
    return metrics
