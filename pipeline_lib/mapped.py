"""Arrays held on disk and memory-mapped: how a stage works on a whole corpus without holding it.

The temporal, fusion and compound stages draw training windows across every video, and predict every video.
At Aff-Wild2's 2.8 M frames one 768-wide float16 extractor is 4.3 GB and fusion's joined sources about 15 GB:
more than a 24 GB machine holds beside torch, and it would grow with every video added. Instead each video's
assembled array is written once to an unlinked scratch file and read back memory-mapped (`Spill`), and
prediction files are mapped rather than read (`map_dataset`). The kernel keeps what it can of those pages in
its page cache and drops them under memory pressure, so a stage's own (anonymous) memory stays about one
video's worth whatever the corpus size. Values are bit-identical to the in-RAM arrays they replace.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

__all__ = ["Spill", "map_dataset"]


class Spill:
    """Writes arrays to scratch files under `folder` and hands them back memory-mapped, read-only.

    Each file is unlinked as soon as it is mapped: the mapping keeps its data, the disk is freed when the last
    view of it goes, and a killed process leaves nothing behind. `folder` should be on a disk, not a tmpfs
    (which is RAM): stages pass the folder of the data they read.
    """

    def __init__(self, folder: Path) -> None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        self.folder = Path(folder) if writable else Path(tempfile.gettempdir())
        self.bytes = 0  # written so far: the scratch disk a stage needs at most

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """`array` (any shape) as a read-only memory-mapped copy; empty arrays are returned as they are."""
        array = np.asarray(array)
        if array.size == 0:
            return array
        fd, name = tempfile.mkstemp(prefix=".spill-", suffix=".npy", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            mapped: np.ndarray = np.load(name, mmap_mode="r")
        finally:
            os.unlink(name)
        self.bytes += array.nbytes
        return mapped


def map_dataset(dataset: h5py.Dataset) -> np.ndarray:
    """An HDF5 dataset's values, memory-mapped from its file when stored contiguous and uncompressed (as
    `create_dataset(data=...)` writes them), else read into RAM. Read-only either way."""
    offset = dataset.id.get_offset()
    if (dataset.chunks is not None or dataset.compression is not None or offset is None or dataset.size == 0
            or dataset.dtype.hasobject):
        values: np.ndarray = dataset[...]
        values.flags.writeable = False
        return values
    return np.memmap(dataset.file.filename, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)
