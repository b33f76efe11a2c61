"""Per-frame task heads on a temporal encoder's hidden states (..., H) -> (..., outputs).

Why separate from the encoders: every encoder of the registry (and the
frame-wise baseline) shares one head per task, so an ablation changes the
temporal mixing and nothing else. Heads return raw scores except VA, whose
tanh keeps predictions in the label range [-1, 1]; the losses in
`pipeline_lib.train.losses` expect exactly these outputs (logits for EXPR and
AU, with softmax / sigmoid inside the loss for numerical stability).
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

from pipeline_lib.data.labels import BASIC_KEYS, TASKS, Task, TaskKind, task_spec

__all__ = ["AUHead", "ExprHead", "TaskHead", "VAHead", "build_head"]


class TaskHead(nn.Module):
    """Dropout -> Linear(in_dim, outputs), applied to every frame."""

    outputs: int  # the task's width unless the constructor is given another

    def __init__(self, in_dim: int, dropout: float = 0.0, outputs: int | None = None) -> None:
        super().__init__()
        self.in_dim = in_dim
        if outputs is not None:
            self.outputs = outputs
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, self.outputs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden (..., H) -> (..., outputs)."""
        if hidden.shape[-1] != self.in_dim:
            raise ValueError(f"expected hidden width {self.in_dim}, got {tuple(hidden.shape)}")
        return self.linear(self.dropout(hidden))


class VAHead(TaskHead):
    """Valence and arousal in [-1, 1]: Linear -> tanh (the regression kind)."""

    outputs = TASKS["va"].outputs

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(super().forward(hidden))  # (..., 2)


class ExprHead(TaskHead):
    """Logits of the 8 expressions (labels.EXPR_NAMES order): the multiclass kind."""

    outputs = TASKS["expr"].outputs


class AUHead(TaskHead):
    """Logits of the 12 action units (labels.AU_NAMES order), one independent sigmoid each: the multilabel kind."""

    outputs = TASKS["au"].outputs


_HEADS: Final[dict[TaskKind, type[TaskHead]]] = {"regression": VAHead, "multiclass": ExprHead, "multilabel": AUHead}


def build_head(task: str | Task, in_dim: int, dropout: float = 0.0) -> TaskHead:
    """The head of `task` ("va", "expr", "au", any case, or a labels.Task) on hidden width `in_dim`.

    CE has none here: its head belongs to the compound model, which the curriculum trains."""
    spec = task_spec(task)
    if not spec.columns:
        raise ValueError(f"no head for task {task!r}; known: {', '.join(BASIC_KEYS)}")
    return _HEADS[spec.kind](in_dim, dropout, spec.outputs)
