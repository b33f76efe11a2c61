"""The zarr feature store (DESIGN.md section 3, a contract): cached per-frame features, one array per video.

`data/features.zarr` (zarr v3) holds one group per extractor and, per video,
`<extractor>/<video>` float16 (T, D) plus `<extractor>/<video>.valid` bool (T,).
Each features array is ONE shard (inner chunks inside it), so one video is one
file with one writer: sharded runs (`--shard i/n`) write disjoint videos and
never touch each other's files. Two processes writing one sharded array lose
data, which is why the unit of work is the whole video.

A write is only finished when `attrs["complete"]` is set, and that happens
last, after the data and the provenance: a run killed mid-video leaves an
array that is neither listed nor current, and the next run rebuilds it. The
same last step stores a checksum of the data (`attrs["sha256"]`), checked on
every read: a shard truncated or overwritten on disk would otherwise read as
zeros (zarr's fill value) without a word; instead it raises
`DamagedFeaturesError` naming the array, and is not current, so the next
`abaw features` rebuilds it.
Readers take a whole video into RAM at once (a zarr read costs ~1 ms, so
windows are sliced from memory, never from the store).

The store opens lazily and pickles as its path alone, so it can be handed to
spawned workers, each opening its own handle.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, cast

import numpy as np
import zarr

from pipeline_lib.data.errors import DataError

__all__ = ["DamagedFeaturesError", "FeatureStore", "FeatureStoreError", "features_digest", "shard_layout"]

VALID_SUFFIX: Final[str] = ".valid"  # `<video>.valid` sits beside `<video>`
_PROVENANCE: Final[str] = "provenance"  # attrs key holding the JSON provenance mapping
_COMPLETE: Final[str] = "complete"  # attrs key set to True as the very last step of a write
_CHECKSUM: Final[str] = "sha256"  # attrs key: digest of the stored features and validity, set with `complete`
CHUNK_ROWS: Final[int] = 256  # at most this many frames per inner chunk


class FeatureStoreError(LookupError):
    """A video (or extractor, or the store itself) asked for is missing or unfinished."""


class DamagedFeaturesError(DataError):
    """A finished array whose bytes no longer decode, or no longer match the checksum written with them."""


def _checksum(features: np.ndarray, valid: np.ndarray) -> str:
    """Digest of features (T, D) float16 and valid (T,) bool as stored, shape included."""
    digest = hashlib.sha256(repr((features.shape, valid.shape)).encode())
    digest.update(np.ascontiguousarray(features, dtype=np.float16).tobytes())
    digest.update(np.ascontiguousarray(valid, dtype=bool).tobytes())
    return digest.hexdigest()


def _normalise(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON form of `provenance` (tuples become lists, keys sorted), as stored and compared."""
    return json.loads(json.dumps(dict(provenance), sort_keys=True, allow_nan=False))


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"bad {kind} name {name!r}: must be non-empty, without '/', not starting with '.'")
    if kind == "video" and name.endswith(VALID_SUFFIX):
        raise ValueError(f"bad video name {name!r}: '{VALID_SUFFIX}' is reserved for the validity arrays")


def shard_layout(n_frames: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(inner chunk shape, shard shape) so that a (n_frames, width) array is exactly one shard.

    zarr needs the shard to be a whole number of chunks, so chunks are balanced
    (n chunks of ceil(T / n) rows, n = ceil(T / CHUNK_ROWS)) and the shard is
    n chunks: equal to the array when n divides T, else a few rows longer
    (those rows are never written; the shard file stays the only one).
    """
    width = max(width, 1)
    if n_frames == 0:
        return (1, width), (1, width)
    n_chunks = -(-n_frames // CHUNK_ROWS)
    rows = -(-n_frames // n_chunks)
    return (rows, width), (rows * n_chunks, width)


class FeatureStore:
    """`data/features.zarr`: write, check, list, read and delete per-video feature arrays."""

    def __init__(self, path: Path, mode: Literal["r", "a"] = "a") -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        self.path, self.mode = Path(path), mode
        self._root: zarr.Group | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, mode={self.mode!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode}  # never a zarr handle across processes

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["mode"])  # type: ignore[misc]

    # --- opening -----------------------------------------------------------------------------------

    def _group(self, create: bool = False) -> zarr.Group | None:
        """The root group, opened on first use in this process; None when absent and not `create`."""
        if self._root is None or self._pid != os.getpid():
            self._root, self._pid = None, os.getpid()
            if not create and not (self.path / "zarr.json").is_file():
                return None  # nothing written yet: read as empty, create on first write
            self._root = zarr.open_group(self.path, mode="r" if self.mode == "r" else "a", zarr_format=3)
        return self._root

    def _extractor(self, extractor: str, create: bool = False) -> zarr.Group | None:
        _check_name("extractor", extractor)
        root = self._group(create)
        if root is None:
            return None
        if create:
            return root.require_group(extractor)
        try:
            node = root[extractor]
        except KeyError:
            return None
        return node if isinstance(node, zarr.Group) else None

    def _array(self, extractor: str, video: str) -> zarr.Array | None:
        """The features array of `video`, finished or not; None when absent."""
        _check_name("video", video)
        group = self._extractor(extractor)
        if group is None:
            return None
        try:
            node = group[video]
        except KeyError:
            return None
        return node if isinstance(node, zarr.Array) else None

    def _finished(self, extractor: str, video: str) -> zarr.Array:
        array = self._array(extractor, video)
        if array is None:
            raise FeatureStoreError(f"no features for video {video!r} of extractor {extractor!r} in {self.path}")
        if array.attrs.get(_COMPLETE) is not True:
            raise FeatureStoreError(f"features for video {video!r} of extractor {extractor!r} in {self.path} "
                                    "are unfinished (an interrupted write): rebuild them")
        return array

    # --- writing -----------------------------------------------------------------------------------

    def write(self, extractor: str, video: str, features: np.ndarray, valid: np.ndarray,
              provenance: Mapping[str, Any]) -> None:
        """Replace `<extractor>/<video>` with `features` (T, D) (stored float16, invalid rows zeroed) and `valid` (T,).

        Whatever was there before is dropped first (a different provenance may
        also change T or D), and `complete` is set last.
        """
        if self.mode == "r":
            raise PermissionError(f"{self} is read-only")
        _check_name("extractor", extractor)
        _check_name("video", video)
        if features.ndim != 2 or valid.shape != (len(features),):
            raise ValueError(f"features must be (T, D) and valid (T,), got {features.shape} and {valid.shape}")
        provenance = _normalise(provenance)  # fails on non-JSON values before anything is touched
        valid = np.asarray(valid, dtype=bool)  # (T,)
        with np.errstate(over="ignore"):  # overflow becomes inf, rejected just below with a clearer message
            stored = np.where(valid[:, None], features, 0).astype(np.float16)  # (T, D)
        if not np.isfinite(stored).all():
            raise ValueError(f"features of {extractor}/{video} are not finite in float16 (NaN, or beyond ±65504)")
        group = self._extractor(extractor, create=True)
        assert group is not None
        n_frames, width = stored.shape
        chunks, shards = shard_layout(n_frames, width)
        # overwrite=True removes the old array (and its complete mark) before anything new exists.
        array = group.create_array(video, shape=stored.shape, dtype=np.float16, chunks=chunks, shards=shards,
                                   fill_value=0, overwrite=True,
                                   attributes={_PROVENANCE: provenance, _COMPLETE: False})
        group.create_array(video + VALID_SUFFIX, shape=valid.shape, dtype=bool, chunks=(max(n_frames, 1),),
                           fill_value=False, overwrite=True)[...] = valid
        if n_frames:
            array[...] = stored
        # Last, in one metadata write: only now does the video count as written.
        array.update_attributes({_CHECKSUM: _checksum(stored, valid), _COMPLETE: True})

    def delete(self, extractor: str, video: str) -> None:
        """Remove a video's arrays (the features array, holding the complete mark, first); absent is fine."""
        if self.mode == "r":
            raise PermissionError(f"{self} is read-only")
        _check_name("video", video)
        group = self._extractor(extractor)
        if group is None:
            return
        for key in (video, video + VALID_SUFFIX):
            if key in group:
                del group[key]

    # --- reading -----------------------------------------------------------------------------------

    def is_current(self, extractor: str, video: str, provenance: Mapping[str, Any]) -> bool:
        """True when the video's arrays exist, are complete, read back intact and were written with this
        provenance (resume check)."""
        array = self._array(extractor, video)
        if array is None or array.attrs.get(_COMPLETE) is not True:
            return False
        group = self._extractor(extractor)
        assert group is not None
        if (video + VALID_SUFFIX) not in group or array.attrs.get(_PROVENANCE) != _normalise(provenance):
            return False
        if _CHECKSUM not in array.attrs:  # written before checksums: rebuild it once
            return False
        try:
            self.read(extractor, video)
        except DamagedFeaturesError:
            return False
        return True

    def read(self, extractor: str, video: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole video in RAM: (features (T, D) float16, valid (T,) bool).

        Raises FeatureStoreError when the video is absent or unfinished, and
        DamagedFeaturesError (naming the array) when its bytes on disk no longer
        decode or no longer match the checksum written with them.
        """
        array = self._finished(extractor, video)
        group = self._extractor(extractor)
        assert group is not None
        where = self.path / extractor / video
        try:
            # zarr's stubs return unions (a node may be a group; a read may be a scalar): both are arrays here
            valid = cast(np.ndarray, cast(zarr.Array, group[video + VALID_SUFFIX])[...])  # (T,)
            features = cast(np.ndarray, array[...])  # (T, D)
        except KeyError:
            raise FeatureStoreError(f"no validity array for video {video!r} of extractor {extractor!r}") from None
        except (ValueError, RuntimeError, OSError, EOFError) as exc:  # codec or shard-index failures
            raise DamagedFeaturesError(where, f"damaged on disk (cannot be decoded: {type(exc).__name__}); "
                                              "re-run `abaw features` to rebuild it") from None
        expected = array.attrs.get(_CHECKSUM)
        if features.shape[:1] != valid.shape or (expected is not None and _checksum(features, valid) != expected):
            raise DamagedFeaturesError(where, "damaged on disk (does not match the checksum written with it); "
                                              "re-run `abaw features` to rebuild it")
        return features, valid.astype(bool)

    def provenance(self, extractor: str, video: str) -> dict[str, Any]:
        """The provenance a finished video was written with."""
        return dict(cast(Mapping[str, Any], self._finished(extractor, video).attrs[_PROVENANCE]))  # a JSON object

    def videos(self, extractor: str) -> list[str]:
        """Sorted names of the extractor's finished videos ([] for an unknown extractor)."""
        group = self._extractor(extractor)
        if group is None:
            return []
        return sorted(name for name, node in group.arrays()
                      if not name.endswith(VALID_SUFFIX) and node.attrs.get(_COMPLETE) is True)

    def extractors(self) -> list[str]:
        """Sorted extractor names (groups), whether or not they hold finished videos yet."""
        root = self._group()
        return [] if root is None else sorted(root.group_keys())


def features_digest(store: FeatureStore, extractor: str, names: list[str]) -> str:
    """A short hash of the provenance of every array a model trained on: a later stage checks it still matches."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(json.dumps([name, store.provenance(extractor, name)], sort_keys=True).encode())
    return digest.hexdigest()[:16]
