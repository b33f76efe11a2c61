"""Multi-task fusion over several per-frame sources, with task-dependency heads: (B, T, D) -> VA, EXPR, AU.

The published recipes (DESIGN.md section 1, step 5) feed a joint model with
the frame features plus the pre-head features of each individually trained
task model, then let tasks inform each other. Two registries keep the parts
interchangeable, timm-style:

- FUSIONS: how the sources become one stream per task. `concat` joins them
  and runs one shared temporal encoder (then a small projection per task);
  `attention` lets one learned query per task attend over the sources of each
  frame, then runs the shared temporal encoder on every task's stream.
- DEPENDENCIES: how the heads read the streams. `independent` gives each task
  its own head; `feedback` (the ABAW4 winner's dependency framework) feeds the
  valence and AU *predictions* into the arousal and expression heads;
  `feature_feedback` feeds them the valence and AU *streams* instead.

Every source arrives concatenated in one (B, T, D) tensor; `widths` says how
to split it, so the window dataset and sliding inference stay unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import torch
from torch import nn

from pipeline_lib.artifacts.checkpoints import from_spec, read_checkpoint, rebuild
from pipeline_lib.data.labels import BASIC_KEYS, TASKS
from pipeline_lib.models.registry import Registry
from pipeline_lib.models.temporal import TemporalModel

__all__ = ["DEPENDENCIES", "FUSIONS", "DependentHeads", "FusionModel", "load_fusion_model", "PREDICTION_SLICES",
           "PREDICTION_WIDTH"]

FusionBuilder = Callable[..., nn.Module]
FUSIONS: Registry[FusionBuilder] = Registry("fusion")
DEPENDENCIES: Registry[Callable[..., nn.Module]] = Registry("dependency")


def _split(x: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    if x.shape[-1] != sum(widths):
        raise ValueError(f"expected {sum(widths)} input features ({list(widths)}), got {tuple(x.shape)}")
    return list(torch.split(x, list(widths), dim=-1))


@FUSIONS.register("concat")
class ConcatFusion(nn.Module):
    """Concatenate the sources, one shared temporal encoder, then a per-task projection."""

    def __init__(self, widths: Sequence[int], hidden: int, encoder: str, encoder_kwargs: dict[str, Any],
                 heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.temporal = TemporalModel(sum(widths), encoder, hidden, encoder_kwargs=encoder_kwargs)
        self.project = nn.ModuleDict({t: nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout))
                                      for t in BASIC_KEYS})

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.temporal(x, mask)  # (B, T, H)
        return {t: shared + self.project[t](shared) for t in BASIC_KEYS}  # task -> (B, T, H)


@FUSIONS.register("attention")
class AttentionFusion(nn.Module):
    """Per frame, one learned query per task attends over the projected sources; then the shared encoder."""

    def __init__(self, widths: Sequence[int], hidden: int, encoder: str, encoder_kwargs: dict[str, Any],
                 heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.widths = list(widths)
        self.inputs = nn.ModuleList(nn.Sequential(nn.LayerNorm(w), nn.Linear(w, hidden)) for w in widths)
        self.source_embed = nn.Parameter(torch.zeros(len(widths), hidden))  # which source a token is
        self.queries = nn.Parameter(torch.randn(len(BASIC_KEYS), hidden) * 0.02)  # (K, H) one per task
        self.attend = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.temporal = TemporalModel(hidden, encoder, hidden, encoder_kwargs=encoder_kwargs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, _ = x.shape
        tokens = torch.stack([proj(part) for proj, part in zip(self.inputs, _split(x, self.widths), strict=True)],
                             dim=2) + self.source_embed  # (B, T, S, H)
        tokens = tokens.reshape(b * t, len(self.widths), -1)  # (B*T, S, H): attention within each frame
        queries = self.queries.expand(b * t, -1, -1)  # (B*T, K, H)
        fused, _ = self.attend(queries, tokens, tokens, need_weights=False)  # (B*T, K, H)
        fused = self.norm(fused + queries).reshape(b, t, len(BASIC_KEYS), -1).permute(0, 2, 1, 3)  # (B, K, T, H)
        streams = self.temporal(fused.reshape(b * len(BASIC_KEYS), t, -1),
                                mask.repeat_interleave(len(BASIC_KEYS), dim=0))  # (B*K, T, H)
        streams = streams.reshape(b, len(BASIC_KEYS), t, -1)
        return {task: streams[:, k] for k, task in enumerate(BASIC_KEYS)}  # task -> (B, T, H)


def _linear(in_dim: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out))


@DEPENDENCIES.register("independent")
class IndependentHeads(nn.Module):
    """Each task's head reads only its own stream."""

    def __init__(self, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({t: _linear(hidden, TASKS[t].outputs, dropout) for t in BASIC_KEYS})

    def forward(self, streams: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {t: self.heads[t](streams[t]) for t in BASIC_KEYS}
        out["va"] = torch.tanh(out["va"])  # (B, T, 2)
        return out


class DependentHeads(nn.Module):
    """Valence and AU first, from their own streams; arousal and expression then also read what `feeds` says.

    feeds="predictions": the valence value and the 12 AU probabilities (`feedback`);
    feeds="features": the valence and AU streams themselves (`feature_feedback`).
    """

    def __init__(self, hidden: int, feeds: Literal["predictions", "features"], dropout: float = 0.0) -> None:
        super().__init__()
        self.feeds = feeds
        extra = 1 + TASKS["au"].outputs if feeds == "predictions" else 2 * hidden
        self.valence = _linear(hidden, 1, dropout)
        self.au = _linear(hidden, TASKS["au"].outputs, dropout)
        self.arousal = _linear(hidden + extra, 1, dropout)
        self.expr = _linear(hidden + extra, TASKS["expr"].outputs, dropout)

    def forward(self, streams: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        valence = torch.tanh(self.valence(streams["va"]))  # (B, T, 1)
        au = self.au(streams["au"])  # (B, T, 12) logits
        if self.feeds == "predictions":
            extra = torch.cat([valence, au.sigmoid()], dim=-1)  # (B, T, 13)
        else:
            extra = torch.cat([streams["va"], streams["au"]], dim=-1)  # (B, T, 2H)
        arousal = torch.tanh(self.arousal(torch.cat([streams["va"], extra], dim=-1)))  # (B, T, 1)
        expr = self.expr(torch.cat([streams["expr"], extra], dim=-1))  # (B, T, 8)
        return {"va": torch.cat([valence, arousal], dim=-1), "expr": expr, "au": au}


@DEPENDENCIES.register("feedback")
def feedback_heads(hidden: int, dropout: float = 0.0) -> DependentHeads:
    """Arousal and expression receive the valence prediction and the AU probabilities."""
    return DependentHeads(hidden, "predictions", dropout)


@DEPENDENCIES.register("feature_feedback")
def feature_feedback_heads(hidden: int, dropout: float = 0.0) -> DependentHeads:
    """Arousal and expression receive the valence and AU streams (hidden features, not predictions)."""
    return DependentHeads(hidden, "features", dropout)


PREDICTION_WIDTH: Final[int] = sum(TASKS[t].outputs for t in BASIC_KEYS)  # VA 2 + EXPR 8 + AU 12
# Where each task sits in a (.., 22) row of predictions (VA values, EXPR and AU probabilities): the layout of
# the residual model's `predictions` source and of what `predict_fusion` joins.
PREDICTION_SLICES: Final[dict[str, slice]] = {
    t: slice(sum(TASKS[u].outputs for u in BASIC_KEYS[:k]), sum(TASKS[u].outputs for u in BASIC_KEYS[:k + 1]))
    for k, t in enumerate(BASIC_KEYS)}
_EPS: Final[float] = 1e-4


def _from_predictions(base: torch.Tensor) -> dict[str, torch.Tensor]:
    """(B, T, 22) task-model predictions (VA values, EXPR and AU probabilities) -> the heads' output space:
    VA values, EXPR log-probabilities (logits up to a constant), AU logits."""
    va, expr, au = (base[..., PREDICTION_SLICES[t]].float() for t in BASIC_KEYS)
    return {"va": va.clamp(-1.0, 1.0), "expr": expr.clamp_min(_EPS).log(),
            "au": torch.logit(au.clamp(_EPS, 1 - _EPS))}


class FusionModel(nn.Module):
    """Standardise the concatenated sources, fuse them into task streams, predict every task.

    forward(features (B, T, D), mask (B, T)) -> ({task: raw outputs (B, T, O)}, {task: stream (B, T, H)}):
    VA in [-1, 1], EXPR and AU logits. `spec` rebuilds the architecture from a checkpoint.

    With `residual`, the last source is the individual task models' predictions (PREDICTION_WIDTH columns)
    and the heads learn corrections to them: EXPR and AU logits are added to the task models' log-
    probabilities / logits, VA to their values (clipped to [-1, 1]). The heads' output layers start at zero,
    so before training the model predicts exactly what the task models did, and every epoch of joint training
    has to earn its keep on the validation MTL score against that starting point.
    """

    mean: torch.Tensor  # registered buffers (D,)
    std: torch.Tensor

    def __init__(self, widths: Sequence[int], fusion: str = "concat", dependency: str = "independent",
                 hidden: int = 128, encoder: str = "transformer", encoder_kwargs: dict[str, Any] | None = None,
                 heads: int = 4, dropout: float = 0.0, residual: bool = False) -> None:
        super().__init__()
        if residual and (not widths or widths[-1] != PREDICTION_WIDTH):
            raise ValueError(f"a residual fusion model needs the task-model predictions ({PREDICTION_WIDTH} "
                             f"columns) as its last source, got widths {list(widths)}")
        self.spec: dict[str, Any] = {"widths": list(widths), "fusion": fusion, "dependency": dependency,
                                     "hidden": hidden, "encoder": encoder, "encoder_kwargs": dict(encoder_kwargs or {}),
                                     "heads": heads, "dropout": dropout, "residual": residual}
        self.residual = residual
        self.fuse = FUSIONS.lookup(fusion)(widths, hidden, encoder, dict(encoder_kwargs or {}), heads=heads,
                                           dropout=dropout)
        self.heads = DEPENDENCIES.lookup(dependency)(hidden, dropout=dropout)
        if residual:  # every Linear of the dependency heads is an output layer: zero corrections to start from
            for layer in self.heads.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
        self.register_buffer("mean", torch.zeros(sum(widths)))  # (D,) training statistics, saved with the weights
        self.register_buffer("std", torch.ones(sum(widths)))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, features: torch.Tensor, mask: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        x = (features - self.mean) / self.std  # (B, T, D)
        streams = self.fuse(x, mask)
        outputs = self.heads(streams)
        if self.residual:
            base = _from_predictions(features[..., -PREDICTION_WIDTH:])  # the raw predictions, not standardised
            outputs = {"va": (base["va"] + outputs["va"]).clamp(-1.0, 1.0), "expr": base["expr"] + outputs["expr"],
                       "au": base["au"] + outputs["au"]}
        return outputs, streams


def load_fusion_model(path: Path) -> tuple[FusionModel, dict[str, Any]]:
    """The trained fusion model (eval mode) and its metadata; foreign or corrupt files raise CheckpointError."""
    checkpoint = read_checkpoint(path, "missing: run `abaw fusion` first")
    return rebuild(path, checkpoint, "fusion", lambda c: from_spec(FusionModel, c))
