"""Fixed-length windows of cached frame features, sliced from per-video arrays held in RAM.

Temporal models train on windows of W consecutive frames. A zarr read costs
~1 ms, so each video's whole array is read once (`load_videos`) and every
window is a numpy slice of it. The dataset holds only numpy arrays and a
precomputed index table (video, start), so it pickles cheaply into DataLoader
workers (fork or spawn) and nothing zarr-related ever crosses a process
boundary; `__getitem__` does no search, only two lookups and a slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline_lib.features.store import FeatureStore

__all__ = ["VideoArrays", "WindowDataset", "load_videos", "window_starts"]


@dataclass(frozen=True, eq=False)
class VideoArrays:
    """One video in memory: features (T, D) float16/float32, valid (T,) bool (a face was there),
    labels (T, L) float32 in any layout, label_mask (T, L) bool (which label entries count)."""

    name: str
    features: np.ndarray
    valid: np.ndarray
    labels: np.ndarray
    label_mask: np.ndarray

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.dtype not in (np.float16, np.float32):
            raise ValueError(f"{self.name}: features must be float16/float32 (T, D), got "
                             f"{self.features.dtype.name}{self.features.shape}")
        t = len(self.features)
        if self.valid.shape != (t,) or self.valid.dtype != np.bool_:
            raise ValueError(f"{self.name}: valid must be bool ({t},), got {self.valid.dtype.name}{self.valid.shape}")
        if self.labels.ndim != 2 or len(self.labels) != t or self.labels.dtype != np.float32:
            raise ValueError(f"{self.name}: labels must be float32 ({t}, L), got "
                             f"{self.labels.dtype.name}{self.labels.shape}")
        if self.label_mask.shape != self.labels.shape or self.label_mask.dtype != np.bool_:
            raise ValueError(f"{self.name}: label_mask must be bool {self.labels.shape}, got "
                             f"{self.label_mask.dtype.name}{self.label_mask.shape}")

    @property
    def n_frames(self) -> int:
        return len(self.features)


def window_starts(n_frames: int, window: int, stride: int, pad: bool = True) -> np.ndarray:
    """Start frames (n,) int64 of the windows covering a video of `n_frames`.

    0, stride, 2*stride, ... while a window fits, plus one window shifted back
    to end exactly at T when the regular ones leave a tail uncovered; a video
    shorter than `window` gives one start (0, to be padded) when `pad`, else none.
    """
    if n_frames <= 0 or (n_frames < window and not pad):
        return np.zeros(0, np.int64)
    if n_frames < window:
        return np.zeros(1, np.int64)
    starts = np.arange(0, n_frames - window + 1, stride, dtype=np.int64)
    if starts[-1] + window < n_frames:
        starts = np.append(starts, n_frames - window)
    return starts


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Windows of `window` frames over in-memory videos, as dicts of tensors (see `__getitem__`)."""

    def __init__(self, videos: Sequence[VideoArrays], window: int, stride: int | None = None,
                 pad: bool = True) -> None:
        stride = window if stride is None else stride
        if window < 1 or stride < 1:
            raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
        self.videos = list(videos)
        self.window, self.stride, self.pad = window, stride, pad
        if self.videos:
            widths = {(v.features.shape[1], v.labels.shape[1]) for v in self.videos}
            if len(widths) > 1:
                raise ValueError(f"videos differ in (feature, label) widths {sorted(widths)}: windows cannot batch")
        per_video = [window_starts(v.n_frames, window, stride, pad) for v in self.videos]
        self.starts = np.concatenate(per_video) if per_video else np.zeros(0, np.int64)  # (N,)
        self.video_ids = (np.repeat(np.arange(len(per_video), dtype=np.int64), [len(s) for s in per_video])
                          if per_video else np.zeros(0, np.int64))  # (N,)
        self._offsets = np.arange(window, dtype=np.int64)  # (W,)

    def __len__(self) -> int:
        return len(self.starts)

    def labelled(self) -> list[int]:
        """Indices of the windows holding at least one label entry (a window without one teaches nothing)."""
        return [i for i, (k, s) in enumerate(zip(self.video_ids, self.starts, strict=True))
                if self.videos[int(k)].label_mask[s:s + self.window].any()]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        """Window i: features (W, D) float32, valid (W,) bool, labels (W, L) float32, label_mask (W, L) bool
        (False on padding and on frames without a face), frames (W,) int64 (-1 on padding), video () int64."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        k, start = int(self.video_ids[i]), int(self.starts[i])
        video, w = self.videos[k], self.window
        stop = min(start + w, video.n_frames)
        n = stop - start  # real frames in this window; the rest (W - n) is padding
        frames = start + self._offsets  # (W,)
        valid = video.valid[start:stop]  # (n,)
        label_mask = video.label_mask[start:stop] & valid[:, None]  # (n, L)
        features = video.features[start:stop].astype(np.float32)  # (n, D)
        labels = video.labels[start:stop]  # (n, L)
        if n < w:
            frames = np.where(frames < stop, frames, -1)
            valid = np.concatenate([valid, np.zeros(w - n, bool)])
            label_mask = np.concatenate([label_mask, np.zeros((w - n, label_mask.shape[1]), bool)])
            features = np.concatenate([features, np.zeros((w - n, features.shape[1]), np.float32)])
            labels = np.concatenate([labels, np.zeros((w - n, labels.shape[1]), np.float32)])
        return {"features": torch.from_numpy(features), "valid": torch.from_numpy(np.array(valid)),
                "labels": torch.from_numpy(np.array(labels)), "label_mask": torch.from_numpy(label_mask),
                "frames": torch.from_numpy(frames), "video": torch.tensor(k, dtype=torch.int64)}


def load_videos(store: FeatureStore, extractor: str, names: Sequence[str],
                labels_for: Callable[[str, int], tuple[np.ndarray, np.ndarray]]) -> list[VideoArrays]:
    """Read each video's features once into RAM and pair them with `labels_for(name, T)` -> (labels (T, L),
    mask (T, L))."""
    videos = []
    for name in names:
        features, valid = store.read(extractor, name)  # (T, D) float16, (T,) bool
        labels, label_mask = labels_for(name, len(features))
        videos.append(VideoArrays(name, features, valid, np.asarray(labels, np.float32),
                                  np.asarray(label_mask, bool)))
    return videos
