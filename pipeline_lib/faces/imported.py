"""Import Aff-Wild2's official `cropped_aligned` face frames into our face store.

The dataset's own crops are what most published Aff-Wild2 results were
trained on, so comparing against them means using them rather than our
detector's; importing them into the same store format keeps every later
stage unaware of where the faces came from. The folders are sparse (no file
where the annotators' tooling found no face) and a few files are damaged, so
gaps and bad files become absent frames, reported rather than raised. The
frame coordinates of these crops are unknown, so boxes and landmarks stay NaN.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline_lib.faces.align import CROP_SIZE
from pipeline_lib.faces.store import FaceStoreWriter

__all__ = ["ImportReport", "import_cropped_aligned"]

_FRAME_FILE: Final = re.compile(r"^(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_MAX_IGNORED: Final[int] = 10  # names kept in the report; a stray file is worth a look, a thousand are not


@dataclass
class ImportReport:
    """What happened to one `cropped_aligned/<video>` folder."""

    frames_found: int = 0  # readable face images imported
    frames_total: int = 0  # track length T
    missing: int = 0  # absent frames, T - frames_found: gaps plus unreadable files
    unreadable: list[str] = field(default_factory=list)  # failed to decode; also counted absent
    ignored: list[str] = field(default_factory=list)  # first names that are not <digits>.jpg/.jpeg/.png
    error: str | None = None  # folder missing or unlistable
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "frames_found": self.frames_found,
            "frames_total": self.frames_total,
            "missing": self.missing,
            "unreadable": list(self.unreadable),
            "ignored": list(self.ignored),
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def _list_frames(folder: Path, report: ImportReport) -> dict[int, Path]:
    """0-based frame index -> image file; everything else goes to `report.ignored`."""
    frames: dict[int, Path] = {}
    ignored: list[str] = []
    for path in sorted(folder.iterdir()):
        match = _FRAME_FILE.match(path.name)
        index = int(match.group(1)) - 1 if match else -1
        # Index -1 (a "00000" file) and a second file for the same frame are not frames we can place.
        if index < 0 or index in frames or not path.is_file():
            ignored.append(path.name)
        else:
            frames[index] = path
    report.ignored = ignored[:_MAX_IGNORED]
    return frames


def _load_crop(path: Path, crop_size: int) -> np.ndarray:
    """(S, S, 3) uint8 RGB; raises OSError (incl. UnidentifiedImageError) for a damaged file."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")  # forces the decode; grey, palette and RGBA all land here
    if rgb.size != (crop_size, crop_size):
        rgb = rgb.resize((crop_size, crop_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def import_cropped_aligned(folder: Path, out_path: Path, n_frames: int, provenance: Mapping[str, Any], *,
                           crop_size: int = CROP_SIZE, batch_size: int = 64,
                           on_frames: Callable[[int], None] | None = None) -> ImportReport:
    """Write the store at `out_path` from `folder`'s `<%05d>.jpg` files (1-based: 00001.jpg is frame 0).

    The track is max(n_frames, highest file index) frames long. Memory holds
    one batch of crops. A missing folder writes nothing and sets `error`.
    """
    start = time.perf_counter()
    report = ImportReport(frames_total=max(n_frames, 0), missing=max(n_frames, 0))
    try:
        frames = _list_frames(folder, report)
    except OSError as exc:  # FileNotFoundError, NotADirectoryError, PermissionError
        report.error = f"{folder}: {type(exc).__name__}: {exc.strerror or exc}"
        report.seconds = time.perf_counter() - start
        return report

    total = max([n_frames, 0, *(index + 1 for index in frames)])
    present = np.zeros(total, dtype=bool)  # (T,)
    with FaceStoreWriter(out_path, crop_size) as writer:
        for first in range(0, total, batch_size):
            batch = np.zeros((min(batch_size, total - first), crop_size, crop_size, 3), np.uint8)  # (N, S, S, 3)
            for offset in range(len(batch)):
                path = frames.get(first + offset)
                if path is None:
                    continue
                try:
                    batch[offset] = _load_crop(path, crop_size)
                except (UnidentifiedImageError, OSError):  # includes "image file is truncated"
                    report.unreadable.append(path.name)
                    continue
                present[first + offset] = True
            writer.append(batch)
            if on_frames is not None:
                on_frames(len(batch))
        report.frames_found = int(present.sum())
        report.frames_total = total
        report.missing = total - report.frames_found
        report.seconds = time.perf_counter() - start
        writer.commit(present,
                      np.zeros(total, dtype=bool),  # filled (T,)
                      np.full((total, 4), np.nan, dtype=np.float32),  # boxes (T, 4)
                      np.full((total, 5, 2), np.nan, dtype=np.float32),  # landmarks (T, 5, 2)
                      np.where(present, 1.0, 0.0).astype(np.float32),  # scores (T,)
                      provenance, report=report.as_dict())
    return report
