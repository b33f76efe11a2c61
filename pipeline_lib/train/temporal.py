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

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from pipeline_lib.config import ResolvedTemporal
from pipeline_lib.data.labels import TASKS
from pipeline_lib.features.normalize import feature_stats
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.models.task_network import TaskNetwork, encoder_kwargs
from pipeline_lib.models.temporal import TemporalModel
from pipeline_lib.train import distributed
from pipeline_lib.train.loop import fit
from pipeline_lib.train.losses import task_loss
from pipeline_lib.train.scoring import score_task
from pipeline_lib.train.sliding import predict_videos

__all__ = ["TrainedTemporal", "train_temporal"]


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
    task, metric = settings.task, TASKS[settings.task].metric
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
        sampler: DistributedSampler[dict[str, torch.Tensor]] = DistributedSampler(
            labelled, world, rank, shuffle=True, seed=seed)
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
                 weight_decay=settings.weight_decay, on_epoch=on_epoch, patience=settings.patience,
                 name=f"temporal {task}")
    return TrainedTemporal(network, metric, fitted.best_epoch, fitted.best, fitted.train_loss, fitted.val_metric,
                           fitted.seconds)
