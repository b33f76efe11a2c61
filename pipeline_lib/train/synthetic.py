"""Synthetic compound-expression windows from pairs of basic-expression windows (feature-level Mixup).

C-EXPR-DB ships no compound training labels; the published CE solutions train on compound samples made from
basic-expression data. Here a training window whose labelled face frames mostly show one basic expression
("pure" for it) is mixed with a window pure for the other constituent of a compound (CE_PARTS): features
lam * x_a + (1 - lam) * x_b with lam uniform in `mix`, labelled with that compound on the frames where both
windows show their expression on a face, and not annotated elsewhere (the basic column too: a mixed face
has no single basic expression). Compounds are drawn uniformly among those whose two constituents both have
pure windows, so the synthetic pool is class-balanced by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline_lib.data.labels import CE_NAMES, CE_PARTS, CLASS_INVALID, EXPR_NAMES
from pipeline_lib.features.windows import WindowDataset

__all__ = ["SyntheticCompound", "pure_windows"]

_PARTS = [(EXPR_NAMES.index(a), EXPR_NAMES.index(b)) for a, b in CE_PARTS.values()]  # CE_NAMES order


def pure_windows(data: WindowDataset, column: int, purity: float, min_frames: int) -> dict[int, np.ndarray]:
    """Basic class -> indices of the windows of `data` pure for it: at least `min_frames` labelled face frames
    in `column`, at least `purity` of them that class."""
    pools: dict[int, list[int]] = {}
    for i, (k, s) in enumerate(zip(data.video_ids, data.starts, strict=True)):
        video = data.videos[int(k)]
        keep = video.label_mask[s:s + data.window, column] & video.valid[s:s + data.window]
        if keep.sum() < min_frames:
            continue
        counts = np.bincount(video.labels[s:s + data.window, column][keep].astype(np.int64),
                             minlength=len(EXPR_NAMES))
        top = int(counts.argmax())
        if counts[top] >= purity * keep.sum():
            pools.setdefault(top, []).append(i)
    return {c: np.asarray(v, np.int64) for c, v in sorted(pools.items())}


@dataclass(frozen=True)
class _Pair:
    compound: int
    first: int  # window index pure for the compound's first constituent
    second: int
    lam: float


class SyntheticCompound(Dataset[dict[str, torch.Tensor]]):
    """`count` mixed windows drawn once from `seed`: item i is the same tensor dict as WindowDataset's, with the
    labels in the compound stage's (basic, compound) layout; `video` is -1 and `frames` the first window's."""

    def __init__(self, data: WindowDataset, basic_column: int, compound_column: int, count: int,
                 mix: Sequence[float] = (0.3, 0.7), purity: float = 0.6, min_frames: int = 4, seed: int = 0) -> None:
        if not 0.0 <= mix[0] <= mix[1] <= 1.0:
            raise ValueError(f"mix must be a range within [0, 1], got {list(mix)}")
        self.data, self.basic_column, self.compound_column = data, basic_column, compound_column
        self.pools = pure_windows(data, basic_column, purity, min_frames)
        self.classes = self.available(self.pools)
        rng = np.random.default_rng([seed, 4711])
        self.pairs: list[_Pair] = []
        for _ in range(count if self.classes else 0):
            c = self.classes[int(rng.integers(len(self.classes)))]
            a, b = _PARTS[c]
            first, second = (self.pools[x][int(rng.integers(len(self.pools[x])))] for x in (a, b))
            self.pairs.append(_Pair(c, int(first), int(second), float(rng.uniform(mix[0], mix[1]))))

    @staticmethod
    def available(pools: dict[int, np.ndarray]) -> list[int]:
        """Compounds (CE_NAMES indices) whose two constituents both have pure windows in `pools`."""
        return [c for c, (a, b) in enumerate(_PARTS) if a in pools and b in pools]

    def __len__(self) -> int:
        return len(self.pairs)

    def summary(self) -> dict[str, object]:
        """Pure windows per basic class and mixed windows per compound (for the stage metrics)."""
        made = np.bincount([p.compound for p in self.pairs], minlength=len(CE_NAMES))
        return {"windows": len(self.pairs),
                "pure_windows": {EXPR_NAMES[c]: len(v) for c, v in self.pools.items()},
                "per_compound": {name: int(n) for name, n in zip(CE_NAMES, made, strict=True)},
                "missing": [CE_NAMES[c] for c in range(len(CE_NAMES)) if c not in self.classes]}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pair = self.pairs[i]
        x, y = self.data[pair.first], self.data[pair.second]
        a, b = _PARTS[pair.compound]
        shows = [(w["label_mask"][:, self.basic_column] & (w["labels"][:, self.basic_column] == part))
                 for w, part in ((x, a), (y, b))]
        labelled = shows[0] & shows[1]  # (W,)
        labels = torch.full_like(x["labels"], float(CLASS_INVALID))  # (W, 2)
        labels[labelled, self.compound_column] = float(pair.compound)
        mask = torch.zeros_like(x["label_mask"])
        mask[:, self.compound_column] = labelled
        return {"features": pair.lam * x["features"] + (1 - pair.lam) * y["features"],  # (W, D)
                "valid": x["valid"] & y["valid"], "labels": labels, "label_mask": mask,
                "frames": x["frames"], "video": torch.tensor(-1, dtype=torch.int64)}
