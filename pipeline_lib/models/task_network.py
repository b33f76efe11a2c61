"""One task's network: feature standardisation, a temporal model and the task's head, and its checkpoint loader.

Temporal models, fine-tuning and `abaw predict` all build, activate and load it
the same way, so it lives with the models rather than with one training loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline_lib.artifacts.checkpoints import read_checkpoint, rebuild
from pipeline_lib.config import ResolvedTemporal
from pipeline_lib.data.labels import TASKS
from pipeline_lib.models.heads import build_head
from pipeline_lib.models.temporal import TemporalModel, kwargs_for_encoder

__all__ = ["TaskNetwork", "activate", "encoder_kwargs", "load_task_network"]


class TaskNetwork(nn.Module):
    """Feature standardisation + temporal model + task head: features (B, T, D) -> (raw outputs, hidden)."""

    mean: torch.Tensor  # registered buffers (D,)
    std: torch.Tensor

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
    kind = TASKS[task].kind
    if kind == "multiclass":
        return outputs.softmax(-1)
    if kind == "multilabel":
        return outputs.sigmoid()
    return outputs


def encoder_kwargs(settings: ResolvedTemporal) -> dict[str, Any]:
    """The registered encoder's own settings, picked from the flat temporal section."""
    s = settings
    return kwargs_for_encoder(s.encoder, layers=s.layers, heads=s.heads, dropout=s.dropout, window=s.window,
                              positions=s.positions, bidirectional=s.bidirectional, kernel=s.kernel)


def load_task_network(path: Path) -> tuple[TaskNetwork, dict[str, Any]]:
    """A trained task network (eval mode) and its metadata; foreign or corrupt files raise CheckpointError."""
    checkpoint = read_checkpoint(path, "missing: run `abaw temporal` for this task first")

    def build(c: dict[str, Any]) -> TaskNetwork:
        state = c["model"]
        network = TaskNetwork(c["task"], TemporalModel(**c["spec"]), state["mean"], state["std"], c["dropout"])
        network.load_state_dict(state)
        return network

    return rebuild(path, checkpoint, "temporal", build)
