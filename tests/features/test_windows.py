"""Window datasets: exact index tables, padding and masks, labels in step, same batches with spawned workers."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays, WindowDataset, load_videos, window_starts


def _video(name: str, t: int, d: int = 3, n_labels: int = 2) -> VideoArrays:
    """Features and labels encode the frame index, so any misalignment shows."""
    frames = np.arange(t, dtype=np.float32)
    features = np.repeat(frames[:, None], d, axis=1).astype(np.float16)  # (T, D)
    labels = np.stack([frames * 10 + j for j in range(n_labels)], axis=1).astype(np.float32)  # (T, L)
    valid = np.ones(t, bool)
    valid[t // 2:t // 2 + 1] = False
    label_mask = np.ones((t, n_labels), bool)
    label_mask[:, 1] = frames % 2 == 0
    return VideoArrays(name, features, valid, labels, label_mask)


def test_index_table_for_t10_window4():
    data = WindowDataset([_video("a", 10)], window=4)
    np.testing.assert_array_equal(data.starts, [0, 4, 6])  # last window shifted back to end at T
    np.testing.assert_array_equal(data.video_ids, [0, 0, 0])
    np.testing.assert_array_equal(WindowDataset([_video("a", 10)], window=4, stride=2).starts, [0, 2, 4, 6])
    np.testing.assert_array_equal(WindowDataset([_video("a", 10)], window=3, stride=4).starts, [0, 4, 7])
    np.testing.assert_array_equal(window_starts(4, 4, 4), [0])
    assert len(window_starts(0, 4, 4)) == 0


def test_windows_slice_features_labels_and_masks_in_step():
    video = _video("a", 10)
    item = WindowDataset([video], window=4)[2]  # start 6
    np.testing.assert_array_equal(item["frames"], [6, 7, 8, 9])
    assert item["features"].dtype == torch.float32 and item["features"].shape == (4, 3)
    np.testing.assert_array_equal(item["features"][:, 0], [6, 7, 8, 9])
    np.testing.assert_array_equal(item["labels"], video.labels[6:10])
    np.testing.assert_array_equal(item["label_mask"], video.label_mask[6:10])
    assert item["video"].dtype == torch.int64 and int(item["video"]) == 0
    middle = WindowDataset([video], window=4)[1]  # frames 4..7; frame 5 has no face
    np.testing.assert_array_equal(middle["valid"], [True, False, True, True])
    np.testing.assert_array_equal(middle["label_mask"][:, 0], [True, False, True, True])
    np.testing.assert_array_equal(middle["label_mask"][:, 1], [True, False, True, False])


def test_short_video_is_padded_or_skipped():
    data = WindowDataset([_video("long", 10), _video("short", 3)], window=4)
    np.testing.assert_array_equal(data.video_ids, [0, 0, 0, 1])
    item = data[3]
    np.testing.assert_array_equal(item["frames"], [0, 1, 2, -1])
    np.testing.assert_array_equal(item["features"][:, 0], [0, 1, 2, 0])
    np.testing.assert_array_equal(item["valid"], [True, False, True, False])
    assert not item["label_mask"][3].any() and not item["labels"][3].any()
    assert int(item["video"]) == 1
    skipped = WindowDataset([_video("long", 10), _video("short", 3)], window=4, pad=False)
    np.testing.assert_array_equal(skipped.video_ids, [0, 0, 0])
    with pytest.raises(IndexError):
        skipped[3]


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="labels"):
        VideoArrays("v", np.zeros((4, 2), np.float16), np.ones(4, bool), np.zeros((3, 2), np.float32),
                    np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="widths"):
        WindowDataset([_video("a", 5, d=3), _video("b", 5, d=4)], window=2)


def test_load_videos_reads_the_store_once_per_video(tmp_path: Path):
    store = FeatureStore(tmp_path / "features.zarr")
    for name, t in (("a", 6), ("b", 2)):
        store.write("mae", name, np.ones((t, 3), np.float32), np.ones(t, bool), {"v": 1})
    asked = []

    def labels_for(name: str, t: int) -> tuple[np.ndarray, np.ndarray]:
        asked.append((name, t))
        return np.zeros((t, 15), np.float32), np.ones((t, 15), bool)

    videos = load_videos(store, "mae", ["a", "b"], labels_for)
    assert asked == [("a", 6), ("b", 2)]
    assert [v.features.dtype for v in videos] == [np.float16, np.float16]
    assert len(WindowDataset(videos, window=4)) == 3  # a: starts 0, 2; b: padded


def test_spawned_workers_give_the_same_batches():
    data = WindowDataset([_video("a", 10), _video("b", 3), _video("c", 7)], window=4, stride=2)
    serial = list(DataLoader(data, batch_size=3))
    parallel = list(DataLoader(data, batch_size=3, num_workers=2, multiprocessing_context="spawn"))
    assert len(serial) == len(parallel) == 3
    for one, other in zip(serial, parallel):
        assert one.keys() == other.keys()
        for key in one:
            assert torch.equal(one[key], other[key]), key
