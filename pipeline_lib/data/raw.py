"""data/raw as every later stage reads it: where the videos are, and the manifest (prepare.py writes it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline_lib.data.errors import LayoutError
from pipeline_lib.data.manifest import VideoEntry, read_manifest

__all__ = ["MANIFEST_FILE", "SOURCE_FILE", "RawCorpus", "load_raw"]

MANIFEST_FILE = "manifest.csv"
SOURCE_FILE = "source.json"


@dataclass(frozen=True)
class RawCorpus:
    """data/raw as downstream stages see it: where the videos are, and the manifest."""

    raw_dir: Path
    video_root: Path
    entries: tuple[VideoEntry, ...]
    kind: str  # "demo" | "affwild2"

    def video_file(self, entry: VideoEntry) -> Path:
        return self.video_root / entry.video_path


def load_raw(raw_dir: Path) -> RawCorpus:
    """Open data/raw as written by `prepare_raw`."""
    info_path = raw_dir / SOURCE_FILE
    if not info_path.is_file():
        raise LayoutError(info_path, "missing: run `abaw corpus` (or `dvc repro corpus`) first")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    video_root = raw_dir if info["video_root"] == "." else Path(info["video_root"])
    entries = read_manifest(raw_dir / MANIFEST_FILE)
    return RawCorpus(raw_dir=raw_dir, video_root=video_root, entries=tuple(entries), kind=info["kind"])
