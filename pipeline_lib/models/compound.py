"""Compound-expression model: a temporal encoder with a basic-expression head and a compound head.

The published recipe (DESIGN.md section 1, step 6) first learns the 8 basic
expressions, then shifts to the 7 compound ones. Each compound class is the
blend of two basic ones (`labels.CE_PARTS`), so the sum of the two basic
probabilities is already a zero-shot compound score (`zero_shot_scores`). The
model keeps that score as a prior: its compound logits are a learned part plus
`prior_scale * log(normalised zero-shot score of its own basic head)`. Whatever
the basic stages taught carries over to the compound classes from the first
step, and the compound stages learn only the correction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from pipeline_lib.artifacts.checkpoints import from_spec, read_checkpoint, rebuild
from pipeline_lib.data.labels import CE_NAMES, CE_PARTS, EXPR_NAMES
from pipeline_lib.models.heads import ExprHead
from pipeline_lib.models.temporal import TemporalModel

__all__ = ["COMPOUND_MATRIX", "CompoundModel", "load_compound_model", "zero_shot_probabilities", "zero_shot_scores"]


def _compound_matrix() -> torch.Tensor:
    matrix = torch.zeros(len(CE_NAMES), len(EXPR_NAMES))  # (7, 8)
    for row, name in enumerate(CE_NAMES):
        for part in CE_PARTS[name]:
            matrix[row, EXPR_NAMES.index(part)] = 1.0
    return matrix


COMPOUND_MATRIX: Final[torch.Tensor] = _compound_matrix()  # (7, 8): 1 where a basic class is a constituent


def zero_shot_scores(expr_probs: torch.Tensor) -> torch.Tensor:
    """(..., 8) basic-expression probabilities -> (..., 7) compound scores p(first) + p(second), in [0, 2]."""
    if expr_probs.shape[-1] != len(EXPR_NAMES):
        raise ValueError(f"expected (..., {len(EXPR_NAMES)}) expression probabilities, got {tuple(expr_probs.shape)}")
    return expr_probs @ COMPOUND_MATRIX.to(expr_probs.device, expr_probs.dtype).T


def zero_shot_probabilities(scores: np.ndarray) -> np.ndarray:
    """(T, 7) zero-shot scores scaled to sum to 1 per frame: what the compound stage predicts when it has no
    CE data to train on."""
    return scores / np.maximum(scores.sum(1, keepdims=True), 1e-6)


class CompoundModel(nn.Module):
    """Standardised features (B, T, D) -> (basic logits (B, T, 8), compound logits (B, T, 7), hidden (B, T, H)).

    `spec` holds the constructor's arguments as plain data, so `CompoundModel(**spec)` rebuilds it.
    """

    mean: torch.Tensor  # registered buffers (D,)
    std: torch.Tensor

    def __init__(self, in_dim: int, hidden: int = 64, encoder: str = "transformer",
                 encoder_kwargs: dict[str, Any] | None = None, prior: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {"in_dim": in_dim, "hidden": hidden, "encoder": encoder,
                                     "encoder_kwargs": dict(encoder_kwargs or {}), "prior": prior,
                                     "dropout": dropout}
        self.temporal = TemporalModel(in_dim, encoder, hidden, encoder_kwargs=encoder_kwargs)
        self.basic = ExprHead(hidden, dropout)
        self.compound = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, len(CE_NAMES)))
        # Starts at 1: before any compound step the model predicts exactly its zero-shot score's ranking.
        self.prior_scale = nn.Parameter(torch.ones(())) if prior else None
        self.register_buffer("mean", torch.zeros(in_dim))  # (D,)
        self.register_buffer("std", torch.ones(in_dim))  # (D,)

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Training-feature statistics, kept as buffers so a checkpoint carries them."""
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = self.temporal((features - self.mean) / self.std, mask)  # (B, T, H)
        basic = self.basic(hidden)  # (B, T, 8)
        compound = self.compound(hidden)  # (B, T, 7)
        if self.prior_scale is not None:
            score = zero_shot_scores(basic.softmax(-1))  # (B, T, 7), sums to 2 over the constituents' mass
            prior = torch.log(score / score.sum(-1, keepdim=True).clamp_min(1e-6) + 1e-6)
            compound = compound + self.prior_scale * prior
        return basic, compound, hidden


def load_compound_model(path: Path) -> tuple[CompoundModel | None, dict[str, Any]]:
    """The trained compound model (eval mode; None when the stage had no CE data and fell back to zero-shot
    scores) and its metadata; foreign or corrupt files raise CheckpointError."""
    checkpoint = read_checkpoint(path, "missing: run `abaw compound` first")
    if checkpoint.get("zero_shot_only") is True:
        return None, dict(checkpoint.get("meta", {}))
    return rebuild(path, checkpoint, "compound", lambda c: from_spec(CompoundModel, c))
