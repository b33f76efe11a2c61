"""Multi-process training under torchrun (DESIGN.md section 5): one process group, its rank and size, and the
few collectives the training loops need.

`torchrun --nproc_per_node=N --no-python abaw pretrain` (or `abaw temporal`) starts N copies of the stage
with RANK, LOCAL_RANK and WORLD_SIZE set. Each copy calls `join` before training: with WORLD_SIZE > 1 it
joins the group (nccl on a GPU, gloo on CPU) and trains on 1/N of the data; without torchrun every function
here is the identity of a one-process world, so the same code runs unchanged in a plain `abaw` call.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["is_main", "join", "leave", "local_device", "mean_over_ranks", "rank", "world_size"]


def world_size() -> int:
    """Processes in this run: the group's size once joined, torchrun's WORLD_SIZE before, else 1."""
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank: the group's once joined, torchrun's RANK before (so it is right before `join`)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True on the one process that writes outputs and logs (rank 0); True without torchrun."""
    return rank() == 0


def local_device(device: str) -> torch.device:
    """The device this process trains on: with cuda under torchrun, its own GPU (LOCAL_RANK), not GPU 0 for all."""
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return resolved


def join(device: str = "cpu") -> tuple[int, int]:
    """(rank, world size); under torchrun (WORLD_SIZE > 1) joins the process group once, for `device`'s backend.

    nccl only reduces GPU tensors and gloo is the CPU backend, so the backend follows where training runs,
    not whether a GPU happens to exist. Idempotent: a stage training several models joins once.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        target = local_device(device)
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return rank(), world_size()


def leave() -> None:
    """Leave the process group (a no-op when none was joined); stages call it once, at the end."""
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: float | torch.Tensor) -> float:
    """The mean of a scalar over every rank (a collective: every rank must call it); `value` itself in one process.

    For logging: a loss averaged over the ranks' equal-sized shares is the loss of the whole global batch.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return float(value)
    # nccl reduces only tensors on the process's GPU; float64 so summing many ranks loses nothing.
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.as_tensor(value).detach().to(where, torch.float64).reshape(1)  # (1,)
    dist.all_reduce(total)
    return total.item() / dist.get_world_size()
