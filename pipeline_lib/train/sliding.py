"""Whole-video inference with overlapping sliding windows, averaged per frame.

A temporal model sees `window` frames at a time. To predict a video of any
length, windows start every `stride` frames (plus one flush with the end, see
`window_starts`), a video shorter than the window is one padded window, and
each frame's output is the mean over the windows that hold it. Every frame of
the video gets exactly one output row, padding none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline_lib.features.windows import VideoArrays, window_starts
from pipeline_lib.models.task_network import TaskNetwork, activate

__all__ = ["predict_videos", "sliding_predict"]


def sliding_predict(forward: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                    features: np.ndarray, valid: np.ndarray, window: int, stride: int | None = None,
                    batch_size: int = 64, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(outputs (T, O) float32, hidden (T, H) float32) of one video.

    forward(features (B, W, D), mask (B, W) bool) -> (outputs (B, W, O), hidden (B, W, H)), called under
    inference mode. `stride` defaults to window // 2 (each frame seen by about two windows).
    """
    n = len(features)
    if n == 0:
        raise ValueError("cannot predict a video of 0 frames")
    stride = max(1, window // 2) if stride is None else stride
    starts = window_starts(n, window, stride, pad=True)  # (S,)
    offsets = np.arange(window)  # (W,)
    frames = starts[:, None] + offsets[None]  # (S, W)
    real = frames < n  # (S, W): False on the padding of a short video
    frames = np.minimum(frames, n - 1)
    x_all = torch.from_numpy(np.asarray(features, np.float32))  # (T, D)
    m_all = torch.from_numpy(np.asarray(valid, bool))  # (T,)
    out_sum: torch.Tensor | None = None
    hid_sum: torch.Tensor | None = None
    counts = np.bincount(frames[real], minlength=n).astype(np.float32)  # (T,) windows covering each frame
    with torch.inference_mode():
        for b in range(0, len(starts), batch_size):
            idx = torch.from_numpy(frames[b:b + batch_size])  # (b, W)
            keep = torch.from_numpy(real[b:b + batch_size])  # (b, W)
            x = x_all[idx].to(device)  # (b, W, D)
            mask = (m_all[idx] & keep).to(device)  # (b, W)
            outputs, hidden = forward(x, mask)  # (b, W, O), (b, W, H)
            outputs, hidden = outputs.float().cpu(), hidden.float().cpu()
            if out_sum is None or hid_sum is None:
                out_sum = torch.zeros(n, outputs.shape[-1])
                hid_sum = torch.zeros(n, hidden.shape[-1])
            flat = idx[keep]  # (k,) frame of each real window position
            out_sum.index_add_(0, flat, outputs[keep])
            hid_sum.index_add_(0, flat, hidden[keep])
    assert out_sum is not None and hid_sum is not None
    scale = torch.from_numpy(1.0 / counts)[:, None]  # every frame is covered at least once
    return (out_sum * scale).numpy(), (hid_sum * scale).numpy()


def predict_videos(network: TaskNetwork, videos: Sequence[VideoArrays], window: int, device: str = "cpu",
                   batch_size: int = 64, keep: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video (activated outputs (T, O), hidden (T, H)) from overlapping windows; `keep` (e.g. a
    `mapped.Spill`) takes each array as it is made, so only one video's are ever in RAM."""
    network.eval()

    def forward(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, hidden = network(x, mask)
        return activate(network.task, outputs), hidden

    kept = []
    for video in videos:
        outputs, hidden = sliding_predict(forward, video.features, video.valid, window, batch_size=batch_size,
                                          device=device)
        kept.append((keep(outputs), keep(hidden)) if keep else (outputs, hidden))
    return kept
