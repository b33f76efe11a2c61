"""Train one task's temporal model on windows of cached features, selecting the epoch by the official metric.

The loop is the published recipe's second step: frame features are frozen
(read once from the store), a temporal encoder plus a task head trains on
windows of `window` frames, every epoch predicts the validation videos with
overlapping sliding windows and scores them with the challenge metric, and the
best epoch's weights are kept. The same function trains the frame-wise
baseline (encoder `framewise`: same features and head, no temporal mixing), so
the value of temporal context is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pipeline_lib.config import ResolvedTemporal
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.metrics import TASK_METRICS, au_f1, expr_f1, va_score
from pipeline_lib.models.heads import build_head
from pipeline_lib.models.temporal import TemporalModel, kwargs_for_encoder
from pipeline_lib.train import distributed
from pipeline_lib.train.losses import au_loss, class_weights, expr_loss, positive_weights, va_loss
from pipeline_lib.train.loop import fit
from pipeline_lib.train.sliding import sliding_predict

__all__ = ["TaskNetwork", "TrainedTemporal", "activate", "encoder_kwargs", "feature_stats", "predict_videos",
           "score_task", "task_loss", "train_temporal"]


class TaskNetwork(nn.Module):
    """Feature standardisation + temporal model + task head: features (B, T, D) -> (raw outputs, hidden)."""

    def __init__(self, task: str, temporal: TemporalModel, mean: torch.Tensor, std: torch.Tensor,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.task = task
        self.temporal = temporal
        self.head = build_head(task, temporal.hidden, dropout)
        # Buffers, so a checkpoint carries the training statistics the model expects.
        self.register_buffer("mean", mean.float())  # (D,)
        self.register_buffer("std", std.float())  # (D,)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (features - self.mean) / self.std  # (B, T, D)
        hidden = self.temporal(x, mask)  # (B, T, H)
        return self.head(hidden), hidden  # (B, T, O), (B, T, H)


def activate(task: str, outputs: torch.Tensor) -> torch.Tensor:
    """Raw head outputs -> what is averaged and stored: VA values (tanh already), EXPR / AU probabilities."""
    if task == "expr":
        return outputs.softmax(-1)
    if task == "au":
        return outputs.sigmoid()
    return outputs


def encoder_kwargs(settings: ResolvedTemporal) -> dict[str, Any]:
    """The registered encoder's own settings, picked from the flat temporal section."""
    s = settings
    return kwargs_for_encoder(s.encoder, layers=s.layers, heads=s.heads, dropout=s.dropout, window=s.window,
                              positions=s.positions, bidirectional=s.bidirectional, kernel=s.kernel)


def feature_stats(videos: Sequence[VideoArrays]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (D,) over the face frames of the training videos (std floored, so constant dims stay finite)."""
    rows = np.concatenate([v.features[v.valid].astype(np.float32) for v in videos])  # (N, D)
    return torch.from_numpy(rows.mean(0)), torch.from_numpy(np.maximum(rows.std(0), 1e-3))


def task_loss(task: str, labels: np.ndarray, mse_weight: float = 0.0
              ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """(outputs (..., O) of the task's head, labels (..., L), label_mask (..., L)) -> loss.

    EXPR class weights and AU positive weights come from `labels` (N, L), the
    training labels with -1 where not annotated (VA needs none).
    """
    if task == "va":
        return lambda out, y, m: va_loss(out, torch.where(m, y, -5.0), m, mse_weight)
    if task == "expr":
        weights = class_weights(labels[:, 0])
        return lambda out, y, m: expr_loss(out, torch.where(m[..., 0], y[..., 0], -1).long(), m[..., 0], weights)
    pos = positive_weights(labels)
    return lambda out, y, m: au_loss(out, torch.where(m, y, -1.0), m, pos)


def score_task(task: str, outputs: Sequence[np.ndarray], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """The official metric and its parts on every annotated frame of `videos` (predictions exist for all frames).

    AU uses a 0.5 threshold here; tuned per-AU thresholds are the evaluate stage's business.
    """
    pred = np.concatenate(outputs)  # (N, O)
    labels = np.concatenate([np.where(v.label_mask, v.labels, -5.0 if task == "va" else -1.0) for v in videos])
    if task == "va":
        return va_score(pred, labels)
    if task == "expr":
        return {"f1_macro": expr_f1(pred.argmax(1), labels[:, 0].astype(np.int64))}
    scores = au_f1((pred >= 0.5).astype(np.int64), labels.astype(np.int64))
    return {"f1_mean": scores.pop("mean"), **{f"f1_{k}": v for k, v in scores.items()}}


def predict_videos(network: TaskNetwork, videos: Sequence[VideoArrays], window: int, device: str = "cpu",
                   batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video (activated outputs (T, O), hidden (T, H)) from overlapping windows."""
    network.eval()

    def forward(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, hidden = network(x, mask)
        return activate(network.task, outputs), hidden

    return [sliding_predict(forward, v.features, v.valid, window, batch_size=batch_size, device=device)
            for v in videos]


@dataclass
class TrainedTemporal:
    """The best epoch's network and the curves that chose it."""

    network: TaskNetwork
    metric: str
    best_epoch: int
    best: dict[str, float]
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_temporal(train: Sequence[VideoArrays], val: Sequence[VideoArrays], settings: ResolvedTemporal, *,
                   seed: int = 0, on_epoch: Callable[[int, float, float], None] | None = None) -> TrainedTemporal:
    """Train `settings.encoder` for `settings.task`; on_epoch(epoch, train_loss, val_metric) after each epoch.

    Under torchrun every rank calls this: each trains through DDP on its share of the windows
    (`settings.batch_size` per process), validates on every video and keeps the same best epoch.
    """
    task, metric = settings.task, TASK_METRICS[settings.task].name
    if not val:
        raise ValueError(f"task {task}: no validation video to select the epoch on")
    rank, world = distributed.join(settings.device)
    target = distributed.local_device(settings.device)  # under torchrun with cuda: this rank's own GPU
    device = str(target)
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    data = WindowDataset(train, settings.window, settings.train_stride)
    labelled = Subset(data, data.labelled())
    if world > 1:
        # Each rank a disjoint 1/world of the windows, the permutation reshuffled per epoch by `fit` (set_epoch);
        # `settings.batch_size` is per process. One process keeps its plain shuffle (and its exact results).
        sampler = DistributedSampler(labelled, world, rank, shuffle=True, seed=seed)
        loader = DataLoader(labelled, batch_size=settings.batch_size, sampler=sampler)
    else:
        loader = DataLoader(labelled, batch_size=settings.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
    mean, std = feature_stats(train)
    temporal = TemporalModel(train[0].features.shape[1], settings.encoder, settings.hidden, settings.convergence,
                             encoder_kwargs=encoder_kwargs(settings))
    network = TaskNetwork(task, temporal, mean, std, settings.dropout).to(device)
    # Training forwards go through DDP (gradients averaged over the ranks in backward); validation and the
    # kept weights use `network` itself, the same module without the wrapper.
    trainable: nn.Module = network
    if world > 1:
        torch.manual_seed(seed + rank)  # dropout: each rank its own masks (the weights are already identical)
        trainable = DistributedDataParallel(network, device_ids=[target] if target.type == "cuda" else None)
    loss_fn = task_loss(task, np.concatenate([np.where(v.label_mask, v.labels, -1) for v in train]),
                        settings.mse_weight)

    def batch_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs, _ = trainable(batch["features"].to(device), batch["valid"].to(device))  # (B, W, O)
        return loss_fn(outputs, batch["labels"].to(device), batch["label_mask"].to(device))

    def validate() -> dict[str, float]:
        return score_task(task, [out for out, _ in predict_videos(network, val, settings.window, device)], val)

    fitted = fit(network, loader, batch_loss, validate, metric, epochs=settings.epochs, lr=settings.lr,
                 weight_decay=settings.weight_decay, on_epoch=on_epoch)
    return TrainedTemporal(network, metric, fitted.best_epoch, fitted.best, fitted.train_loss, fitted.val_metric,
                           fitted.seconds)
