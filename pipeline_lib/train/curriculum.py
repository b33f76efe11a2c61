"""Curriculum sampling from single to compound expressions (DESIGN.md section 1, step 6).

A schedule is a list of stages, each with a number of epochs and the share of
compound windows in them (the published one: epochs [5, 5, 3, 3], share
[0, 0.2, 0.4, 1.0]). Every epoch draws the same number of windows, so a
curriculum and direct training (share 1.0 throughout) with the same epochs
have the same budget: equal steps, equal windows, different mix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

__all__ = ["CurriculumBatches", "epoch_shares"]


def epoch_shares(epochs: Sequence[int], share: Sequence[float]) -> list[float]:
    """The compound share of every epoch: stage k's share repeated epochs[k] times."""
    if len(epochs) != len(share) or not epochs:
        raise ValueError(f"a curriculum needs one share per stage, got epochs {list(epochs)} and share {list(share)}")
    if any(e < 1 for e in epochs) or any(not 0.0 <= s <= 1.0 for s in share):
        raise ValueError(f"epochs must be >= 1 and shares in [0, 1], got {list(epochs)} and {list(share)}")
    return [float(s) for e, s in zip(epochs, share, strict=True) for _ in range(e)]


class _Cycle:
    """Indices of one pool in a fresh random order each pass, drawn without replacement until it runs out."""

    def __init__(self, indices: Sequence[int], rng: np.random.Generator) -> None:
        self.indices, self.rng = np.asarray(indices, np.int64), rng
        self.order, self.next = np.zeros(0, np.int64), 0

    def take(self, n: int) -> np.ndarray:
        out: list[np.ndarray] = []
        while n > 0:
            if self.next >= len(self.order):
                self.order, self.next = self.rng.permutation(self.indices), 0
            part = self.order[self.next:self.next + n]
            out.append(part)
            self.next += len(part)
            n -= len(part)
        return np.concatenate(out) if out else np.zeros(0, np.int64)


class CurriculumBatches:
    """Batches of windows for `fit`: epoch e (its e-th pass) holds round(shares[e] * per_epoch) windows of the
    compound pool and the rest from the basic pool, shuffled together.

    The pass counter advances on every `iter()`, so one object serves a whole training run.
    """

    def __init__(self, dataset: Dataset[dict[str, torch.Tensor]], basic: Sequence[int], compound: Sequence[int],
                 shares: Sequence[float], per_epoch: int, batch_size: int, seed: int = 0) -> None:
        if per_epoch < 1 or batch_size < 1:
            raise ValueError(f"per_epoch and batch_size must be >= 1, got {per_epoch} and {batch_size}")
        if not compound and any(s > 0 for s in shares):
            raise ValueError("the curriculum asks for compound windows but the compound pool is empty")
        if not basic and any(s < 1 for s in shares):
            raise ValueError("the curriculum asks for single-expression windows but the basic pool is empty")
        self.dataset, self.shares = dataset, list(shares)
        self.per_epoch, self.batch_size = per_epoch, batch_size
        rng = np.random.default_rng(seed)
        self._basic, self._compound, self._rng = _Cycle(basic, rng), _Cycle(compound, rng), rng
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.per_epoch // self.batch_size)

    def draw(self, epoch: int) -> np.ndarray:
        """(per_epoch,) dataset indices of one epoch, in training order (advances the pools)."""
        share = self.shares[min(epoch, len(self.shares) - 1)]
        n_compound = int(round(share * self.per_epoch))
        picked = np.concatenate([self._compound.take(n_compound), self._basic.take(self.per_epoch - n_compound)])
        return self._rng.permutation(picked)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self.draw(self.epoch)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            yield default_collate([self.dataset[int(i)] for i in order[start:start + self.batch_size]])
