"""The device plumbing guard: every module of a model gets its tensor inputs on its own weights' device.

Models go to the `meta` device (shapes only, no memory, no GPU needed); a forward pre-hook on every module
compares each tensor input's device with that module's parameters'. A bare `meta` convolution does not check
devices by itself, so without the hooks a CPU input would pass unseen. Code that then copies a result out
(`.cpu().numpy()`) fails on meta tensors after the model ran; the record is complete by then.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class DeviceRecord:
    calls: int = 0  # forwards of modules with weights: 0 means the model was never reached
    problems: list[str] = field(default_factory=list)


@contextmanager
def device_checked(model: torch.nn.Module) -> Iterator[DeviceRecord]:
    record = DeviceRecord()

    def check(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        weights = next(module.parameters(recurse=False), None)
        if weights is None:
            return
        record.calls += 1
        for value in (*args, *kwargs.values()):
            if isinstance(value, torch.Tensor) and value.device != weights.device:
                record.problems.append(f"{type(module).__name__}: input on {value.device}, weights on "
                                       f"{weights.device}")

    handles = [m.register_forward_pre_hook(check, with_kwargs=True) for m in model.modules()]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()
