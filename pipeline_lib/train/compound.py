"""Train the compound model under a curriculum (or directly), selecting the epoch by CE macro F1.

Each epoch draws the same number of windows (the count of labelled compound
training windows, or of single-expression windows when there are none); the
schedule says which share of them comes from CE-labelled videos, which is
synthetic (two single-expression windows mixed, train/synthetic.py) and which
comes from single-expression (EXPR) videos. Single-expression windows teach the
basic head, compound windows the compound head (through its zero-shot prior,
also the basic head). Losses are class-weighted cross-entropy over annotated
face frames, as in the temporal stage. Without a CE-labelled validation video
the last epoch is kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch.utils.data import ConcatDataset, Dataset

from pipeline_lib.config import CompoundSettings
from pipeline_lib.data.labels import CE_NAMES
from pipeline_lib.features.normalize import feature_stats
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.metrics import ce_f1
from pipeline_lib.models.compound import CompoundModel, zero_shot_scores
from pipeline_lib.models.temporal import kwargs_for_encoder
from pipeline_lib.train.compound_data import COL_BASIC, COL_CE
from pipeline_lib.train.curriculum import CurriculumBatches, Stage, epoch_shares
from pipeline_lib.train.loop import fit
from pipeline_lib.train.losses import class_weights, expr_loss
from pipeline_lib.train.sliding import sliding_predict
from pipeline_lib.train.synthetic import SyntheticCompound

__all__ = ["TrainedCompound", "ce_class_f1", "constituent_loss", "predict_compound", "score_compound", "train_compound"]


def predict_compound(model: CompoundModel, videos: Sequence[VideoArrays], window: int, device: str = "cpu",
                     keep: Callable[[np.ndarray], np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
    """Per video {ce (T, 7) compound probabilities, basic (T, 8) basic-expression probabilities}; `keep` (e.g. a
    `mapped.Spill`) takes each video's arrays as they are made."""
    model.eval()

    def forward(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        basic, compound, hidden = model(x, mask)
        return torch.cat([compound.softmax(-1), basic.softmax(-1)], dim=-1), hidden  # (B, W, 15), (B, W, H)

    out = []
    for video in videos:
        joined, _ = sliding_predict(forward, video.features, video.valid, window, device=device)
        rows = {"ce": joined[:, :len(CE_NAMES)], "basic": joined[:, len(CE_NAMES):]}
        out.append({k: keep(v) for k, v in rows.items()} if keep else rows)
    return out


def _truth(videos: Sequence[VideoArrays]) -> np.ndarray:
    return np.concatenate([np.where(v.label_mask[:, COL_CE], v.labels[:, COL_CE], -1) for v in videos]
                          ).astype(np.int64)  # (N,)


def score_compound(probs: Sequence[np.ndarray], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """CE macro F1 of (T, 7) scores (argmax) on the CE-annotated frames of `videos`."""
    return {"f1_macro": round(ce_f1(np.concatenate(probs).argmax(1), _truth(videos)), 4)}


def ce_class_f1(probs: Sequence[np.ndarray], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """Per-class CE F1 on the annotated frames (sklearn, a class without frames scores 0)."""
    truth, pred = _truth(videos), np.concatenate(probs).argmax(1)
    keep = truth >= 0
    scores = f1_score(truth[keep], pred[keep], labels=list(range(len(CE_NAMES))), average=None, zero_division=0)
    return {name: round(float(s), 4) for name, s in zip(CE_NAMES, scores, strict=True)}


def constituent_loss(basic_logits: torch.Tensor, compound: torch.Tensor) -> torch.Tensor:
    """-log(p(first) + p(second)) of each compound-labelled frame's two constituents, averaged: () float32.

    basic_logits (B, T, 8); compound (B, T) class ids, -1 = not annotated. A graph-connected 0 when none is.
    """
    keep = compound >= 0  # (B, T)
    if not keep.any():
        return basic_logits.sum() * 0.0
    probs = basic_logits[keep].float().softmax(-1)  # (N, 8)
    score = zero_shot_scores(probs)[torch.arange(len(probs)), compound[keep]]  # (N,)
    return -torch.log(score.clamp_min(1e-6)).mean()


@dataclass
class TrainedCompound:
    model: CompoundModel
    best_epoch: int
    best: dict[str, float]  # empty without a validation video
    train_loss: list[float] = field(default_factory=list)
    val_f1: list[float] = field(default_factory=list)
    seconds: float = 0.0
    synthetic: dict[str, object] | None = None  # what the synthetic pool held (SyntheticCompound.summary)
    per_epoch: int = 0  # windows drawn per epoch


def _pools(data: WindowDataset) -> tuple[list[int], list[int]]:
    """Window indices with a labelled face frame for the basic (EXPR) and the compound (CE) column."""
    basic, compound = [], []
    for i, (k, s) in enumerate(zip(data.video_ids, data.starts, strict=True)):
        video = data.videos[int(k)]
        rows = video.label_mask[s:s + data.window] & video.valid[s:s + data.window, None]  # (W, 2)
        if rows[:, COL_BASIC].any():
            basic.append(i)
        if rows[:, COL_CE].any():
            compound.append(i)
    return basic, compound


def train_compound(basic_train: Sequence[VideoArrays], compound_train: Sequence[VideoArrays],
                   val: Sequence[VideoArrays], settings: CompoundSettings, window: int, stages: Sequence[Stage], *,
                   seed: int = 0, per_epoch: int | None = None,
                   on_epoch: Callable[[int, float, float], None] | None = None) -> TrainedCompound:
    """Train one model through `stages`; on_epoch(epoch, train_loss, val_f1).

    Each stage is one fine-tuning run (its own warm-up and cosine decay) starting from the previous stage's
    best epoch, as the published recipe fine-tunes stage after stage; the best epoch over all stages is kept
    (the last one when `val` is empty). `per_epoch` windows per epoch (default: the labelled compound training
    windows, or the single-expression ones when there are none); synthetic windows are drawn from
    `settings.synthetic` when a stage asks for them.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    names = {v.name for v in compound_train}
    videos = list(compound_train) + [v for v in basic_train if v.name not in names]
    if not videos:
        raise ValueError("compound: no training video (neither CE- nor EXPR-labelled)")
    data = WindowDataset(videos, window, max(1, window // 2))
    basic, compound = _pools(data)
    dataset: Dataset[dict[str, torch.Tensor]] = data
    synthetic_ids: list[int] = []
    summary = None
    if any(stage.synthetic > 0 for stage in stages):
        s = settings.synthetic
        mixed = SyntheticCompound(data, COL_BASIC, COL_CE, s.windows, s.mix, s.purity, s.min_frames, seed=seed)
        dataset = ConcatDataset([data, mixed])
        synthetic_ids, summary = list(range(len(data), len(data) + len(mixed))), mixed.summary()
        if not mixed and compound:  # no compound's two expressions both have pure windows: real ones stand in
            stages = [Stage(st.epochs, st.real + st.synthetic) for st in stages]
    per_epoch = per_epoch or max(1, len(compound) or len(basic))
    batches = CurriculumBatches(dataset, basic, compound, epoch_shares(stages), per_epoch=per_epoch,
                                batch_size=settings.batch_size, seed=seed, synthetic=synthetic_ids)
    in_dim = videos[0].features.shape[1]
    kwargs = kwargs_for_encoder(settings.encoder, layers=settings.layers, heads=settings.heads,
                                dropout=settings.dropout, window=window)
    model = CompoundModel(in_dim, settings.hidden, settings.encoder, kwargs, settings.prior, settings.dropout)
    model.set_stats(*feature_stats(videos))
    device = settings.device
    model.to(device)
    labels = np.concatenate([np.where(v.label_mask, v.labels, -1) for v in videos])  # (N, 2)
    # Synthetic windows are class-balanced by construction; without real compound labels the weights are ones.
    weights = {COL_BASIC: class_weights(labels[:, COL_BASIC]),
               COL_CE: class_weights(labels[:, COL_CE], n_classes=len(CE_NAMES))}

    def batch_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        basic_logits, compound_logits, _ = model(batch["features"].to(device), batch["valid"].to(device))
        y, m = batch["labels"].to(device), batch["label_mask"].to(device)  # (B, W, 2)
        loss_basic = expr_loss(basic_logits, torch.where(m[..., COL_BASIC], y[..., COL_BASIC], -1).long(),
                               m[..., COL_BASIC], weights[COL_BASIC])
        loss_compound = expr_loss(compound_logits, torch.where(m[..., COL_CE], y[..., COL_CE], -1).long(),
                                  m[..., COL_CE], weights[COL_CE])
        loss = settings.basic_weight * loss_basic + loss_compound
        if settings.constituent_weight > 0:  # a compound frame also says "one of these two basic expressions"
            target = torch.where(m[..., COL_CE], y[..., COL_CE], -1).long()  # (B, W)
            loss = loss + settings.constituent_weight * constituent_loss(basic_logits, target)
        return loss

    def validate() -> dict[str, float]:
        return score_compound([p["ce"] for p in predict_compound(model, val, window, device)], val)

    result = TrainedCompound(model, -1, {}, synthetic=summary, per_epoch=per_epoch)
    best_state: dict[str, torch.Tensor] | None = None
    offset = 0
    for stage in stages:
        def stage_epoch(e: int, loss: float, val: float, offset: int = offset) -> None:
            assert on_epoch is not None  # passed on only when there is one
            on_epoch(offset + e, loss, val)

        fitted = fit(model, batches, batch_loss, validate if val else None, "f1_macro", epochs=stage.epochs,
                     lr=settings.lr, weight_decay=settings.weight_decay, on_epoch=None if on_epoch is None else
                     stage_epoch, name=f"compound (curriculum stage {stages.index(stage) + 1} of {len(stages)})")
        result.train_loss += fitted.train_loss
        result.val_f1 += fitted.val_metric
        result.seconds += fitted.seconds
        if result.best_epoch < 0 or not val or fitted.best["f1_macro"] > result.best["f1_macro"]:
            result.best_epoch, result.best = offset + fitted.best_epoch, fitted.best if val else {}
            best_state = copy.deepcopy(model.state_dict())  # fit left the stage's best weights in the model
        offset += stage.epochs
    assert best_state is not None
    model.load_state_dict(best_state)
    return result
