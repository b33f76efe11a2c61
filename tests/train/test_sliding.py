"""Sliding-window inference: every frame gets exactly one output row, averaged over the windows holding it."""

import numpy as np
import pytest
import torch

from pipeline_lib.train.sliding import sliding_predict


def _recorder(calls: list):
    """A forward whose output at each position is the frame index it saw (features hold the index)."""
    def forward(x, mask):
        calls.append(mask.clone())
        return x[..., :1], x[..., :1] * 2  # (B, W, 1), (B, W, 1)
    return forward


@pytest.mark.parametrize("n, window, stride", [(10, 4, 2), (10, 4, 3), (3, 8, 4), (8, 8, 4), (1, 5, 2), (17, 6, 6)])
def test_every_frame_exactly_once(n, window, stride):
    features = np.arange(n, dtype=np.float32)[:, None].repeat(3, 1)  # (T, 3): frame index
    calls: list = []
    outputs, hidden = sliding_predict(_recorder(calls), features, np.ones(n, bool), window, stride, batch_size=2)
    assert outputs.shape == (n, 1) and hidden.shape == (n, 1)
    # averaging copies of the frame's own value gives it back: each row came from that frame, and only it
    assert outputs[:, 0].tolist() == list(range(n)) and hidden[:, 0].tolist() == [2 * i for i in range(n)]
    shown = torch.cat(calls)  # (S, W)
    assert shown.shape[1] == window and int(shown.sum()) >= n
    if n < window:  # one padded window, padding masked
        assert shown.shape[0] == 1 and shown[0].tolist() == [True] * n + [False] * (window - n)


def test_overlaps_are_averaged_and_face_less_frames_masked():
    seen = {}

    def forward(x, mask):  # output = start frame of the window, so overlaps average different values
        out = x[:, :1, :1].expand(-1, x.shape[1], 1).clone()
        for row in range(x.shape[0]):
            seen[int(x[row, 0, 0])] = mask[row].tolist()
        return out, out
    features = np.arange(6, dtype=np.float32)[:, None]
    valid = np.array([True, True, False, True, True, True])
    outputs, _ = sliding_predict(forward, features, valid, window=4, stride=2)
    # windows start at 0 and 2: frames 0-1 only in the first, 4-5 only in the second, 2-3 in both
    assert outputs[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert seen[0] == [True, True, False, True] and seen[2] == [False, True, True, True]


def test_empty_video_is_refused():
    with pytest.raises(ValueError, match="0 frames"):
        sliding_predict(_recorder([]), np.zeros((0, 3), np.float32), np.zeros(0, bool), 4)
