"""Memory-mapped arrays: scratch spills that leave no file behind, HDF5 datasets mapped in place."""

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline_lib.mapped import Spill, map_dataset


def test_a_spilled_array_is_the_same_bytes_mapped_read_only_and_its_file_already_gone(tmp_path: Path):
    values = np.random.default_rng(0).normal(size=(37, 5)).astype(np.float16)
    spill = Spill(tmp_path)
    mapped = spill(values)
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float16 and mapped.shape == (37, 5)
    assert mapped.tobytes() == values.tobytes()
    assert not mapped.flags.writeable
    assert list(tmp_path.iterdir()) == []  # unlinked once mapped: nothing to clean up after a kill
    assert spill.bytes == values.nbytes
    with pytest.raises(ValueError):
        mapped[0, 0] = 1


def test_an_empty_array_is_not_spilled(tmp_path: Path):
    empty = np.zeros((0, 4), np.float32)
    assert Spill(tmp_path)(empty) is empty


def test_a_missing_folder_is_made_and_one_that_cannot_be_falls_back_to_the_temp_folder(tmp_path: Path):
    assert Spill(tmp_path / "a" / "b").folder == tmp_path / "a" / "b"
    (tmp_path / "file").write_text("not a folder")
    assert Spill(tmp_path / "file" / "sub").folder == Path(tempfile.gettempdir())


def test_a_contiguous_dataset_is_mapped_from_its_file_and_others_are_read(tmp_path: Path):
    values = np.arange(60, dtype=np.float32).reshape(12, 5)
    with h5py.File(tmp_path / "p.h5", "w") as h5:
        h5.create_dataset("plain", data=values)
        h5.create_dataset("packed", data=values, chunks=(4, 5), compression="lzf")
        h5.create_dataset("empty", data=np.zeros((0, 5), np.float32))
    with h5py.File(tmp_path / "p.h5", "r") as h5:
        plain, packed, empty = map_dataset(h5["plain"]), map_dataset(h5["packed"]), map_dataset(h5["empty"])
    assert isinstance(plain, np.memmap) and not isinstance(packed, np.memmap)
    for got in (plain, packed):
        assert got.tolist() == values.tolist() and not got.flags.writeable
    assert empty.shape == (0, 5)
