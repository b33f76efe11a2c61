"""The epoch loop every supervised stage shares (finetune, temporal, fusion, compound): AdamW with warm-up +
cosine, clipped gradients, validation after each epoch, the best epoch's weights kept (first best on ties), an
optional stop after `patience` epochs without a better score, and a stop on a non-finite loss.

Under torchrun every rank runs `fit` in lockstep: `batch_loss` goes through a DistributedDataParallel wrapper
of `model` (so backward leaves the ranks' averaged gradients in `model`'s parameters), the loader's
DistributedSampler is reshuffled each epoch, and every rank validates on every video, so each one picks the
same best epoch without any message passing. Callers that train in one process pass a plain model and loader.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pipeline_lib.data.errors import DataError
from pipeline_lib.heap import release_freed_memory
from pipeline_lib.train.distributed import mean_over_ranks
from pipeline_lib.train.schedule import warmup_cosine

__all__ = ["Fitted", "LossNotFinite", "fit"]


class LossNotFinite(DataError):
    """A training loss became NaN or inf: the stage stops before it keeps or saves broken weights.

    A DataError because the usual causes are the user's to fix (a learning rate too high for their data, extreme
    feature values): the CLI prints it as one line, naming the stage, epoch and step.
    """

    def __init__(self, name: str, value: float, epoch: int, step: int, steps: int) -> None:
        super().__init__(None, f"{name}: the training loss is {value} at epoch {epoch + 1}, step {step + 1} of "
                               f"{steps}; the stage stopped without saving this epoch. Lower the learning rate, or "
                               f"look for extreme values in the features")
        self.args = (name, value, epoch, step, steps)  # picklable across worker processes, like every DataError


@dataclass
class Fitted:
    """What chose the kept weights: the best epoch (0-based), its scores and the per-epoch curves."""

    best_epoch: int = -1
    best: dict[str, float] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    seconds: float = 0.0


def fit(model: nn.Module, loader: Iterable[Any], batch_loss: Callable[[Any], torch.Tensor],
        validate: Callable[[], dict[str, float]] | None, metric: str, *, epochs: int, lr: float | None = None,
        weight_decay: float = 0.0, on_epoch: Callable[[int, float, float], None] | None = None,
        validate_first: bool = False, start: dict[str, float] | None = None,
        optimizer: torch.optim.Optimizer | None = None, schedule: bool = True, clip: float | None = 1.0,
        patience: int | None = None, name: str = "training") -> Fitted:
    """Train `model` in place and load the best epoch's weights back into it.

    batch_loss(batch) -> loss of one training batch (the model in train mode);
    validate() -> the scores of one epoch, `metric` among them (higher is better); None when there is nothing to
    validate on (no labelled validation video): the last epoch is kept and its metric is NaN;
    on_epoch(epoch, train_loss, val_metric) after each epoch, train_loss averaged over the ranks under torchrun.
    The starting weights compete with the epochs when their scores are known: `start` gives them (already
    measured), `validate_first` measures them; when no epoch beats them they are kept and `best_epoch` is -1
    (for a model that starts from a useful prediction).
    `optimizer` defaults to AdamW(lr, weight_decay) over every parameter; `schedule` scales each parameter group's
    own learning rate by one epoch of warm-up then a cosine; `clip` bounds the gradient norm (None: no clipping).
    `patience`: stop once that many epochs in a row scored no better than the best (None: every epoch runs).
    The schedule still spans `epochs`, so the epochs that do run are exactly those of the full run, and the kept
    weights differ from the full run's only when a later epoch would have beaten a best that stood `patience`
    epochs. Every rank validates alike under torchrun, so all stop at the same epoch.
    A NaN or inf loss raises LossNotFinite, named by `name`, before the step that would spread it.
    """
    if optimizer is None:
        if lr is None:
            raise ValueError("fit needs `lr` when it builds the optimizer")
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    per_epoch = max(1, len(loader))  # type: ignore[arg-type]
    total, warmup = epochs * per_epoch, per_epoch
    result = Fitted()
    best_state: dict[str, torch.Tensor] | None = None
    begin, step = time.perf_counter(), 0
    sampler: Any = getattr(loader, "sampler", None)  # a DataLoader's sampler, or None for another iterable
    if start is None and validate_first and validate is not None:
        start = validate()
    if start is not None:
        result.best = dict(start)
        best_state = copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        if hasattr(sampler, "set_epoch"):  # a DistributedSampler: a new permutation (the same on every rank)
            sampler.set_epoch(epoch)
        model.train()
        running, batches = 0.0, 0
        for batch in loader:
            if schedule:
                factor = warmup_cosine(step, warmup, total)
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * factor
            loss = batch_loss(batch)
            value = loss.item()
            # Under torchrun every rank must stop at the same step (a lone rank raising would leave the others
            # waiting in backward's all-reduce): decide on the ranks' mean, NaN when any rank's loss is.
            overall = mean_over_ranks(value)  # `value` itself in one process
            if not math.isfinite(overall):
                raise LossNotFinite(name, overall, epoch, batches, per_epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            running, batches, step = running + value, batches + 1, step + 1
        scores = validate() if validate is not None else {metric: float("nan")}
        release_freed_memory()  # the epoch's freed batches: without this the heap grows with the corpus
        result.train_loss.append(mean_over_ranks(running / max(1, batches)))  # itself in one process
        result.val_metric.append(scores[metric])
        if best_state is None or validate is None or scores[metric] > result.best[metric]:
            result.best_epoch, result.best = epoch, scores
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(epoch, result.train_loss[-1], scores[metric])
        if patience is not None and validate is not None and epoch - result.best_epoch >= patience:
            break
    assert best_state is not None, "fit needs at least one epoch or a `start`"
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - begin
    return result
