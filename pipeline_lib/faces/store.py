"""The per-video HDF5 face store (DESIGN.md section 3): crops, presence, boxes, landmarks, scores.

One file per video subject, `data/faces/<video>.h5`, written by exactly one
writer into a temporary name and renamed when complete, so a run killed
mid-video leaves no file that looks finished, and a re-run skips exactly the
videos whose file exists with the same provenance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from pipeline_lib.data.errors import DataError
from pipeline_lib.faces.align import CROP_SIZE
from pipeline_lib.files import partial_path

__all__ = ["FORMAT_VERSION", "FaceStoreWriter", "FaceTrack", "StoredCrops", "is_complete", "open_face_store",
           "read_faces", "read_provenance", "read_report", "read_track_info", "write_faces"]

FORMAT_VERSION: Final[int] = 1
_PROVENANCE: Final[str] = "provenance"  # attrs key holding the JSON provenance
_REPORT: Final[str] = "report"  # attrs key holding the JSON report of the run that wrote the file


@dataclass(frozen=True, eq=False)
class FaceTrack:
    """One subject's faces over a video of T frames.

    crops (T, S, S, 3) uint8, zero where absent; present (T,) bool; filled (T,)
    bool, frames whose face was carried over from neighbours; boxes (T, 4)
    float32 [x0, y0, x1, y1] and landmarks (T, 5, 2) float32 in frame pixels,
    NaN where absent; scores (T,) float32 detector confidence, 0 where absent.
    """

    crops: np.ndarray
    present: np.ndarray
    filled: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        t = len(self.present)
        size = self.crops.shape[1] if self.crops.ndim == 4 else CROP_SIZE
        expected = {
            "crops": (self.crops, (t, size, size, 3), np.uint8),
            "present": (self.present, (t,), np.bool_),
            "filled": (self.filled, (t,), np.bool_),
            "boxes": (self.boxes, (t, 4), np.float32),
            "landmarks": (self.landmarks, (t, 5, 2), np.float32),
            "scores": (self.scores, (t,), np.float32),
        }
        for name, (array, shape, dtype) in expected.items():
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"FaceTrack.{name}: expected {np.dtype(dtype).name}{shape}, got "
                                 f"{array.dtype.name}{array.shape}")

    @property
    def n_frames(self) -> int:
        return len(self.present)


class FaceStoreWriter:
    """Streams one subject's faces into `path`, frame batches at a time, then commits atomically.

    Crops go straight to a temporary file as they are aligned, so memory holds
    one batch, never the video; the small per-frame arrays (presence, boxes,
    landmarks, scores) come at `commit`, which pads the crops with zero frames
    up to the track length and renames the file into place. Leaving the `with`
    block on an exception, or calling `abort`, removes the temporary file.
    """

    def __init__(self, path: Path, crop_size: int = CROP_SIZE) -> None:
        self.path, self.crop_size = path, crop_size
        path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = partial_path(path)
        self._h5: h5py.File | None = h5py.File(self._partial, "w")
        # One chunk per frame: readers slice frames; lzf is fast and ships with h5py.
        # Unwritten frames read as the fill value 0, which is what an absent face stores.
        self._crops = self._h5.create_dataset("crops", shape=(0, crop_size, crop_size, 3),
                                              maxshape=(None, crop_size, crop_size, 3), dtype=np.uint8,
                                              chunks=(1, crop_size, crop_size, 3), compression="lzf", fillvalue=0)
        self.n_written = 0

    def __enter__(self) -> FaceStoreWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

    def append(self, crops: np.ndarray) -> None:
        """Add the next frames' crops, (N, S, S, 3) uint8 (zeros where absent)."""
        assert crops.dtype == np.uint8 and crops.shape[1:] == (self.crop_size, self.crop_size, 3), crops.shape
        start = self.n_written
        self._crops.resize(start + len(crops), axis=0)
        self._crops[start:] = crops
        self.n_written += len(crops)

    def read_crop(self, t: int) -> np.ndarray:
        return self._crops[t]

    def write_crop(self, t: int, crop: np.ndarray) -> None:
        self._crops[t] = crop

    def commit(self, present: np.ndarray, filled: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray,
               scores: np.ndarray, provenance: Mapping[str, Any], report: Mapping[str, Any] | None = None) -> None:
        """Write the per-frame arrays (T frames, T >= frames appended) and move the file into place.

        `report` (JSON-able) is kept beside the provenance so a resumed run can
        still report on videos it skips.
        """
        assert self._h5 is not None, "writer already closed"
        if len(present) < self.n_written:
            raise ValueError(f"{len(present)} frames of metadata for {self.n_written} crops")
        try:
            self._crops.resize(len(present), axis=0)
            for name, array in (("present", present), ("filled", filled), ("boxes", boxes),
                                ("landmarks", landmarks), ("scores", scores)):
                self._h5.create_dataset(name, data=array)
            self._h5.attrs["format_version"] = FORMAT_VERSION
            self._h5.attrs[_PROVENANCE] = json.dumps(dict(provenance), sort_keys=True)
            self._h5.attrs[_REPORT] = json.dumps(dict(report or {}), sort_keys=True)
            self._h5.close()
            self._h5 = None
            os.replace(self._partial, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        self._partial.unlink(missing_ok=True)


def write_faces(path: Path, track: FaceTrack, provenance: Mapping[str, Any]) -> None:
    """Write a whole in-memory `track` to `path` atomically; `provenance` (JSON-able) goes into the attrs."""
    with FaceStoreWriter(path, track.crops.shape[1]) as writer:
        writer.append(track.crops)
        writer.commit(track.present, track.filled, track.boxes, track.landmarks, track.scores, provenance)


@dataclass(frozen=True)
class StoredCrops:
    """A face store's first `shape[0]` aligned crops (T, S, S, 3) uint8, read from the file only where indexed.

    A whole video's crops are 37.6 KB a frame (about 105 GB for Aff-Wild2), so stages that sample frames from
    every video index this instead of holding them: `crops[a:b]` reads those rows, `crops[rows]` (increasing
    row numbers) those frames, each call one short open of the file.
    """

    path: Path
    shape: tuple[int, int, int, int]

    @classmethod
    def open(cls, path: Path, n_frames: int | None = None) -> StoredCrops:
        with open_face_store(path) as h5:
            shape = h5["crops"].shape
        n = shape[0] if n_frames is None else min(n_frames, shape[0])
        return cls(Path(path), (n, *shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("StoredCrops slices take a step of 1")
            key = slice(start, max(start, stop))
        else:
            key = np.asarray(key)
            if key.ndim != 1 or (len(key) and (key[0] < 0 or key[-1] >= len(self) or (np.diff(key) <= 0).any())):
                raise IndexError(f"StoredCrops takes increasing row numbers in [0, {len(self)})")
        with open_face_store(self.path) as h5:
            values: np.ndarray = h5["crops"][key]
        return values


def open_face_store(path: Path) -> h5py.File:
    """A face store opened read-only; a truncated or foreign file raises DataError naming it."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(path, f"unreadable face store ({reason}); re-run `abaw faces` to rebuild it") from None


def read_provenance(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs[_PROVENANCE])


def is_complete(path: Path, provenance: Mapping[str, Any]) -> bool:
    """True when `path` is a finished store written with exactly this provenance (resume check)."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as h5:
            return (int(h5.attrs.get("format_version", -1)) == FORMAT_VERSION
                    and json.loads(h5.attrs[_PROVENANCE]) == json.loads(json.dumps(dict(provenance), sort_keys=True)))
    except (OSError, KeyError, ValueError):  # truncated or foreign file: redo it
        return False


def read_report(path: Path) -> dict[str, Any]:
    """The report stored by the run that wrote `path` ({} when it stored none)."""
    with h5py.File(path, "r") as h5:
        return json.loads(h5.attrs.get(_REPORT, "{}"))


def read_track_info(path: Path) -> dict[str, np.ndarray]:
    """The per-frame arrays (present, filled, boxes, landmarks, scores) without the crops: cheap, for metrics."""
    with h5py.File(path, "r") as h5:
        return {name: h5[name][...] for name in ("present", "filled", "boxes", "landmarks", "scores")}


def read_faces(path: Path) -> FaceTrack:
    """Load a whole face track into memory."""
    with h5py.File(path, "r") as h5:
        return FaceTrack(**{name: h5[name][...] for name in
                            ("crops", "present", "filled", "boxes", "landmarks", "scores")})
