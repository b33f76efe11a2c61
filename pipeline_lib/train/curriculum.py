"""Curriculum sampling from single to compound expressions (DESIGN.md section 1, step 6).

A schedule is a list of stages, each with a number of epochs and the shares of compound windows in it (the
published one: epochs [5, 5, 3, 3], compound share [0, 0.2, 0.4, 1.0]). Compound windows come from two
pools: real ones (videos with CE labels) and synthetic ones (two basic-expression windows mixed,
train/synthetic.py), so a schedule can run single -> synthetic compound -> real compound. Every epoch draws
the same number of windows, so a curriculum and direct training (real share 1.0 throughout) with the same
epochs have the same budget: equal steps, equal windows, different mix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

__all__ = ["CurriculumBatches", "Stage", "curriculum_stages", "direct_stages", "epoch_shares"]


@dataclass(frozen=True)
class Stage:
    """One stage: `epochs`, and the shares of each epoch's windows that are real (CE-labelled) and synthetic
    compound windows; the rest are single-expression (EXPR) windows."""

    epochs: int
    real: float
    synthetic: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.real < 0 or self.synthetic < 0 or self.real + self.synthetic > 1 + 1e-9:
            raise ValueError(f"a stage needs epochs >= 1 and shares in [0, 1] summing to at most 1, got {self}")


def curriculum_stages(epochs: Sequence[int], share: Sequence[float], synthetic: Sequence[float] | None = None,
                      real: bool = True) -> list[Stage]:
    """The configured schedule as stages: stage k has compound share `share[k]`, of which the fraction
    `synthetic[k]` is synthetic and the rest real.

    `real=False` (no CE training labels, as C-EXPR-DB ships): a stage whose compound windows are all real
    (synthetic fraction 0, share > 0) is dropped, and in the others the real part is drawn synthetic.
    """
    fractions = [0.0] * len(share) if synthetic is None else list(synthetic)
    if len(epochs) != len(share) or len(fractions) != len(share) or not epochs:
        raise ValueError(f"a curriculum needs one share per stage, got epochs {list(epochs)}, share {list(share)}"
                         f" and synthetic {fractions}")
    if any(not 0.0 <= s <= 1.0 for s in [*share, *fractions]):
        raise ValueError(f"shares in [0, 1] expected, got share {list(share)} and synthetic {fractions}")
    stages = []
    for e, s, f in zip(epochs, share, fractions, strict=True):
        if real:
            stages.append(Stage(e, s * (1 - f), s * f))
        elif f > 0 or s == 0:
            stages.append(Stage(e, 0.0, s))
    return stages


def direct_stages(epochs: Sequence[int]) -> list[Stage]:
    """Direct training with the curriculum's budget: real compound windows only, every epoch."""
    return [Stage(e, 1.0) for e in epochs]


def epoch_shares(stages: Sequence[Stage]) -> list[tuple[float, float]]:
    """(real, synthetic) compound shares of every epoch: stage k's repeated epochs[k] times."""
    if not stages:
        raise ValueError("a curriculum needs at least one stage")
    return [(stage.real, stage.synthetic) for stage in stages for _ in range(stage.epochs)]


class _Cycle:
    """Indices of one pool in a fresh random order each pass, drawn without replacement until it runs out."""

    def __init__(self, indices: Sequence[int], rng: np.random.Generator) -> None:
        self.indices, self.rng = np.asarray(indices, np.int64), rng
        self.order, self.next = np.zeros(0, np.int64), 0

    def take(self, n: int) -> np.ndarray:
        if n > 0 and len(self.indices) == 0:
            raise ValueError(f"{n} window(s) asked of an empty pool")
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
    """Batches of windows for `fit`: epoch e (its e-th pass) holds round(real * per_epoch) windows of the real
    compound pool, round(synthetic * per_epoch) of the synthetic pool and the rest from the basic pool,
    shuffled together (`shares[e]` = (real, synthetic)).

    The pass counter advances on every `iter()`, so one object serves a whole training run.
    """

    def __init__(self, dataset: Dataset[dict[str, torch.Tensor]], basic: Sequence[int], compound: Sequence[int],
                 shares: Sequence[tuple[float, float]], per_epoch: int, batch_size: int, seed: int = 0,
                 synthetic: Sequence[int] = ()) -> None:
        if per_epoch < 1 or batch_size < 1:
            raise ValueError(f"per_epoch and batch_size must be >= 1, got {per_epoch} and {batch_size}")
        if not compound and any(r > 0 for r, _ in shares):
            raise ValueError("the curriculum asks for compound windows but the compound pool is empty")
        if not synthetic and any(s > 0 for _, s in shares):
            raise ValueError("the curriculum asks for synthetic compound windows but the synthetic pool is empty")
        if not basic and any(r + s < 1 - 1e-9 for r, s in shares):
            raise ValueError("the curriculum asks for single-expression windows but the basic pool is empty")
        self.dataset, self.shares = dataset, list(shares)
        self.per_epoch, self.batch_size = per_epoch, batch_size
        rng = np.random.default_rng(seed)
        self._basic, self._compound, self._rng = _Cycle(basic, rng), _Cycle(compound, rng), rng
        self._synthetic = _Cycle(synthetic, rng)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.per_epoch // self.batch_size)

    def draw(self, epoch: int) -> np.ndarray:
        """(per_epoch,) dataset indices of one epoch, in training order (advances the pools)."""
        real, synthetic = self.shares[min(epoch, len(self.shares) - 1)]
        n_real = int(round(real * self.per_epoch))
        n_synthetic = min(int(round(synthetic * self.per_epoch)), self.per_epoch - n_real)
        if real + synthetic >= 1 - 1e-9:  # an all-compound epoch stays so whatever the rounding
            n_synthetic = self.per_epoch - n_real
        picked = np.concatenate([self._compound.take(n_real), self._synthetic.take(n_synthetic),
                                 self._basic.take(self.per_epoch - n_real - n_synthetic)])
        return self._rng.permutation(picked)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self.draw(self.epoch)
        self.epoch += 1
        for start in range(0, len(order), self.batch_size):
            yield default_collate([self.dataset[int(i)] for i in order[start:start + self.batch_size]])
