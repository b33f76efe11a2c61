"""Aligned face frames from the face stores as a torch Dataset, for self-supervised pretraining.

Only the index (which store, which frame) is built up front; crops are read
one frame (one HDF5 chunk) at a time, from a file handle opened lazily in
whichever process asks, so spawned DataLoader workers each open their own and
nothing HDF5-related is shared across processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline_lib.faces.store import open_face_store

__all__ = ["FaceFrames", "face_augmentation"]

_TRACK = ("present", "filled")  # the per-frame arrays the index is built from


class FaceFrames(Dataset[torch.Tensor]):
    """Every `frame_stride`-th detected (present, not filled) face of each store, as (3, S, S) tensors."""

    def __init__(self, stores: Sequence[Path], frame_stride: int = 1,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.stores = [Path(p) for p in stores]
        self.transform = transform
        store_ids, frames = [], []
        for k, path in enumerate(self.stores):
            with open_face_store(path) as h5:
                info = {name: h5[name][...] for name in _TRACK}
            usable = np.flatnonzero(info["present"] & ~info["filled"])[::frame_stride]  # (n,)
            store_ids.append(np.full(len(usable), k, np.int32))
            frames.append(usable.astype(np.int64))
        self.store_ids = np.concatenate(store_ids) if store_ids else np.zeros(0, np.int32)  # (N,)
        self.frames = np.concatenate(frames) if frames else np.zeros(0, np.int64)  # (N,)
        self._handles: dict[int, h5py.File] = {}
        self._pid = -1

    def __len__(self) -> int:
        return len(self.frames)

    def _crops(self, k: int) -> h5py.Dataset:
        if self._pid != os.getpid():  # first use in this process (or a forked copy): open afresh
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            self._handles[k] = open_face_store(self.stores[k])
        return self._handles[k]["crops"]

    def crop(self, i: int) -> np.ndarray:
        """The raw aligned crop (S, S, 3) uint8 of item i."""
        return self._crops(int(self.store_ids[i]))[int(self.frames[i])]

    def __getitem__(self, i: int) -> torch.Tensor:
        image = torch.from_numpy(np.ascontiguousarray(self.crop(i))).permute(2, 0, 1)  # (3, S, S) uint8
        return self.transform(image) if self.transform is not None else image

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, -1  # file handles never cross process boundaries
        return state


def face_augmentation(size: int, crop_scale_min: float, flip: bool, color_jitter: float,
                      mean: Sequence[float], std: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (3, S, S) -> normalised float (3, size, size), with augmentations that keep a face a face.

    Crops stay near-square and large (the face is already aligned), flips are
    horizontal only, colour jitter is mild: pretraining should learn faces, not
    undo the alignment.
    """
    from torchvision.transforms import v2

    steps: list[torch.nn.Module] = [v2.RandomResizedCrop(size, scale=(crop_scale_min, 1.0), ratio=(0.9, 1.1),
                                                         antialias=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)
