"""MAE pretraining loop: AdamW with warm-up + cosine, optional bf16 autocast, DDP under torchrun, resumable.

Checkpoints hold tensors and plain values only, so they load with
`torch.load(..., weights_only=True)` and a foreign or tampered file cannot run
code. `last.pt` carries the optimiser state for resuming (a run with more
epochs continues where the previous one stopped); `mae.pt` is the final
model that the features stage reads.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pipeline_lib.artifacts.checkpoints import write_checkpoint
from pipeline_lib.config import ConfigError, PretrainSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.heap import release_freed_memory
from pipeline_lib.models.mae import IMAGE_MEAN, IMAGE_STD, MAE, config_by_name, read_mae_checkpoint
from pipeline_lib.train import distributed
from pipeline_lib.train.face_frames import FaceFrames, face_augmentation
from pipeline_lib.train.loop import LossNotFinite
from pipeline_lib.train.schedule import warmup_cosine

__all__ = ["CheckpointError", "PretrainResult", "pretrain_mae", "sharded_loader"]

FINAL = "mae.pt"
LAST = "last.pt"


@dataclass
class PretrainResult:
    images: int
    epochs_run: int
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images * self.epochs_run / self.seconds if self.seconds else 0.0


def sharded_loader(data: Dataset[Any], batch_size: int, rank: int, world: int, seed: int,
                   num_workers: int = 0) -> DataLoader[Any]:
    """Rank `rank`'s loader of `data`, `batch_size` per process; its DistributedSampler needs set_epoch per epoch.

    A DistributedSampler for one process too: its permutation depends on (seed, epoch) alone and rank r takes
    every world-th index of it, so the ranks' k-th batches together are exactly the k-th slice of
    batch_size * world of that permutation: the k-th batch of one process with batch batch_size * world.
    (A plain shuffle would draw another order.) The last partial global batch is dropped when there is a full
    one, by the sampler and the loader alike, so every rank runs the same number of steps; otherwise the
    sampler pads with at most world - 1 repeated items.
    """
    drop_last = len(data) >= batch_size * world  # type: ignore[arg-type]
    sampler: DistributedSampler[Any] = DistributedSampler(data, world, rank, shuffle=True, seed=seed,
                                                          drop_last=drop_last)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      multiprocessing_context="spawn" if num_workers else None, persistent_workers=num_workers > 0,
                      generator=torch.Generator())  # the workers' seeds; reseeded every epoch


def pretrain_mae(stores: Sequence[Path], settings: PretrainSettings, out_dir: Path, *, seed: int = 0,
                 on_step: Callable[[int, float, float], None] | None = None,
                 on_epoch: Callable[[int, float], None] | None = None) -> tuple[MAE, PretrainResult]:
    """Train an MAE on the faces in `stores`; write out_dir/last.pt every epoch and out_dir/mae.pt at the end.

    Under torchrun (N processes) `settings.batch_size` is per process: N processes with B/N each see the same
    global batches in the same order as one process with B, and DDP averages their gradients; only rank 0
    writes. on_step(step, loss, lr) and on_epoch(epoch, mean_loss) are called on rank 0, with the losses
    averaged over the ranks (the global batch's loss).
    """
    rank, world = distributed.join(settings.device)
    device = distributed.local_device(settings.device)
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    try:
        config = config_by_name(settings.model, **_config_ref(settings)["overrides"])
    except ValueError as exc:  # e.g. a patch size that does not divide the image: a params problem, one line
        raise ConfigError(f"pretrain: {exc}") from None
    model = MAE(config).to(device)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    augment = face_augmentation(config.image_size, settings.crop_scale_min, settings.flip, settings.color_jitter,
                                IMAGE_MEAN, IMAGE_STD)
    data = FaceFrames(stores, settings.frame_stride, augment)
    if len(data) == 0:
        raise DataError(None, f"no face frames to pretrain on in {len(stores)} face store(s) (run `abaw faces` first)")
    loader = sharded_loader(data, settings.batch_size, rank, world, seed, settings.num_workers)
    sampler = loader.sampler
    assert isinstance(sampler, DistributedSampler)
    steps_per_epoch = max(1, len(loader))
    total, warmup = settings.epochs * steps_per_epoch, round(settings.warmup_epochs * steps_per_epoch)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "token" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "token" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.95))
    meta = {"model": settings.model, "config": config.as_dict(), "settings": settings.model_dump(), "seed": seed,
            "code": _code_digest(), "data": _data_digest(stores)}
    start_epoch = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / LAST).is_file():
        previous = read_mae_checkpoint(out_dir / LAST)
        same = {k: v for k, v in previous.get("meta", {}).get("settings", {}).items() if k not in ("epochs",)}
        # Resume only the very same run: settings (bar the epoch count), seed, code and faces.
        if same == {k: v for k, v in settings.model_dump().items() if k != "epochs"} and all(
                previous["meta"].get(key) == meta[key] for key in ("seed", "code", "data")):
            model.load_state_dict(previous["model"])
            optimizer.load_state_dict(previous["optimizer"])
            start_epoch = int(previous["epoch"])
    # DDP averages the gradients over the ranks in backward: with equal shares, the gradient of the global batch.
    trainable = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None) if world > 1 else model
    result = PretrainResult(images=len(data), epochs_run=0, resumed_from_epoch=start_epoch)
    begin = time.perf_counter()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, settings.epochs):
        sampler.set_epoch(epoch)
        # Masks and augmentations draw from a stream fixed by (seed, epoch, rank): a run resumed after epoch k
        # continues exactly as the uninterrupted one, with any number of processes, and the two halves of a
        # global batch never share draws.
        torch.manual_seed(_stream_seed(seed, epoch, rank))
        loader.generator.manual_seed(_stream_seed(seed, epoch, rank))  # the workers' seeds, if any
        trainable.train()
        running, batches = 0.0, 0
        for images in loader:
            lr = settings.lr * warmup_cosine(step, warmup, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                loss = trainable(images.to(device, non_blocking=True)).loss
            # The global batch's loss (every rank calls this, on every step): what one process would log.
            value = distributed.mean_over_ranks(loss.detach())
            if not math.isfinite(value):  # every rank sees the same mean, so every rank stops here
                raise LossNotFinite("pretrain", value, epoch, batches, len(loader))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running, batches, step = running + value, batches + 1, step + 1
            if rank == 0 and on_step is not None:
                on_step(step, value, lr)
        release_freed_memory()  # the epoch's freed batches (the heap would grow with the images seen)
        mean = running / max(1, batches)
        result.epoch_losses.append(mean)
        result.epochs_run += 1
        if rank == 0:
            _save(out_dir / LAST, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "epoch": epoch + 1, "config": _config_ref(settings), "meta": meta})
            if on_epoch is not None:
                on_epoch(epoch, mean)
    result.seconds = time.perf_counter() - begin
    if rank == 0:
        _save(out_dir / FINAL, {"model": model.state_dict(), "config": _config_ref(settings),
                                "meta": {**meta, "epochs": settings.epochs, "images": len(data)}})
    return model.eval(), result


def _stream_seed(seed: int, epoch: int, rank: int) -> int:
    """A distinct seed per (seed, epoch, rank); ranks below 1000."""
    return (seed * 100_003 + epoch) * 1000 + rank


def _code_digest() -> str:
    """Hash of the model and training code: a checkpoint from other code is not resumed."""
    digest = hashlib.sha256()
    for module in (Path(__file__), Path(__file__).with_name("face_frames.py"), Path(__file__).with_name("schedule.py"),
                   Path(__file__).parents[1] / "models" / "mae.py"):
        digest.update(module.read_bytes())
    return digest.hexdigest()[:16]


def _data_digest(stores: Sequence[Path]) -> str:
    """Names and sizes of the face stores (cheap; a re-extracted corpus changes it)."""
    digest = hashlib.sha256()
    for path in sorted(stores):
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return digest.hexdigest()[:16]


def _config_ref(settings: PretrainSettings) -> dict[str, Any]:
    overrides: dict[str, Any] = {"mask_ratio": settings.mask_ratio}
    if settings.patch_size is not None:  # absent = the model's own (checkpoints from before the option load as then)
        overrides["patch_size"] = settings.patch_size
    return {"name": settings.model, "overrides": overrides}


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    write_checkpoint(path, checkpoint)
