"""Label vocabularies, invalid markers and the in-memory (T, 15) label layout.

Everything that names a class, an AU or a column lives here so readers, writers,
the demo generator and the metrics agree on one spelling and one order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

import numpy as np


class Task(str, Enum):
    """A per-video annotation task of the official layout."""

    VA = "VA"
    EXPR = "EXPR"
    AU = "AU"
    CE = "CE"


VA_NAMES: Final[tuple[str, ...]] = ("valence", "arousal")
EXPR_NAMES: Final[tuple[str, ...]] = (
    "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other",
)
AU_NAMES: Final[tuple[str, ...]] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26",
)
CE_NAMES: Final[tuple[str, ...]] = (
    "Fearfully_Surprised", "Happily_Surprised", "Sadly_Surprised", "Disgustedly_Surprised",
    "Angrily_Surprised", "Sadly_Fearful", "Sadly_Angry",
)

# Each compound expression and its two basic constituents (C-EXPR-DB's definition), EXPR_NAMES spelling.
CE_PARTS: Final[dict[str, tuple[str, str]]] = {
    "Fearfully_Surprised": ("Fear", "Surprise"), "Happily_Surprised": ("Happiness", "Surprise"),
    "Sadly_Surprised": ("Sadness", "Surprise"), "Disgustedly_Surprised": ("Disgust", "Surprise"),
    "Angrily_Surprised": ("Anger", "Surprise"), "Sadly_Fearful": ("Sadness", "Fear"),
    "Sadly_Angry": ("Sadness", "Anger"),
}
assert tuple(CE_PARTS) == CE_NAMES

# The official "not annotated" markers.
VA_INVALID: Final[float] = -5.0
CLASS_INVALID: Final[int] = -1  # EXPR, AU and CE

# (T, 15) label layout: [V, A, EXPR, AU1 .. AU26].
COL_VALENCE: Final[int] = 0
COL_AROUSAL: Final[int] = 1
COL_EXPR: Final[int] = 2
COL_AU: Final[slice] = slice(3, 15)
N_LABEL_COLUMNS: Final[int] = 15

TaskKind = Literal["regression", "multiclass", "multilabel"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything that defines one task, so code that handles tasks asks the record rather than the task's name.

    The kind decides the rest, the same way in every model and stage:
    - regression (VA): a tanh head, outputs used as they are, CCC loss, values as the decision, CCC metric;
    - multiclass (EXPR, CE): logits, softmax, class-weighted cross-entropy, argmax, macro F1;
    - multilabel (AU): logits, sigmoid, positive-weighted BCE, a threshold per output (0.5 until evaluate
      tunes one per AU on validation), mean F1.
    """

    key: str  # lower-case name in params, paths, metrics files and predictions ("va")
    task: Task  # its name in the official layout and annotation folders ("VA")
    names: tuple[str, ...]  # one per output of its head, in order
    columns: tuple[int, ...]  # its columns of the (T, 15) label layout; () for CE, kept apart as (T,)
    invalid: float  # the official "not annotated" marker
    kind: TaskKind
    metric: str  # the official metric's key in metrics files (higher is better for every task)

    @property
    def outputs(self) -> int:
        """Width of the task's head."""
        return len(self.names)

    def values(self, labels: np.ndarray) -> np.ndarray:
        """This task's labels from (T, 15) labels in its file layout: VA (T, 2) float32, EXPR (T,) int64,
        AU (T, 12) int64 (CE has no columns there; its labels travel apart)."""
        if not self.columns:
            raise ValueError(f"{self.task.value} labels are kept apart from the (T, {N_LABEL_COLUMNS}) layout")
        values = np.asarray(labels)[:, list(self.columns)]  # (T, L)
        if self.kind == "regression":
            return values.astype(np.float32)
        return (values[:, 0] if self.kind == "multiclass" else values).astype(np.int64)


TASKS: Final[dict[str, TaskSpec]] = {spec.key: spec for spec in (
    TaskSpec("va", Task.VA, VA_NAMES, (COL_VALENCE, COL_AROUSAL), VA_INVALID, "regression", "ccc_mean"),
    TaskSpec("expr", Task.EXPR, EXPR_NAMES, (COL_EXPR,), CLASS_INVALID, "multiclass", "f1_macro"),
    TaskSpec("au", Task.AU, AU_NAMES, tuple(range(COL_AU.start, COL_AU.stop)), CLASS_INVALID, "multilabel",
             "f1_mean"),
    TaskSpec("ce", Task.CE, CE_NAMES, (), CLASS_INVALID, "multiclass", "f1_macro"),
)}
assert tuple(TASKS) == tuple(t.value.lower() for t in Task)
# The tasks of the (T, 15) layout (what an MTL file or a test list covers): one temporal model each.
BASIC_KEYS: Final[tuple[str, ...]] = tuple(key for key, spec in TASKS.items() if spec.columns)
# Columns of the (T, 15) layout each basic task fills, by official name.
LABEL_COLUMNS: Final[dict[str, list[int]]] = {TASKS[k].task.value: list(TASKS[k].columns) for k in BASIC_KEYS}


def task_spec(task: str | Task) -> TaskSpec:
    """The record of `task`: its key ("va"), official name ("VA", any case) or labels.Task member."""
    key = (task.value if isinstance(task, Task) else str(task)).lower()
    if key not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[key]


# The challenge's folder name of each task under <root>/annotations/.
TASK_FOLDERS: Final[dict[Task, str]] = {
    Task.VA: "VA_Estimation_Challenge",
    Task.EXPR: "EXPR_Recognition_Challenge",
    Task.AU: "AU_Detection_Challenge",
    Task.CE: "CE",
}
SPLIT_FOLDERS: Final[dict[str, str]] = {"train": "Train_Set", "val": "Validation_Set"}
MTL_FILES: Final[dict[str, str]] = {
    "train": "training_set_annotations.txt",
    "val": "validation_set_annotations.txt",
}
MTL_HEADER: Final[str] = "image,valence,arousal,expression,aus"


def empty_labels(n_frames: int) -> np.ndarray:
    """(T, 15) float32 labels with every entry marked not annotated."""
    labels = np.full((n_frames, N_LABEL_COLUMNS), float(CLASS_INVALID), dtype=np.float32)
    labels[:, [COL_VALENCE, COL_AROUSAL]] = VA_INVALID
    return labels


def fit_frames(values: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """`values` (T', ...) cut or padded to len(empty) frames: written over `empty`, whose rows (the "not
    annotated" markers, or zeros for a mask) are what padded frames keep. Labels follow the annotation files
    and predictions the decoded frames, and the two may differ by a few frames."""
    m = min(len(empty), len(values))
    empty[:m] = values[:m]
    return empty


def empty_compound(n_frames: int) -> np.ndarray:
    """(T,) int64 compound labels, all not annotated."""
    return np.full(n_frames, CLASS_INVALID, dtype=np.int64)
