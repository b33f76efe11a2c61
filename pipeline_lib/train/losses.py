"""Masked training losses of the three per-frame tasks: CCC for VA, weighted cross-entropy for EXPR, BCE for AU.

Why masks everywhere: a window holds padding, face-less frames and frames a
task did not annotate (-5 for VA, -1 for EXPR and AU, labels.py). A frame
counts only where the caller's mask is True *and* its label is not the
invalid marker. A mask is (B, T) / (N,) per frame, or, for VA and AU, per
entry (B, T, C) like the window dataset's `label_mask` columns.

Why no NaN, ever: a batch can hold no valid frame of a task (multi-task
batches, rare classes). Every loss then returns an exact zero that is still
connected to the graph (`.backward()` works and gives zero gradients), so one
empty batch never poisons the weights. The computations are branch-free
(`torch.where`, clamped counts) and run in float32, also under bf16 autocast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F

from pipeline_lib.data.labels import CLASS_INVALID, EXPR_NAMES, TASKS, VA_INVALID

__all__ = ["au_loss", "ccc_loss", "class_weights", "expr_loss", "positive_weights", "task_loss", "va_loss"]

CCC_EPS: Final[float] = 1e-8  # keeps the CCC of two constant sequences finite (it is 0 there)


def _entry_mask(mask: torch.Tensor | None, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """A bool mask of `shape` (..., C) from None (all), a per-frame mask (...,) or a per-entry one (..., C)."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    mask = mask.to(device=device, dtype=torch.bool)
    if mask.shape == shape[:-1]:
        return mask[..., None].expand(shape)
    if mask.shape == shape:
        return mask
    raise ValueError(f"mask {tuple(mask.shape)} fits neither frames {tuple(shape[:-1])} nor entries {tuple(shape)}")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(f"expected pred and target of one shape (..., C), got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")


# ---------------------------------------------------------------------------------------------- VA
def _va_valid(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, C) bool: entries the mask keeps and the label does not mark -5, rows flattened."""
    _check_pair(pred, target)
    valid = _entry_mask(mask, pred.shape, pred.device) & (target != VA_INVALID)
    return valid.reshape(-1, pred.shape[-1])


def ccc_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - CCC per dimension, averaged over the dimensions (V and A): () float32.

    pred, target: (B, T, C) or (N, C). CCC = 2 cov / (var_p + var_t + (mean_p
    - mean_t)^2) with population statistics over the valid frames of the whole
    batch (the official metric pools frames the same way). A dimension with
    fewer than 2 valid frames has no CCC and is left out of the mean; with none
    left the loss is a graph-connected 0.
    """
    valid = _va_valid(pred, target, mask)  # (N, C)
    p = pred.float().reshape(valid.shape)
    t = target.float().reshape(valid.shape)
    n = valid.sum(dim=0)  # (C,)
    count = n.clamp_min(1).float()
    mean_p = torch.where(valid, p, 0.0).sum(dim=0) / count  # (C,)
    mean_t = torch.where(valid, t, 0.0).sum(dim=0) / count
    dev_p = torch.where(valid, p - mean_p, 0.0)  # (N, C), 0 off the mask
    dev_t = torch.where(valid, t - mean_t, 0.0)
    var_p = dev_p.square().sum(dim=0) / count
    var_t = dev_t.square().sum(dim=0) / count
    cov = (dev_p * dev_t).sum(dim=0) / count
    ccc = 2.0 * cov / (var_p + var_t + (mean_p - mean_t).square() + CCC_EPS)  # (C,)
    enough = n >= 2
    return torch.where(enough, 1.0 - ccc, 0.0).sum() / enough.sum().clamp_min(1)


def va_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
            mse_weight: float = 0.0) -> torch.Tensor:
    """`ccc_loss` + mse_weight * MSE over the valid entries (pred, target (B, T, 2) with -5 not annotated)."""
    loss = ccc_loss(pred, target, mask)
    if mse_weight:
        valid = _va_valid(pred, target, mask)
        error = (pred.float() - target.float()).reshape(valid.shape).square()
        loss = loss + mse_weight * torch.where(valid, error, 0.0).sum() / valid.sum().clamp_min(1)
    return loss


# ---------------------------------------------------------------------------------------------- EXPR
def class_weights(labels: np.ndarray, n_classes: int = len(EXPR_NAMES)) -> torch.Tensor:
    """Inverse-frequency class weights (n_classes,) float32 from training labels (any shape, -1 ignored).

    w_c = (1 / count_c), then rescaled so the n_classes weights average 1.
    A class absent from `labels` gets the largest present weight (before the
    rescaling): if its frames turn up later (pseudo-labels, another split) they
    count as the rarest class instead of being silently ignored; while absent it
    changes nothing. No valid label at all gives all ones.
    """
    values = np.asarray(labels).reshape(-1)
    values = values[values != CLASS_INVALID]
    if values.size and (values.min() < 0 or values.max() >= n_classes or np.any(values != np.round(values))):
        raise ValueError(f"class labels must be integers in [0, {n_classes}) or {CLASS_INVALID}, got values in "
                         f"[{values.min()}, {values.max()}]")
    counts = np.bincount(values.astype(np.int64), minlength=n_classes).astype(np.float64)
    if not counts.any():
        return torch.ones(n_classes, dtype=torch.float32)
    inverse = np.divide(1.0, counts, out=np.zeros(n_classes), where=counts > 0)
    inverse[counts == 0] = inverse.max()
    return torch.from_numpy(inverse / inverse.mean()).float()


def expr_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted cross-entropy over the valid frames: () float32.

    logits (B, T, K) or (N, K); target (B, T) / (N,) class ids, -1 = not
    annotated (a float target, as in the (T, 15) label array, is cast to long);
    mask (B, T) / (N,). The mean is torch's weighted one: sum_i w_{y_i} l_i /
    sum_i w_{y_i} over the valid frames, i.e. `F.cross_entropy(...,
    ignore_index=-1)` on them, but a graph-connected 0 when none is left.
    """
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match target {tuple(target.shape)} (want (..., K))")
    frames = _entry_mask(mask, target.shape + (1,), logits.device)[..., 0]  # (B, T)
    target = target.to(logits.device).long()
    valid = (frames & (target != CLASS_INVALID)).reshape(-1)  # (N,)
    classes = torch.where(valid, target.reshape(-1), CLASS_INVALID)  # (N,)
    if weights is not None:
        weights = weights.to(device=logits.device, dtype=torch.float32)
    per_frame = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), classes, weight=weights,
                                ignore_index=CLASS_INVALID, reduction="none")  # (N,) w_y * l, 0 where ignored
    frame_weight = valid.float() if weights is None else torch.where(valid, weights[classes.clamp_min(0)], 0.0)
    return per_frame.sum() / frame_weight.sum().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------- AU
def positive_weights(labels: np.ndarray | torch.Tensor, low: float = 1.0, high: float = 50.0) -> torch.Tensor:
    """BCE pos_weight (C,) float32 = negatives / positives per AU over valid entries (labels (..., C), -1 skipped).

    Clamped to [low, high] = [1, 50] by default: 1 because a frequent AU
    (more positives than negatives) is never down-weighted, 50 because a very
    rare AU would otherwise swamp the loss with a few frames' gradients. An AU
    with negatives but no positive gets `high`; one with no valid entry gets 1.
    """
    values = np.asarray(labels, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(f"expected AU labels (N, C), got shape {values.shape}")
    values = values.reshape(-1, values.shape[-1])
    valid = values != CLASS_INVALID
    if np.any((values[valid] != 0) & (values[valid] != 1)):
        raise ValueError(f"AU labels must be 0, 1 or {CLASS_INVALID}")
    positives = ((values == 1) & valid).sum(axis=0).astype(np.float64)
    negatives = ((values == 0) & valid).sum(axis=0).astype(np.float64)
    ratio = np.divide(negatives, positives, out=np.full_like(negatives, high), where=positives > 0)
    ratio[positives + negatives == 0] = 1.0
    return torch.from_numpy(np.clip(ratio, low, high)).float()


def au_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
            pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE-with-logits averaged over the valid (frame, AU) entries: () float32.

    logits, target (B, T, C) or (N, C), target 0/1 with -1 = not annotated;
    mask per frame or per entry; pos_weight (C,) from `positive_weights`.
    """
    _check_pair(logits, target)
    valid = _entry_mask(mask, logits.shape, logits.device) & (target != CLASS_INVALID)  # (..., C)
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
    per_entry = F.binary_cross_entropy_with_logits(logits.float(), torch.where(valid, target.float(), 0.0),
                                                   pos_weight=pos_weight, reduction="none")
    return torch.where(valid, per_entry, 0.0).sum() / valid.sum().clamp_min(1)


def task_loss(task: str, labels: np.ndarray, mse_weight: float = 0.0
              ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """(outputs (..., O) of the task's head, labels (..., L), label_mask (..., L)) -> loss.

    EXPR class weights and AU positive weights come from `labels` (N, L), the
    training labels with -1 where not annotated (VA needs none).
    """
    spec = TASKS[task]
    invalid = spec.invalid
    if spec.kind == "regression":
        return lambda out, y, m: va_loss(out, torch.where(m, y, invalid), m, mse_weight)
    if spec.kind == "multiclass":
        weights = class_weights(labels[:, 0], spec.outputs)
        return lambda out, y, m: expr_loss(out, torch.where(m[..., 0], y[..., 0], invalid).long(), m[..., 0], weights)
    pos = positive_weights(labels)
    return lambda out, y, m: au_loss(out, torch.where(m, y, invalid), m, pos)
