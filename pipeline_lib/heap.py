"""Hand freed heap memory back to the operating system between videos and epochs.

glibc's malloc keeps what PyTorch frees on CPU (activations of every batch
shape, in one arena per thread) and rarely returns it: encoding 104k frames
with 2 threads, the features stage's anonymous memory climbed from 0.7 to
2.0 GB while it held one video's features at a time; `malloc_trim(0)` after a
video brings it back to ~0.45 GB (measured, issue 25). On other C libraries
(musl, macOS) there is nothing to call and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

__all__ = ["release_freed_memory"]


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS (glibc `malloc_trim(0)`); False where there is no such call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
