"""The epoch loop every supervised stage shares: AdamW with warm-up + cosine, clipped gradients, validation
after each epoch, and the best epoch's weights kept (first best on ties).

Under torchrun every rank runs `fit` in lockstep: `batch_loss` goes through a DistributedDataParallel wrapper
of `model` (so backward leaves the ranks' averaged gradients in `model`'s parameters), the loader's
DistributedSampler is reshuffled each epoch, and every rank validates on every video, so each one picks the
same best epoch without any message passing. Callers that train in one process pass a plain model and loader.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline_lib.train.distributed import mean_over_ranks
from pipeline_lib.train.schedule import warmup_cosine

__all__ = ["Fitted", "fit"]


@dataclass
class Fitted:
    """What chose the kept weights: the best epoch (0-based), its scores and the per-epoch curves."""

    best_epoch: int = -1
    best: dict[str, float] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit(model: nn.Module, loader: Iterable[dict[str, Any]], batch_loss: Callable[[dict[str, Any]], torch.Tensor],
        validate: Callable[[], dict[str, float]] | None, metric: str, *, epochs: int, lr: float, weight_decay: float,
        on_epoch: Callable[[int, float, float], None] | None = None, validate_first: bool = False) -> Fitted:
    """Train `model` in place and load the best epoch's weights back into it.

    batch_loss(batch) -> loss of one training batch (the model in train mode);
    validate() -> the scores of one epoch, `metric` among them (higher is better); None when there is nothing to
    validate on (no labelled validation video): the last epoch is kept and its metric is NaN;
    on_epoch(epoch, train_loss, val_metric) after each epoch, train_loss averaged over the ranks under torchrun.
    One epoch of warm-up. `validate_first` also scores the untrained model: when no epoch beats it, its
    weights are kept and `best_epoch` is -1 (for a model that starts from a useful prediction).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = max(1, len(loader))  # type: ignore[arg-type]
    total, warmup = epochs * per_epoch, per_epoch
    result = Fitted()
    best_state: dict[str, torch.Tensor] | None = None
    begin, step = time.perf_counter(), 0
    sampler = getattr(loader, "sampler", None)
    if validate_first and validate is not None:
        result.best = validate()
        best_state = copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler: a new permutation (the same on every rank)
            sampler.set_epoch(epoch)
        model.train()
        running, batches = 0.0, 0
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr * warmup_cosine(step, warmup, total)
            loss = batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running, batches, step = running + loss.item(), batches + 1, step + 1
        scores = validate() if validate is not None else {metric: float("nan")}
        result.train_loss.append(mean_over_ranks(running / max(1, batches)))  # itself in one process
        result.val_metric.append(scores[metric])
        if best_state is None or validate is None or scores[metric] > result.best[metric]:
            result.best_epoch, result.best = epoch, scores
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1], scores[metric])
    assert best_state is not None, "fit needs at least one epoch"
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - begin
    return result
