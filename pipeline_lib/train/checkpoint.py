"""Weights-only checkpoints: written atomically, read without unpickling anything but tensors and plain values.

Every trained model of the pipeline (MAE, temporal, fusion) goes through
these two functions, so a foreign or tampered file fails the same way
everywhere: a `CheckpointError` naming the file, never code run on load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pipeline_lib.data.errors import CheckpointError

__all__ = ["read_checkpoint", "write_checkpoint"]


def write_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """torch.save to a hidden partial file, then rename: a crash never leaves a half file under `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


def read_checkpoint(path: Path, missing: str = "missing") -> dict[str, Any]:
    """The checkpoint dict (tensors on CPU). `missing` is the message when the file does not exist."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, missing) from None
    except Exception as exc:  # pickle refusing foreign objects, truncation, not a torch file at all
        raise CheckpointError(path, f"not a checkpoint this pipeline wrote ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(path, f"not a checkpoint this pipeline wrote (a {type(checkpoint).__name__})")
    return checkpoint
