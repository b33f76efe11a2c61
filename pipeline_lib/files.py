"""Atomic file writes and content hashes: the one way every stage writes a file and fingerprints one.

A writer fills a hidden `.partial` file beside its target and renames it into
place only when it finished, so a reader (or an interrupted, resumed run) sees
either the old file or the whole new one, never a truncated one; a failed
write removes its partial file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "file_sha256", "partial_path", "write_text_atomic"]


def partial_path(path: Path, *, keep_suffix: bool = False) -> Path:
    """The hidden name `path` is written under: `.name.partial`, or `.stem.partial.suffix` for writers that infer
    the format from the suffix (matplotlib, PyAV)."""
    if keep_suffix:
        return path.with_name(f".{path.stem}.partial{path.suffix}")
    return path.with_name(f".{path.name}.partial")


@contextmanager
def atomic_path(path: Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield the partial path to write; on a clean exit it replaces `path`, on any exception (an interrupt too)
    it is removed. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path, keep_suffix=keep_suffix)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8, LF) to `path` atomically."""
    with atomic_path(path) as partial, open(partial, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in `block`-byte chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
