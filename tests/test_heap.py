"""Freed heap memory goes back to the OS: a stage's memory stays near one video's worth."""

from __future__ import annotations

import ctypes
from pathlib import Path

from pipeline_lib.heap import release_freed_memory


def _anon_mib() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["RssAnon"].split()[0]) / 1024


def test_freed_small_blocks_return_to_the_os():
    """Many small blocks (below malloc's mmap threshold, as a batch's activations) freed but kept by glibc."""
    release_freed_memory()
    before = _anon_mib()
    blocks = [ctypes.create_string_buffer(64 * 1024) for _ in range(3000)]  # ~190 MiB of heap
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    del blocks[:-1]  # the last block stays: the heap's top is in use, so only malloc_trim frees what lies below
    kept = _anon_mib()
    assert release_freed_memory()  # glibc (this project's Linux)
    assert kept - before > 150 and _anon_mib() - before < 30
