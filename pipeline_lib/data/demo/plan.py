"""What to generate: one `VideoPlan` per video file, with its split, people, length and quirks.

Planning is cheap and fully determined by (settings, seed), so every worker
process can render its video from the plan alone. Quirks are spread over
the videos by position (not by chance) so that even a tiny corpus has each
kind: face exits, cuts to background, occluders, invalid spans, annotation
files 1-3 lines longer or shorter than the video, videos with a subset of tasks, and videos whose split
differs between tasks (one task's labels in the other split's folder, as 86 Aff-Wild2 videos are).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

import numpy as np

from pipeline_lib.config import ConfigError, DemoCorpusSettings
from pipeline_lib.data.demo.identities import identity_pool, spare_identities, split_identities
from pipeline_lib.data.demo.timeline import TrackKind

__all__ = ["Group", "VideoPlan", "plan_corpus", "GROUPS"]

Group = Literal["train", "val", "two_subject", "ce_train", "ce_val", "test", "unlabeled"]
GROUPS: Final[tuple[Group, ...]] = ("train", "val", "two_subject", "ce_train", "ce_val", "test", "unlabeled")
MAIN_TASKS: Final[tuple[str, ...]] = ("VA", "EXPR", "AU")
# Faces that get too small for MTCNN at half size (camera's face is a small 3/4 profile).
_TOO_SMALL_WHEN_HALVED: Final[tuple[str, ...]] = ("camera",)
# Task subsets given to some labelled videos, as in Aff-Wild2 where few videos carry every task.
_SUBSETS: Final[tuple[tuple[str, ...], ...]] = (("VA", "EXPR"), ("AU",), ("EXPR", "AU"), ("VA",), ("VA", "AU"))


@dataclass(frozen=True)
class VideoPlan:
    """One video file to render. `subjects` are annotation names ('x' or 'x_left', 'x_right')."""

    seed: int
    index: int
    name: str
    group: Group
    split: Literal["train", "val", "test", "unlabeled"]
    kind: TrackKind
    identities: tuple[str, ...]
    subjects: tuple[str, ...]
    tasks: tuple[str, ...]  # tasks written to disk for every subject (empty for test/unlabeled)
    n_frames: int
    fps: float
    width: int
    height: int
    exits: int = 0
    cuts: int = 0
    occluders: int = 0
    invalid_span: bool = False
    count_delta: int = 0  # annotation lines minus frames
    qp: int = 23
    compound_start: int = 0  # first compound class of the video's compound segments (they cycle)
    moved_task: str | None = None  # this task's labels go to the other split (train <-> val)

    def split_of(self, task: str) -> str:
        """The split `task`'s labels are written to: the video's split, or the other one for `moved_task`."""
        if task == self.moved_task:
            return "val" if self.split == "train" else "train"
        return self.split


class _Rotation:
    """Hands out identities in a shuffled round robin, so a split uses as many different people as it can."""

    def __init__(self, names: list[str], rng: np.random.Generator) -> None:
        self._names = [names[i] for i in rng.permutation(len(names))]
        self._next = 0

    def take(self, count: int, avoid: tuple[str, ...] = ()) -> tuple[str, ...]:
        picked: list[str] = []
        for _ in range(count + len(self._names)):
            name = self._names[self._next % len(self._names)]
            self._next += 1
            if name not in avoid or len(self._names) <= len(avoid):
                picked.append(name)
            if len(picked) == count:
                break
        return tuple(picked)


def plan_corpus(settings: DemoCorpusSettings, seed: int) -> list[VideoPlan]:
    """Every video of the corpus in a fixed order (the order seeds each video's random streams)."""
    rng = np.random.default_rng([seed, 9001])
    pool = identity_pool(settings.lfw_identities)
    train_ids, val_ids = split_identities(pool, settings.val_identity_share, seed)
    spare = spare_identities(settings.lfw_identities) or train_ids
    s = settings
    counts: dict[Group, int] = {"train": s.train_videos, "val": s.val_videos, "two_subject": s.two_subject_videos,
                                "ce_train": s.ce_train_videos, "ce_val": s.ce_val_videos, "test": s.test_videos,
                                "unlabeled": s.unlabeled_videos}
    queues = {"train": _Rotation(train_ids, rng), "val": _Rotation(val_ids, rng), "spare": _Rotation(spare, rng)}
    plans: list[VideoPlan] = []
    labelled = 0  # running count of labelled videos: spreads the label-file quirks
    for group in GROUPS:
        for j in range(counts[group]):
            index = len(plans)
            n_frames = max(int(round(rng.uniform(s.min_seconds, s.max_seconds) * s.fps)), 2)
            split: Literal["train", "val", "test", "unlabeled"] = {
                "two_subject": "train" if j % 2 == 0 else "val", "ce_train": "train", "ce_val": "val"}.get(group, group)
            people = queues["train" if split == "train" else "val" if split in ("val", "test") else "spare"]
            if group == "two_subject":
                identities = people.take(2, avoid=_TOO_SMALL_WHEN_HALVED)
                name = f"video_{index:03d}"
                subjects: tuple[str, ...] = (f"{name}_left", f"{name}_right")
            else:
                identities = ("grace_hopper",) if group == "train" and j == 0 else people.take(1)
                name = f"{'compound' if group.startswith('ce') else 'video'}_{index:03d}"
                subjects = (name,)
            if group in ("train", "val", "two_subject"):
                subset = group != "two_subject" and j >= 2 and j % 4 == 3
                tasks = _SUBSETS[j % len(_SUBSETS)] if subset else MAIN_TASKS
            elif group in ("ce_train", "ce_val"):
                tasks = ("CE",)
            else:
                tasks = ()
            is_labelled = bool(tasks)
            single = group != "two_subject"
            plans.append(VideoPlan(
                seed=seed, index=index, name=name, group=group, split=split,
                kind="compound" if group.startswith("ce") else "mixed" if group == "test" else "basic",
                identities=identities, subjects=subjects, tasks=tasks, n_frames=n_frames, fps=s.fps,
                width=s.width, height=s.height,
                exits=int(single and index % 4 == 0),
                cuts=int(single and index % 4 == 2),
                occluders=int(index % 2 == 1) + int(rng.random() < 0.3),
                invalid_span=is_labelled and labelled % 3 == 2,
                count_delta=(int(rng.integers(1, 4)) * int(rng.choice([-1, 1]))) if is_labelled and labelled % 3 == 1
                else 0,
                qp=int(rng.choice([20, 23, 26])),
                compound_start=4 * j,  # ~4 compound segments a video: consecutive videos continue the cycle
            ))
            labelled += int(is_labelled)
    return _move_tasks(plans, settings.cross_task_videos)


def _move_tasks(plans: list[VideoPlan], count: int) -> list[VideoPlan]:
    """Give `count` single-subject videos with every basic task one task in the other split.

    They alternate between the train and val groups (train first) and the moved task cycles VA, EXPR, AU,
    so a tiny corpus gets a train video with VA validation labels first.
    """
    candidates = {group: [i for i, p in enumerate(plans) if p.group == group and p.tasks == MAIN_TASKS]
                  for group in ("train", "val")}
    moved = list(plans)
    for k in range(count):
        group = ("train", "val")[k % 2]
        if k // 2 >= len(candidates[group]):
            raise ConfigError(f"params.yaml: 'data.demo.cross_task_videos' = {count}: the demo has only "
                              f"{len(candidates['train'])} train and {len(candidates['val'])} val videos with every "
                              f"task to move one from (alternating, train first)")
        index = candidates[group][k // 2]
        moved[index] = replace(plans[index], moved_task=MAIN_TASKS[k % len(MAIN_TASKS)])
    return moved
