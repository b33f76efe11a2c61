"""Joint training of the fusion model on all three tasks, with optional EXPR pseudo-labels.

Losses are the per-task masked losses of the temporal stage (1 - CCC, class-
weighted cross-entropy, positive-weighted BCE), summed with
`fusion.loss_weights`; a frame labelled for some tasks only teaches those.
Pseudo-labelled frames add a cross-entropy term of weight `pseudo.weight`,
on logit-adjusted logits when `pseudo.debias` is on. The epoch is chosen by
the MTL score on validation, predicted with overlapping sliding windows; a
residual model (`fusion.residual`) is also scored before its first epoch,
when it predicts exactly what the task models did (best epoch 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader, Subset, WeightedRandomSampler

from pipeline_lib.config import FusionSettings
from pipeline_lib.data.labels import COL_AU, COL_EXPR, EXPR_NAMES
from pipeline_lib.features.normalize import feature_stats
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.metrics import mtl_from_predictions
from pipeline_lib.models.fusion import PREDICTION_SLICES, FusionModel
from pipeline_lib.models.temporal import kwargs_for_encoder
from pipeline_lib.train.fusion_data import COL_PSEUDO
from pipeline_lib.train.loop import fit
from pipeline_lib.train.losses import au_loss, class_weights, expr_loss, positive_weights, va_loss
from pipeline_lib.train.pseudo import uniform_window_weights
from pipeline_lib.train.sliding import sliding_predict

__all__ = ["FusionLoss", "TrainedFusion", "build_fusion_model", "expr_class_f1", "predict_fusion", "score_fusion",
           "train_fusion"]

_VA = [0, 1]


class FusionLoss:
    """Weighted sum of the masked task losses (+ the pseudo-label term); weights come from training labels."""

    def __init__(self, train: Sequence[VideoArrays], settings: FusionSettings, prior: np.ndarray | None = None,
                 pseudo_weight: float = 0.0) -> None:
        labels = np.concatenate([np.where(v.label_mask, v.labels, -1.0) for v in train])  # (N, 16)
        self.class_weights = class_weights(labels[:, COL_EXPR])
        self.pos_weights = positive_weights(labels[:, COL_AU])
        self.weights = settings.loss_weights
        self.pseudo_weight = pseudo_weight
        self.log_prior = None if prior is None else torch.log(torch.as_tensor(prior, dtype=torch.float32))

    def __call__(self, outputs: dict[str, torch.Tensor], y: torch.Tensor, m: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """outputs: task -> (B, T, O); y, m: (B, T, 16) labels and label mask (False on padding / no face)."""
        parts = {
            "va": va_loss(outputs["va"], torch.where(m[..., _VA], y[..., _VA], -5.0), m[..., _VA]),
            "expr": expr_loss(outputs["expr"], torch.where(m[..., COL_EXPR], y[..., COL_EXPR], -1).long(),
                              m[..., COL_EXPR], self.class_weights),
            "au": au_loss(outputs["au"], torch.where(m[..., COL_AU], y[..., COL_AU], -1.0), m[..., COL_AU],
                          self.pos_weights),
        }
        loss = self.weights.va * parts["va"] + self.weights.expr * parts["expr"] + self.weights.au * parts["au"]
        if self.pseudo_weight > 0:
            pseudo = m[..., COL_PSEUDO] & ~m[..., COL_EXPR]  # (B, T) a real label always wins
            logits = outputs["expr"]
            if self.log_prior is not None:  # logit adjustment: learn the prior-free part in the raw logits
                logits = logits + self.log_prior.to(logits.device)
            parts["pseudo"] = expr_loss(logits, torch.where(pseudo, y[..., COL_PSEUDO], -1).long(), pseudo)
            loss = loss + self.weights.expr * self.pseudo_weight * parts["pseudo"]
        return loss, {k: float(v.detach()) for k, v in parts.items()}


def build_fusion_model(widths: Sequence[int], settings: FusionSettings, window: int) -> FusionModel:
    kwargs = kwargs_for_encoder(settings.encoder, layers=settings.layers, heads=settings.heads,
                                dropout=settings.dropout, window=window)
    return FusionModel(widths, settings.fusion, settings.dependency, settings.hidden, settings.encoder, kwargs,
                       heads=settings.heads, dropout=settings.dropout, residual=settings.residual)


def predict_fusion(model: FusionModel, videos: Sequence[VideoArrays], window: int, device: str = "cpu",
                   keep: Callable[[np.ndarray], np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
    """Per video {va (T, 2), expr (T, 8) probabilities, au (T, 12) probabilities, hidden (T, H) EXPR stream};
    `keep` (e.g. a `mapped.Spill`) takes each video's arrays as they are made."""
    model.eval()

    def forward(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, streams = model(x, mask)
        joined = torch.cat([outputs["va"], outputs["expr"].softmax(-1), outputs["au"].sigmoid()], dim=-1)
        return joined, streams["expr"]  # (B, W, 22), (B, W, H)

    out = []
    for video in videos:
        joined, hidden = sliding_predict(forward, video.features, video.valid, window, device=device)
        rows = {**{t: joined[:, s] for t, s in PREDICTION_SLICES.items()}, "hidden": hidden}
        out.append({k: keep(v) for k, v in rows.items()} if keep else rows)
    return out


def score_fusion(predicted: Sequence[dict[str, np.ndarray]], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """Every MTL component on the annotated frames of `videos` (AU at the 0.5 threshold) and their sum."""
    labels = np.concatenate([v.labels[:, :15] for v in videos])  # (N, 15) with the official invalid markers
    va = np.concatenate([p["va"] for p in predicted])
    expr = np.concatenate([p["expr"] for p in predicted]).argmax(1)
    au = (np.concatenate([p["au"] for p in predicted]) >= 0.5).astype(np.int64)
    return {k: round(float(v), 4) for k, v in mtl_from_predictions(va, expr, au, labels).items()}


def expr_class_f1(predicted: Sequence[dict[str, np.ndarray]], videos: Sequence[VideoArrays]) -> dict[str, float]:
    """Per-class EXPR F1 on the EXPR-annotated frames of `videos` (sklearn, classes with no frame score 0)."""
    truth = np.concatenate([v.labels[:, COL_EXPR] for v in videos]).astype(np.int64)
    pred = np.concatenate([p["expr"] for p in predicted]).argmax(1)
    keep = truth >= 0
    scores = f1_score(truth[keep], pred[keep], labels=list(range(len(EXPR_NAMES))), average=None, zero_division=0)
    return {name: round(float(s), 4) for name, s in zip(EXPR_NAMES, scores, strict=True)}


@dataclass
class TrainedFusion:
    model: FusionModel
    best_epoch: int
    best: dict[str, float]
    train_loss: list[float] = field(default_factory=list)
    val_mtl: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _sampler(data: WindowDataset, indices: list[int], seed: int) -> WeightedRandomSampler:
    """Class-uniform draws of the kept windows, by their (real or pseudo) EXPR labels."""
    classes = []
    for i in indices:
        k, start = int(data.video_ids[i]), int(data.starts[i])
        video = data.videos[k]
        rows = slice(start, start + data.window)
        real = np.where(video.label_mask[rows, COL_EXPR], video.labels[rows, COL_EXPR], -1)
        pseudo = np.where(video.label_mask[rows, COL_PSEUDO], video.labels[rows, COL_PSEUDO], -1)
        classes.append(np.where(real >= 0, real, pseudo)[video.valid[rows]])
    weights = uniform_window_weights(classes)
    # torch annotates weights as Sequence[float]; it takes a tensor as well (torch.as_tensor)
    return WeightedRandomSampler(torch.from_numpy(weights),  # type: ignore[arg-type]
                                 num_samples=len(indices), replacement=True,
                                 generator=torch.Generator().manual_seed(seed))


def train_fusion(train: Sequence[VideoArrays], val: Sequence[VideoArrays], widths: Sequence[int],
                 settings: FusionSettings, window: int, *, prior: np.ndarray | None = None,
                 pseudo_weight: float = 0.0, uniform_sampling: bool = False, seed: int = 0,
                 on_epoch: Callable[[int, float, float], None] | None = None) -> TrainedFusion:
    """Train the fusion model; on_epoch(epoch, train_loss, val_mtl). `prior` switches on logit adjustment."""
    if not val:
        raise ValueError("fusion: no validation video to select the epoch on")
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    data = WindowDataset(train, window, max(1, window // 2))
    indices = data.labelled()
    subset = Subset(data, indices)
    if uniform_sampling:
        loader = DataLoader(subset, batch_size=settings.batch_size, sampler=_sampler(data, indices, seed))
    else:
        loader = DataLoader(subset, batch_size=settings.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
    model = build_fusion_model(widths, settings, window)
    model.set_stats(*feature_stats(train))
    model.to(settings.device)
    loss_fn = FusionLoss(train, settings, prior, pseudo_weight)
    device = settings.device

    def batch_loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs, _ = model(batch["features"].to(device), batch["valid"].to(device))
        return loss_fn(outputs, batch["labels"].to(device), batch["label_mask"].to(device))[0]

    fitted = fit(model, loader, batch_loss, lambda: score_fusion(predict_fusion(model, val, window, device), val),
                 "mtl", epochs=settings.epochs, lr=settings.lr, weight_decay=settings.weight_decay,
                 on_epoch=on_epoch, validate_first=settings.residual, patience=settings.patience, name="fusion")
    return TrainedFusion(model, fitted.best_epoch, fitted.best, fitted.train_loss, fitted.val_metric,
                         fitted.seconds)
