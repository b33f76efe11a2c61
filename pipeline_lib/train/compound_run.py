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
from pipeline_lib.config import CompoundSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import CE_NAMES
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.models.compound import CompoundModel, zero_shot_probabilities
from pipeline_lib.train.checkpoint import from_spec, read_checkpoint, rebuild, save_spec_model, write_checkpoint
from pipeline_lib.train.predictions import read_video_groups, write_groups
from pipeline_lib.train.compound import (TrainedCompound, ce_class_f1, predict_compound, score_compound,
                                         train_compound)
from pipeline_lib.train.compound_data import COL_CE, CompoundData, load_compound_data

__all__ = ["load_compound_model", "read_compound_predictions", "run_compound"]


def load_compound_model(path: Path) -> tuple[CompoundModel | None, dict[str, Any]]:
    """The trained compound model (eval mode; None when the stage had no CE data and fell back to zero-shot
    scores) and its metadata; foreign or corrupt files raise CheckpointError."""
    checkpoint = read_checkpoint(path, "missing: run `abaw compound` first")
    if checkpoint.get("zero_shot_only") is True:
        return None, dict(checkpoint.get("meta", {}))
    return rebuild(path, checkpoint, "compound", lambda c: from_spec(CompoundModel, c))


def read_compound_predictions(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """{video: {"ce", "zero_shot", "valid", ["basic"]}} and the file's metadata."""
    return read_video_groups(path)


def _write_predictions(path: Path, data: CompoundData, predicted: list[dict[str, np.ndarray]],
                       meta: dict[str, Any]) -> None:
    def datasets(video: VideoArrays, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = {"ce": rows["ce"].astype(np.float32)}
        if "basic" in rows:
            found["basic"] = rows["basic"].astype(np.float32)
        found.update(zero_shot=data.zero_shot[video.name].astype(np.float32), valid=video.valid)
        return found

    write_groups(path, meta, ((video.name, datasets(video, rows), data.splits[video.name])
                              for video, rows in zip(data.every, predicted, strict=True)))


def _report(trained: TrainedCompound, probs: list[np.ndarray], data: CompoundData) -> dict[str, Any]:
    return {"best_epoch": trained.best_epoch + 1, **trained.best, "class_f1": ce_class_f1(probs, data.val),
            "curve": [round(v, 4) for v in trained.val_f1], "seconds": round(trained.seconds, 1)}


def _untrainable(data: CompoundData) -> str | None:
    """Why no compound model can be trained (no CE-labelled training face frame, no CE validation video)."""
    annotated = sum(int((v.label_mask[:, COL_CE] & v.valid).sum()) for v in data.compound_train)
    if annotated == 0:
        return f"no CE-labelled training frame with a face ({len(data.compound_train)} CE training video(s))"
    if not data.val:
        return "no CE-annotated validation video to choose the epoch on"
    return None


def _zero_shot_only(data: CompoundData, reason: str, meta: dict[str, Any], models_dir: Path,
                    predictions_path: Path) -> dict[str, Any]:
    """Predictions from the fusion model's zero-shot scores alone, and a checkpoint that says so."""
    predicted = [{"ce": zero_shot_probabilities(data.zero_shot[v.name])} for v in data.every]
    write_checkpoint(models_dir / "compound.pt", {"zero_shot_only": True, "meta": {**meta, "reason": reason}})
    _write_predictions(predictions_path, data, predicted, {**meta, "zero_shot_only": True})
    return {"trained": False, "reason": reason}


def run_compound(raw_dir: Path, store_path: Path, fusion_predictions: Path, settings: CompoundSettings,
                 window: int, models_dir: Path, predictions_path: Path, *, seed: int = 0,
                 on_epoch: Callable[[str, int, float, float], None] | None = None,
                 notice: Callable[[str], None] = lambda message: warnings.warn(message, stacklevel=2)
                 ) -> dict[str, Any]:
    """Train the curriculum model (and the direct one when `compare`); returns the stage metrics.

    Without CE training or validation data, `notice` says so and the fusion model's zero-shot scores become the
    compound predictions (a real Aff-Wild2 copy often has no CE annotations).
    """
    store = FeatureStore(store_path, mode="r")
    data = load_compound_data(raw_dir, store, fusion_predictions, list(settings.extractors),
                              settings.fusion_features)
    curriculum = list(zip(settings.curriculum.epochs, settings.curriculum.share, strict=True))
    if not data.basic_train and any(share < 1 for _, share in curriculum):
        raise DataError(raw_dir / "annotations" / "EXPR_Recognition_Challenge" / "Train_Set",
                        "compound: the curriculum starts from single expressions but no EXPR training video exists; "
                        "set compound.curriculum.share to 1.0 for every stage")
    meta = {"sources": data.sources, "window": window, "seed": seed, "settings": settings.model_dump(),
            "library": __version__, "labels": list(CE_NAMES)}
    reason = _untrainable(data)
    if reason is not None:
        notice(f"compound: {reason}; writing the fusion model's zero-shot compound scores instead")
        return {"window": window, "sources": data.sources, **_zero_shot_only(data, reason, meta, models_dir,
                                                                            predictions_path)}
    runs = {"curriculum": curriculum}
    if settings.compare:
        runs["direct"] = [(epochs, 1.0) for epochs, _ in curriculum]  # same epochs, windows and steps: same budget
    zero_shot = [data.zero_shot[v.name] for v in data.val]
    metrics: dict[str, Any] = {
        "trained": True, "window": window, "sources": data.sources, "schedule": settings.curriculum.model_dump(),
        "train_videos": {"basic": len(data.basic_train), "compound": len(data.compound_train)},
        "val_videos": len(data.val),
        "zero_shot": {**score_compound(zero_shot, data.val), "class_f1": ce_class_f1(zero_shot, data.val)},
    }
    for name, stages in runs.items():
        trained = train_compound(data.basic_train, data.compound_train, data.val, settings, window, stages,
                                 seed=seed, on_epoch=None if on_epoch is None else
                                 lambda e, loss, val, name=name: on_epoch(name, e, loss, val))
        predicted = predict_compound(trained.model, data.every, window, settings.device)
        val_probs = [p["ce"] for p, v in zip(predicted, data.every, strict=True) if any(v is w for w in data.val)]
        metrics[name] = _report(trained, val_probs, data)
        if name == "curriculum":
            save_spec_model(models_dir / "compound.pt", trained.model,
                            {**meta, "best_epoch": trained.best_epoch + 1, "val": trained.best})
            _write_predictions(predictions_path, data, predicted, meta)
    if "direct" in metrics:
        gap = metrics["curriculum"]["f1_macro"] - metrics["direct"]["f1_macro"]
        metrics["curriculum_minus_direct"] = round(gap, 4)
        metrics["curriculum_beats_direct"] = bool(gap >= 0)
    return metrics
