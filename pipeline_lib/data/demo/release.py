"""The demo corpus re-shaped the way Aff-Wild2 and C-EXPR-DB are distributed, so that the pipeline can be run,
tested and benchmarked on the quirks of a real copy without one.

`as_release(demo_root, out)` copies a generated demo corpus (videos, annotations, test lists; no truth) to
`out` and then, as the real release has them:
- the two-subject video re-encoded at 1920x1080 (Aff-Wild2's largest size; `_left`/`_right` subjects);
- one labelled video re-encoded as `.avi` (MPEG-4 part 2);
- `cropped_aligned/<video>/%05d.jpg` for some videos, cut from the demo truth's face boxes, with no file where
  no face was found and every `gap`-th file missing (the official folders are sparse);
- one video's validation labels of one task also in the MTL training file (the MTL file disagrees with the
  per-task folders; the folder wins);
- compound expressions as C-EXPR-DB ships them: no CE annotation folder, the compound videos renamed `01`,
  `02`, ... and listed in `CE_test_set_release.txt` only;
- one annotation file whose video is missing, and one file in `videos/` that is not a video.
The demo's own quirks stay: cross-task videos, label files a few lines off, invalid spans, unlabelled videos.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import av
import numpy as np
from PIL import Image

from pipeline_lib.data.annotations import read_annotation, write_annotation
from pipeline_lib.data.demo.generate import TRUTH_DIR
from pipeline_lib.data.demo.video import VideoWriter, read_frames
from pipeline_lib.data.labels import LABEL_COLUMNS, SPLIT_FOLDERS, TASK_FOLDERS, Task, empty_labels
from pipeline_lib.data.layout import AffWild2Layout, write_test_list
from pipeline_lib.data.manifest import probe_video
from pipeline_lib.data.mtl import read_mtl, write_mtl

__all__ = ["Release", "as_release"]

FULL_HD: Final[tuple[int, int]] = (1920, 1080)
_CROP: Final[int] = 112


@dataclass
class Release:
    """What `as_release` made of the demo corpus (names as they are in the release root)."""

    root: Path
    full_hd: str | None = None  # base name of the 1920x1080 two-subject video
    avi: str | None = None
    cropped: dict[str, int] = field(default_factory=dict)  # subject -> frames with a crop file
    mtl_conflict: tuple[str, str] | None = None  # (video, task) whose val labels the MTL train file repeats
    compound_videos: dict[str, str] = field(default_factory=dict)  # release name (01, ...) -> demo name
    missing_video: str | None = None
    unreadable_video: str | None = None


def _copy_demo(demo_root: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("videos", "annotations", "test_set"):
        shutil.copytree(demo_root / name, out / name)


def _letterboxed(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`frame` scaled to fill `size`'s height, centred on black (the aspect ratio kept)."""
    width, height = size
    scaled_width = min(width, round(frame.shape[1] * height / frame.shape[0]) // 2 * 2)
    scaled = np.asarray(Image.fromarray(frame).resize((scaled_width, height), Image.Resampling.BILINEAR))
    canvas = np.zeros((height, width, 3), np.uint8)
    left = (width - scaled_width) // 2
    canvas[:, left:left + scaled_width] = scaled
    return canvas


def _reencode_full_hd(path: Path) -> None:
    frames = read_frames(path)
    with VideoWriter(path, probe_video(path)[0], *FULL_HD) as writer:
        for frame in frames:
            writer.write(_letterboxed(frame, FULL_HD))


def _reencode_avi(path: Path) -> Path:
    frames, fps = read_frames(path), probe_video(path)[0]
    target = path.with_suffix(".avi")
    with av.open(str(target), "w") as container:
        stream = container.add_stream("mpeg4", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qscale": "3"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    path.unlink()
    return target


def _write_crops(frames: np.ndarray, boxes: np.ndarray, folder: Path, gap: int) -> int:
    """A 112x112 JPEG per frame with a face box (the box widened by 30 %), every `gap`-th one left out."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for t, (frame, box) in enumerate(zip(frames, boxes, strict=False)):
        if not np.isfinite(box).all() or (gap and t % gap == gap - 1):
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = 0.65 * max(box[2] - box[0], box[3] - box[1])
        crop = Image.fromarray(frame).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        crop.resize((_CROP, _CROP), Image.Resampling.BILINEAR).save(folder / f"{t + 1:05d}.jpg", quality=95)
        written += 1
    return written


def _labelled(layout: AffWild2Layout, split: str) -> dict[str, set[str]]:
    """Video -> tasks with a per-task file in `split`."""
    found: dict[str, set[str]] = {}
    for task in (Task.VA, Task.EXPR, Task.AU):
        folder = layout.annotation_dir(task, split)
        for file in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            found.setdefault(file.stem, set()).add(task.value)
    return found


def _mtl_conflict(layout: AffWild2Layout) -> tuple[str, str] | None:
    """Repeat one validation video's EXPR labels in the MTL training file."""
    val = _labelled(layout, "val")
    video = next((v for v, tasks in sorted(val.items()) if "EXPR" in tasks), None)
    if video is None or not layout.mtl_path("train").is_file():
        return None
    values = read_annotation(layout.annotation_path(Task.EXPR, "val", video), Task.EXPR)
    train = read_mtl(layout.mtl_path("train"))
    rows = train.get(video, empty_labels(len(values)))
    if len(rows) < len(values):
        rows = np.concatenate([rows, empty_labels(len(values) - len(rows))])
    rows[: len(values), LABEL_COLUMNS["EXPR"]] = values[:, None]
    train[video] = rows
    write_mtl(layout.mtl_path("train"), train)
    return video, "EXPR"


def _as_c_expr_db(layout: AffWild2Layout) -> dict[str, str]:
    """CE annotations removed; their videos renamed 01, 02, ... and listed only in the CE test list."""
    ce_root = layout.root / "annotations" / TASK_FOLDERS[Task.CE]
    demo_names = sorted({f.stem for split in SPLIT_FOLDERS for f in (ce_root / SPLIT_FOLDERS[split]).glob("*.txt")})
    shutil.rmtree(ce_root, ignore_errors=True)
    renamed = {}
    for k, name in enumerate(demo_names, start=1):
        release = f"{k:02d}"
        (layout.videos_dir() / f"{name}.mp4").rename(layout.videos_dir() / f"{release}.mp4")
        renamed[release] = name
    write_test_list(layout.test_list_path("CE"), list(renamed))
    return renamed


def as_release(demo_root: Path, out: Path, *, cropped: int = 2, gap: int = 7) -> Release:
    """Copy the demo corpus at `demo_root` to `out` in the shape of the real release (see the module doc).

    `cropped` single-subject labelled videos get a `cropped_aligned` folder with every `gap`-th frame missing.
    """
    _copy_demo(demo_root, out)
    layout = AffWild2Layout(out)
    release = Release(out)
    train = _labelled(layout, "train")
    pairs = sorted({v.rsplit("_", 1)[0] for v in train if layout.subject_side(v)})
    if pairs:
        release.full_hd = pairs[0]
        _reencode_full_hd(layout.videos_dir() / f"{pairs[0]}.mp4")
    singles = [v for v in sorted(train) if not layout.subject_side(v)]
    if singles:
        release.avi = singles[-1]
        _reencode_avi(layout.videos_dir() / f"{singles[-1]}.mp4")
    for name in singles[:cropped]:
        with np.load(demo_root / TRUTH_DIR / f"{name}.npz") as truth:
            boxes = truth["box"]
        frames = read_frames(layout.find_video_file(name))
        release.cropped[name] = _write_crops(frames, boxes, out / "cropped_aligned" / name, gap)
    release.mtl_conflict = _mtl_conflict(layout)
    release.compound_videos = _as_c_expr_db(layout)
    release.missing_video = "gone"
    write_annotation(layout.annotation_path(Task.VA, "train", "gone"), Task.VA, np.zeros((5, 2), np.float32))
    release.unreadable_video = "broken"
    (layout.videos_dir() / "broken.mp4").write_bytes(b"\x00not a video\n" * 64)
    return release
