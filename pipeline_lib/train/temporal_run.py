"""One task's temporal stage end to end: train the temporal model and the frame-wise baseline, predict every
video, write checkpoints, per-frame predictions and the metrics that compare the two.

Outputs (DESIGN.md sections 3 and 4):
- `<models>/<task>/{temporal,baseline}.pt`: weights-only checkpoints (tensors + plain metadata).
- `<predictions>/<task>.h5`: per model group and video, `outputs` (T, O) float32 (VA values, EXPR / AU
  probabilities) and, for the temporal model, `hidden` (T, H) float16: the pre-head features fusion reads.
  attrs carry the task, extractor, window and the feature provenance they came from.

Under torchrun every rank trains (DDP, see `train_temporal`) and rank 0 alone predicts and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_lib import __version__
from pipeline_lib.artifacts.checkpoints import write_checkpoint
from pipeline_lib.artifacts.predictions import write_groups
from pipeline_lib.config import ResolvedTemporal
from pipeline_lib.data.manifest import format_splits
from pipeline_lib.features.store import FeatureStore, features_digest
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.mapped import Spill
from pipeline_lib.models.task_network import TaskNetwork
from pipeline_lib.train import distributed
from pipeline_lib.train.scoring import score_task
from pipeline_lib.train.sliding import predict_videos
from pipeline_lib.train.task_data import TaskData, load_task_data
from pipeline_lib.train.temporal import TrainedTemporal, train_temporal

__all__ = ["MODELS", "run_temporal_task", "save_task_network"]

MODELS = ("temporal", "baseline")


def save_task_network(path: Path, network: TaskNetwork, dropout: float, meta: dict[str, Any]) -> None:
    write_checkpoint(path, {"model": network.state_dict(), "spec": network.temporal.spec, "task": network.task,
                            "dropout": dropout, "meta": meta})


def _write_predictions(path: Path, data: TaskData, predicted: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                       attrs: dict[str, Any]) -> None:
    def datasets(model: str, video: VideoArrays, outputs: np.ndarray, hidden: np.ndarray) -> dict[str, np.ndarray]:
        found = {"outputs": outputs.astype(np.float32), "valid": video.valid}
        if model == "temporal":  # the pre-head features fusion reads
            found["hidden"] = hidden.astype(np.float16)
        return found

    write_groups(path, attrs, ((f"{model}/{video.name}", datasets(model, video, outputs, hidden),
                                format_splits(data.entries[video.name].splits))
                               for model, rows in predicted.items()
                               for video, (outputs, hidden) in zip(data.every, rows, strict=True)))


def _summary(trained: TrainedTemporal) -> dict[str, Any]:
    return {"best_epoch": trained.best_epoch + 1, **{k: round(v, 4) for k, v in trained.best.items()},
            "seconds": round(trained.seconds, 1)}


def run_temporal_task(raw_dir: Path, store_path: Path, settings: ResolvedTemporal, models_dir: Path,
                      predictions_path: Path, *, seed: int = 0,
                      on_epoch: Callable[[str, int, float, float], None] | None = None) -> dict[str, Any]:
    """Train, predict, save; returns the stage metrics (temporal vs frame-wise baseline on validation).

    Under torchrun only rank 0 predicts and writes, and only its metrics are complete (the others' lack the
    parts computed from the predictions): the stage writes rank 0's.
    """
    store = FeatureStore(store_path, mode="r")
    data = load_task_data(raw_dir, store, settings.task, settings.extractor)
    runs = {"temporal": settings}
    if settings.baseline:
        runs["baseline"] = settings.model_copy(update={"encoder": "framewise", "convergence": 1})
    provenance = features_digest(store, settings.extractor, [v.name for v in data.every])
    meta = {"task": settings.task, "extractor": settings.extractor, "features": provenance, "window": settings.window,
            "settings": settings.model_dump(), "seed": seed, "library": __version__}
    metrics: dict[str, Any] = {"task": settings.task, "metric": None, "extractor": settings.extractor,
                               "encoder": settings.encoder, "window": settings.window,
                               "train_videos": len(data.train), "val_videos": len(data.val)}
    predicted: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # memory-mapped: the corpus is never in RAM
    spill = Spill(predictions_path.parent)
    for model, run in runs.items():
        def model_epoch(e: int, loss: float, val: float, model: str = model) -> None:
            assert on_epoch is not None  # passed on only when there is one
            on_epoch(model, e, loss, val)

        trained = train_temporal(data.train, data.val, run, seed=seed,
                                 on_epoch=None if on_epoch is None else model_epoch)
        metrics["metric"] = trained.metric
        metrics[model] = _summary(trained)
        metrics[model]["curve"] = [round(v, 4) for v in trained.val_metric]
        if not distributed.is_main():
            continue  # the other ranks only train (in lockstep with rank 0); the next model needs them again
        save_task_network(models_dir / settings.task / f"{model}.pt", trained.network, run.dropout,
                          {**meta, "encoder": run.encoder, "best_epoch": trained.best_epoch + 1,
                           "val": trained.best})
        predicted[model] = predict_videos(trained.network, data.every, run.window,
                                          str(distributed.local_device(run.device)), keep=spill)
        # The saved predictions must reproduce the selection score: a cheap guard on the averaging path.
        val_rows = [outputs for (outputs, _), v in zip(predicted[model], data.every, strict=True)
                    if any(v is w for w in data.val)]
        metrics[model]["val_from_predictions"] = round(score_task(settings.task, val_rows, data.val)[trained.metric],
                                                       4)
    if distributed.is_main():
        _write_predictions(predictions_path, data, predicted, meta)
    if settings.baseline:
        metric = metrics["metric"]
        metrics["temporal_minus_baseline"] = round(metrics["temporal"][metric] - metrics["baseline"][metric], 4)
        metrics["temporal_beats_baseline"] = bool(metrics["temporal"][metric] > metrics["baseline"][metric])
    return metrics
