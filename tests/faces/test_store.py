"""HDF5 face store: lossless round trip, atomic writes, resume by provenance."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline_lib.faces.store import FaceTrack, StoredCrops, is_complete, read_faces, read_provenance, write_faces
from pipeline_lib.files import file_sha256


def _track(t: int = 4, size: int = 112) -> FaceTrack:
    rng = np.random.default_rng(0)
    present = np.array([True, False, True, True][:t] + [True] * max(0, t - 4))
    crops = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    crops[~present] = 0
    boxes = rng.uniform(0, 100, (t, 4)).astype(np.float32)
    landmarks = rng.uniform(0, 100, (t, 5, 2)).astype(np.float32)
    boxes[~present], landmarks[~present] = np.nan, np.nan
    scores = np.where(present, 0.99, 0.0).astype(np.float32)
    filled = np.zeros(t, bool)
    filled[min(2, t - 1)] = True
    return FaceTrack(crops, present, filled, boxes, landmarks, scores)


def test_round_trip_is_lossless(tmp_path: Path):
    track = _track()
    write_faces(tmp_path / "v.h5", track, {"source_sha256": "abc", "min_face": 20})
    back = read_faces(tmp_path / "v.h5")
    for name in ("crops", "present", "filled", "boxes", "landmarks", "scores"):
        np.testing.assert_array_equal(getattr(back, name), getattr(track, name))
    assert read_provenance(tmp_path / "v.h5") == {"min_face": 20, "source_sha256": "abc"}
    with h5py.File(tmp_path / "v.h5") as h5:
        assert h5["crops"].chunks == (1, 112, 112, 3)  # one chunk per frame
    assert not list(tmp_path.glob(".*partial"))


def test_zero_frame_video(tmp_path: Path):
    empty = FaceTrack(np.zeros((0, 112, 112, 3), np.uint8), np.zeros(0, bool), np.zeros(0, bool),
                      np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32))
    write_faces(tmp_path / "e.h5", empty, {})
    assert read_faces(tmp_path / "e.h5").n_frames == 0


def test_resume_check_needs_same_provenance_and_a_whole_file(tmp_path: Path):
    path = tmp_path / "v.h5"
    assert not is_complete(path, {"a": 1})
    write_faces(path, _track(), {"a": 1})
    assert is_complete(path, {"a": 1})
    assert not is_complete(path, {"a": 2})
    path.write_bytes(path.read_bytes()[:500])  # truncated on disk
    assert not is_complete(path, {"a": 1})


def test_failed_write_leaves_nothing_that_looks_finished(tmp_path: Path):
    track = _track()
    with pytest.raises(TypeError):
        write_faces(tmp_path / "v.h5", track, {"not json": object()})
    assert list(tmp_path.iterdir()) == []


def test_shape_and_dtype_are_checked():
    track = _track()
    with pytest.raises(ValueError, match=r"FaceTrack\.scores: expected float32\(4,\)"):
        FaceTrack(track.crops, track.present, track.filled, track.boxes, track.landmarks, track.scores[:3])


def test_file_sha256(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_streaming_writer_appends_batches_and_pads_to_the_track_length(tmp_path: Path):
    from pipeline_lib.faces.store import FaceStoreWriter

    track = _track(6)
    with FaceStoreWriter(tmp_path / "v.h5") as writer:
        writer.append(track.crops[:2])
        writer.append(track.crops[2:5])
        assert not (tmp_path / "v.h5").exists()  # nothing visible before the commit
        writer.commit(track.present, track.filled, track.boxes, track.landmarks, track.scores, {"a": 1})
    back = read_faces(tmp_path / "v.h5")
    np.testing.assert_array_equal(back.crops[:5], track.crops[:5])
    assert (back.crops[5] == 0).all() and back.n_frames == 6  # never appended: stored as zeros


def test_streaming_writer_refuses_short_metadata_and_cleans_up(tmp_path: Path):
    from pipeline_lib.faces.store import FaceStoreWriter

    track = _track(4)
    with pytest.raises(ValueError, match="3 frames of metadata for 4 crops"):
        with FaceStoreWriter(tmp_path / "v.h5") as writer:
            writer.append(track.crops)
            writer.commit(track.present[:3], track.filled[:3], track.boxes[:3], track.landmarks[:3],
                          track.scores[:3], {})
    assert list(tmp_path.iterdir()) == []


def test_stored_crops_read_only_the_rows_asked_for_and_stop_at_n_frames(tmp_path: Path):
    track = _track(t=9)
    write_faces(tmp_path / "v.h5", track, {})
    crops = StoredCrops.open(tmp_path / "v.h5", n_frames=7)
    assert len(crops) == 7 and crops.shape == (7, 112, 112, 3)
    np.testing.assert_array_equal(crops[2:5], track.crops[2:5])
    np.testing.assert_array_equal(crops[5:100], track.crops[5:7])  # clipped at n_frames, as an array would be
    np.testing.assert_array_equal(crops[np.array([0, 3, 6])], track.crops[[0, 3, 6]])
    assert crops[np.array([], np.int64)].shape == (0, 112, 112, 3)
    assert StoredCrops.open(tmp_path / "v.h5").shape[0] == 9 == StoredCrops.open(tmp_path / "v.h5", 50).shape[0]
    for bad in (np.array([3, 1]), np.array([7]), np.array([-1, 2])):
        with pytest.raises(IndexError):
            crops[bad]
    with pytest.raises(IndexError):
        crops[::2]
