"""Frame-wise fine-tuning of the pretrained MAE encoder on one task's labels: the `finetuned_<task>` extractors.

The published recipe fine-tunes the MAE encoder per task on single frames
before the temporal stage. On few identities a fully fine-tuned ViT learns who
is in the frame rather than what the face does, so this follows LP-FT (Kumar
et al., 2022, "Fine-tuning can distort pretrained features"):

1. linear probe: the head alone is fitted on frozen, per-video centred
   features (epoch 0, the start every later epoch must beat);
2. fine-tune: the last `blocks` encoder blocks, the final norm and the head
   train together at a small learning rate with layer-wise decay, on batches
   of a few videos x many frames whose pooled features are centred per video
   (as every downstream reader centres them).

Every epoch is scored on the validation videos with the task's official
metric, frame-wise; the best epoch's encoder is kept. When no fine-tuning
epoch beats the linear probe, the encoder is the pretrained one, unchanged,
and the report says so (`best_epoch: 0`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline_lib.artifacts.checkpoints import read_checkpoint, write_checkpoint
from pipeline_lib.config import FinetuneSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import BASIC_KEYS, TASKS
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.store import StoredCrops, open_face_store
from pipeline_lib.features.encode import encode_crops
from pipeline_lib.features.normalize import center_per_video
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.models.heads import TaskHead, build_head
from pipeline_lib.models.mae import IMAGE_MEAN, IMAGE_STD, MAE, load_mae
from pipeline_lib.models.task_network import activate
from pipeline_lib.train.face_frames import face_augmentation
from pipeline_lib.train.loop import fit
from pipeline_lib.train.losses import task_loss
from pipeline_lib.train.scoring import score_task
from pipeline_lib.train.task_data import task_labels

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["FaceVideo", "FinetuneResult", "finetune_encoder", "load_face_videos", "save_finetuned"]


@dataclass(frozen=True)
class FaceVideo:
    """One video's aligned crops (read from its face store where indexed) with one task's labels."""

    name: str
    crops: np.ndarray | StoredCrops  # (T, S, S, 3) uint8
    present: np.ndarray  # (T,) bool
    labels: np.ndarray  # (T, L) float32
    annotated: np.ndarray  # (T, L) bool

    @property
    def usable(self) -> np.ndarray:
        """Frames with a face and at least one label."""
        return np.flatnonzero(self.present & self.annotated.any(axis=1))


@dataclass
class FinetuneResult:
    task: str
    metric: str
    best_epoch: int  # 0 = the linear probe on the pretrained encoder was never beaten
    scores: list[float] = field(default_factory=list)  # validation metric per epoch, epoch 0 = linear probe
    losses: list[float] = field(default_factory=list)  # mean training loss per fine-tuning epoch
    train_videos: int = 0
    val_videos: int = 0
    seconds: float = 0.0

    @property
    def best_score(self) -> float:
        return self.scores[self.best_epoch]


def load_face_videos(raw_dir: Path, face_dir: Path, task: str, split: str) -> list[FaceVideo]:
    """The videos in `task`'s `split`, with their face crops (missing face stores are an error)."""
    raw = load_raw(raw_dir)
    videos = []
    for entry in raw.entries:
        if entry.split_of(task) != split:  # this task's split: the video may be in another task's other split
            continue
        path = face_dir / f"{entry.name}.h5"
        if not path.is_file():
            raise DataError(path, f"{entry.name}: no face store (run `abaw faces` first)")
        with open_face_store(path) as h5:
            present = h5["present"][...].astype(bool)
        labels, annotated = task_labels(load_labels(raw_dir, entry)[0], task)
        crops = StoredCrops.open(path, len(labels))  # read when sampled: a corpus of crops does not fit in RAM
        n = len(crops)
        videos.append(FaceVideo(entry.name, crops, present[:n], labels[:n], annotated[:n]))
    return videos


def _loss(task: str, videos: Sequence[FaceVideo]) -> Loss:
    """The temporal stage's loss for `task`, weighted by these training videos' label frequencies."""
    return task_loss(task, np.concatenate([np.where(v.annotated, v.labels, -1) for v in videos]))


def _centred(features: torch.Tensor, groups: int) -> torch.Tensor:
    """(groups * F, D) pooled features of `groups` videos, F frames each -> each video's mean removed."""
    grouped = features.view(groups, -1, features.shape[-1])  # (V, F, D)
    return (grouped - grouped.mean(dim=1, keepdim=True)).reshape(features.shape)


def _encode_video(encoder: MAE, video: FaceVideo, batch_size: int, device: str) -> np.ndarray:
    """(T, D) features of every face frame, centred per video as every reader of the feature store centres them."""
    return center_per_video(encode_crops(encoder, video.crops, video.present, batch_size, device), video.present)


def _validate(encoder: MAE, head: TaskHead, videos: Sequence[FaceVideo], task: str, batch_size: int,
              device: str) -> float:
    encoder.eval()
    outputs, arrays = [], []
    for video in videos:
        features = _encode_video(encoder, video, batch_size, device)
        with torch.no_grad():
            outputs.append(activate(task, head(torch.from_numpy(features).to(device))).cpu().numpy())
        arrays.append(VideoArrays(video.name, features, video.present, video.labels,
                                  video.annotated & video.present[:, None]))
    return score_task(task, outputs, arrays)[TASKS[task].metric]


def _linear_probe(encoder: MAE, head: TaskHead, videos: Sequence[FaceVideo], loss: Loss,
                  settings: FinetuneSettings, device: str) -> None:
    """Fit the head on frozen centred features of every usable training frame (full batch, AdamW)."""
    xs, ys, ms = [], [], []
    for video in videos:
        rows = video.usable
        xs.append(torch.from_numpy(_encode_video(encoder, video, settings.batch_size, device)[rows]))
        ys.append(torch.as_tensor(video.labels[rows]))
        ms.append(torch.as_tensor(video.annotated[rows]))
    x, y, m = torch.cat(xs).to(device), torch.cat(ys).to(device), torch.cat(ms).to(device)  # (N, D), (N, L)
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.probe_lr, weight_decay=settings.weight_decay)
    for _ in range(settings.probe_steps):
        optimizer.zero_grad()
        loss(head(x), y, m).backward()
        optimizer.step()


def _parameter_groups(encoder: MAE, head: TaskHead, settings: FinetuneSettings) -> list[dict[str, Any]]:
    """The last `blocks` blocks with layer-wise lr decay (the top block at `lr`), the final norm, and the head."""
    depth = len(encoder.blocks)
    groups = [{"params": list(encoder.norm.parameters()), "lr": settings.lr}]
    for offset, block in enumerate(reversed(encoder.blocks[depth - settings.blocks:])):
        groups.append({"params": list(block.parameters()), "lr": settings.lr * settings.layer_decay ** offset})
    groups.append({"params": list(head.parameters()), "lr": settings.head_lr})
    return groups


def _trainable(encoder: MAE, blocks: int) -> None:
    encoder.requires_grad_(False)
    for block in encoder.blocks[len(encoder.blocks) - blocks:]:
        block.requires_grad_(True)
    encoder.norm.requires_grad_(True)


def finetune_encoder(train: Sequence[FaceVideo], val: Sequence[FaceVideo], task: str, checkpoint: Path,
                     settings: FinetuneSettings, *, seed: int = 0,
                     on_epoch: Callable[[int, float, float], None] | None = None) -> tuple[MAE, FinetuneResult]:
    """LP-FT of the MAE in `checkpoint` on `task`; returns the best epoch's encoder (eval mode) and the record.

    on_epoch(epoch, train_loss, val_score) is called after the linear probe (epoch 0, loss nan) and every
    fine-tuning epoch.
    """
    if task not in BASIC_KEYS:
        raise ValueError(f"unknown task {task!r} (va, expr, au)")
    train = [v for v in train if len(v.usable) >= settings.frames_per_video]
    if not train:
        raise DataError(None, f"finetune {task}: no training video with {settings.frames_per_video}+ labelled "
                              f"face frames")
    if not val:
        raise DataError(None, f"finetune {task}: no validation video annotated for {task.upper()}")
    start = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    device = settings.device
    encoder = load_mae(checkpoint)[0].to(device)
    head = build_head(task, encoder.config.width).to(device)
    loss = _loss(task, train)
    result = FinetuneResult(task, TASKS[task].metric, 0, train_videos=len(train), val_videos=len(val))

    encoder.requires_grad_(False)
    _linear_probe(encoder, head, train, loss, settings, device)
    probe = _validate(encoder, head, val, task, settings.batch_size, device)
    if on_epoch:
        on_epoch(0, float("nan"), probe)

    _trainable(encoder, settings.blocks)
    optimizer = torch.optim.AdamW(_parameter_groups(encoder, head, settings), weight_decay=settings.weight_decay)
    augment = face_augmentation(encoder.config.image_size, settings.crop_scale_min, settings.flip,
                                settings.color_jitter, IMAGE_MEAN, IMAGE_STD)
    batches = _FrameBatches(train, settings, augment, np.random.default_rng(seed))

    def batch_loss(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels, masks = batch  # (V * F, 3, S, S), (V * F, L), (V * F, L)
        pooled = encoder.encode(images.to(device))  # (V * F, D)
        return loss(head(_centred(pooled, batches.videos)), labels.to(device), masks.to(device))

    metric = result.metric
    fitted = fit(nn.ModuleDict({"encoder": encoder, "head": head}), batches, batch_loss,
                 lambda: {metric: _validate(encoder, head, val, task, settings.batch_size, device)}, metric,
                 epochs=settings.epochs if settings.blocks else 0,  # blocks 0: the linear probe alone
                 start={metric: probe}, optimizer=optimizer, schedule=False, clip=None, name=f"finetune {task}",
                 on_epoch=None if on_epoch is None else lambda e, lo, sc: on_epoch(e + 1, lo, sc))
    result.best_epoch = fitted.best_epoch + 1  # fit counts from 0 and the probe is the -1st: here it is epoch 0
    result.scores = [probe, *fitted.val_metric]
    result.losses = fitted.train_loss
    encoder.requires_grad_(False)
    result.seconds = time.perf_counter() - start
    return encoder.eval(), result


class _FrameBatches:
    """One epoch of `steps_per_epoch` fine-tuning batches, drawn as they are asked for: `videos_per_batch` training
    videos, `frames_per_video` usable frames of each, augmented; (images uint8 -> float, labels, masks)."""

    def __init__(self, train: Sequence[FaceVideo], settings: FinetuneSettings,
                 augment: Callable[[torch.Tensor], torch.Tensor], rng: np.random.Generator) -> None:
        self.train, self.settings, self.augment, self.rng = train, settings, augment, rng
        self.videos = min(settings.videos_per_batch, len(train))

    def __len__(self) -> int:
        return self.settings.steps_per_epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for _ in range(self.settings.steps_per_epoch):
            images, labels, masks = [], [], []
            for index in self.rng.choice(len(self.train), self.videos, replace=False):
                video = self.train[index]
                rows = np.sort(self.rng.choice(video.usable, self.settings.frames_per_video, replace=False))
                crops = torch.as_tensor(video.crops[rows]).permute(0, 3, 1, 2)  # (F, 3, S, S) uint8
                images.append(torch.stack([self.augment(crop) for crop in crops]))
                labels.append(torch.as_tensor(video.labels[rows]))
                masks.append(torch.as_tensor(video.annotated[rows]))
            yield torch.cat(images), torch.cat(labels), torch.cat(masks)


def save_finetuned(path: Path, encoder: MAE, source: Path, result: FinetuneResult,
                   settings: FinetuneSettings) -> None:
    """A checkpoint `load_mae` reads like the pretrained one, with what it was fine-tuned on in its meta."""
    pretrained = read_checkpoint(source)
    write_checkpoint(path, {
        "model": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "config": pretrained["config"],
        "meta": {**pretrained.get("meta", {}), "finetuned": {
            "task": result.task, "metric": result.metric, "best_epoch": result.best_epoch,
            "scores": [round(s, 6) for s in result.scores], "settings": settings.model_dump()}},
    })
