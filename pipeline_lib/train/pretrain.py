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
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from pipeline_lib.config import PretrainSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.train.checkpoint import read_checkpoint, write_checkpoint
from pipeline_lib.train.face_frames import FaceFrames, face_augmentation
from pipeline_lib.models.mae import IMAGE_MEAN, IMAGE_STD, MAE, config_by_name

__all__ = ["CheckpointError", "PretrainResult", "load_mae", "pretrain_mae", "warmup_cosine"]

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


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor: linear warm-up from 0, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _safe_load(path: Path) -> dict[str, Any]:
    checkpoint = read_checkpoint(path, "missing: run `abaw pretrain` first")
    if "model" not in checkpoint or "config" not in checkpoint:
        raise CheckpointError(path, "not an MAE checkpoint (expected keys 'model' and 'config')")
    return checkpoint


def load_mae(path: Path) -> tuple[MAE, dict[str, Any]]:
    """The pretrained MAE (eval mode) and the checkpoint's metadata."""
    checkpoint = _safe_load(path)
    try:
        model = MAE(config_by_name(checkpoint["config"]["name"], **checkpoint["config"]["overrides"]))
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the stored config ({str(exc).splitlines()[0][:200]})") \
            from None
    return model.eval(), checkpoint.get("meta", {})


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def pretrain_mae(stores: Sequence[Path], settings: PretrainSettings, out_dir: Path, *, seed: int = 0,
                 on_step: Callable[[int, float, float], None] | None = None,
                 on_epoch: Callable[[int, float], None] | None = None) -> tuple[MAE, PretrainResult]:
    """Train an MAE on the faces in `stores`; write out_dir/last.pt every epoch and out_dir/mae.pt at the end.

    on_step(step, loss, lr) and on_epoch(epoch, mean_loss) are called on rank 0.
    """
    rank, world = _distributed()
    torch.manual_seed(seed)
    torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    config = config_by_name(settings.model, mask_ratio=settings.mask_ratio)
    model = MAE(config).to(device)
    augment = face_augmentation(config.image_size, settings.crop_scale_min, settings.flip, settings.color_jitter,
                                IMAGE_MEAN, IMAGE_STD)
    data = FaceFrames(stores, settings.frame_stride, augment)
    if len(data) == 0:
        raise DataError(None, f"no face frames to pretrain on in {len(stores)} face store(s) (run `abaw faces` first)")
    sampler = DistributedSampler(data, world, rank, shuffle=True, seed=seed) if world > 1 else None
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(data, batch_size=settings.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(data) >= settings.batch_size * world, num_workers=settings.num_workers,
                        multiprocessing_context="spawn" if settings.num_workers else None,
                        persistent_workers=settings.num_workers > 0, generator=generator)
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
        previous = _safe_load(out_dir / LAST)
        same = {k: v for k, v in previous.get("meta", {}).get("settings", {}).items() if k not in ("epochs",)}
        # Resume only the very same run: settings (bar the epoch count), seed, code and faces.
        if same == {k: v for k, v in settings.model_dump().items() if k != "epochs"} and all(
                previous["meta"].get(key) == meta[key] for key in ("seed", "code", "data")):
            model.load_state_dict(previous["model"])
            optimizer.load_state_dict(previous["optimizer"])
            start_epoch = int(previous["epoch"])
    trainable = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    result = PretrainResult(images=len(data), epochs_run=0, resumed_from_epoch=start_epoch)
    begin = time.perf_counter()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, settings.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        trainable.train()
        running, batches = 0.0, 0
        for images in loader:
            lr = settings.lr * warmup_cosine(step, warmup, total)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
                loss = trainable(images.to(device, non_blocking=True)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running, batches, step = running + loss.item(), batches + 1, step + 1
            if rank == 0 and on_step is not None:
                on_step(step, loss.item(), lr)
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


def _code_digest() -> str:
    """Hash of the model and training code: a checkpoint from other code is not resumed."""
    digest = hashlib.sha256()
    for module in (Path(__file__), Path(__file__).with_name("face_frames.py"),
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
    return {"name": settings.model, "overrides": {"mask_ratio": settings.mask_ratio}}


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    write_checkpoint(path, checkpoint)
