"""Weights-only checkpoints: written atomically, read without unpickling anything but tensors and plain values.

Every trained model of the pipeline (MAE, temporal, fusion, compound) goes
through `write_checkpoint` and `read_checkpoint`, so a foreign or tampered file fails the same way
everywhere: a `CheckpointError` naming the file, never code run on load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from pipeline_lib.data.errors import CheckpointError
from pipeline_lib.files import atomic_path

__all__ = ["from_spec", "read_checkpoint", "rebuild", "save_spec_model", "write_checkpoint"]

M = TypeVar("M", bound=nn.Module)


def write_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """torch.save to a hidden partial file, then rename: a crash never leaves a half file under `path`."""
    with atomic_path(path) as partial:
        torch.save(checkpoint, partial)


def read_checkpoint(path: Path, missing: str = "missing") -> dict[str, Any]:
    """The checkpoint dict (tensors on CPU). `missing` is the message when the file does not exist."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, missing) from None
    except Exception as exc:  # pickle refusing foreign objects, truncation, not a torch file at all
        raise CheckpointError(path, f"not a checkpoint this pipeline wrote ({_load_failure(exc)})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(path, f"not a checkpoint this pipeline wrote (a {type(checkpoint).__name__})")
    return checkpoint


# Lines of torch's weights-only refusal that are advice, not the reason (one of them suggests loading unsafely).
_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation", "WeightsUnpickler error:")


def _load_failure(exc: Exception) -> str:
    """Why torch.load failed, in one line: for the weights-only unpickler, what it refused to build."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith(_ADVICE[0]):
        refused = [line for line in lines if not line.startswith(_ADVICE)]
        return f"refused by the weights-only unpickler: {refused[0][:200] if refused else 'unsupported content'}"
    if isinstance(exc, EOFError):
        return "the file ends early: empty or truncated"
    return f"{type(exc).__name__}: {lines[0].split('. ')[0][:200]}" if lines else type(exc).__name__


def save_spec_model(path: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """A model that carries its constructor arguments in `.spec`: weights, spec and plain metadata."""
    write_checkpoint(path, {"model": model.state_dict(), "spec": model.spec, "meta": meta})


def from_spec(cls: type[M], checkpoint: dict[str, Any]) -> M:
    """`cls(**spec)` with the checkpoint's weights loaded (the counterpart of `save_spec_model`)."""
    model = cls(**checkpoint["spec"])
    model.load_state_dict(checkpoint["model"])
    return model


def rebuild(path: Path, checkpoint: dict[str, Any], kind: str, build: Callable[[dict[str, Any]], M]
            ) -> tuple[M, dict[str, Any]]:
    """`build(checkpoint)` in eval mode and the checkpoint's metadata; a checkpoint of another model (missing
    keys, wrong shapes) raises CheckpointError naming `kind`."""
    try:
        model = build(checkpoint)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"not a {kind} checkpoint ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:160]})") from None
    return model.eval(), dict(checkpoint.get("meta", {}))
