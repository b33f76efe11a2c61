"""Label vocabularies, invalid markers and the in-memory (T, 15) label layout.

Everything that names a class, an AU or a column lives here so readers, writers,
the demo generator and the metrics agree on one spelling and one order.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

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
# Columns of the (T, 15) layout each basic task fills; CE is kept apart as (T,).
LABEL_COLUMNS: Final[dict[str, list[int]]] = {
    "VA": [COL_VALENCE, COL_AROUSAL], "EXPR": [COL_EXPR], "AU": list(range(COL_AU.start, COL_AU.stop)),
}

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


def empty_compound(n_frames: int) -> np.ndarray:
    """(T,) int64 compound labels, all not annotated."""
    return np.full(n_frames, CLASS_INVALID, dtype=np.int64)
