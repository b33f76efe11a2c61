"""Scale: the whole pipeline on Aff-Wild2-shaped corpora of two sizes, per stage time per frame, peak memory,
disk written and DVC's own time.

    python benchmarks/scale.py                  # loops 1 and 13 (about 8k and 104k frames)
    python benchmarks/scale.py --loops 1 --loops 4 --keep /tmp/scale

No new video is rendered. The demo corpus (the project's `data/raw` when it is a demo corpus, else generated) is
re-shaped the way the real release ships, each video looped `loops` times:

- Aff-Wild2-style names (`<n>-30-<w>x<h>`, two-subject videos `<n>-30-<w>x<h>_left` / `_right`) in `videos/`,
  the per-task annotation folders, the MTL files and the test lists, every label file looped with its video;
- `cropped_aligned/<subject>/%05d.jpg` for every subject, cut once per demo frame from the demo's face boxes and
  hard-linked for each loop (the official folders are sparse: no file where there is no face), so
  `faces.source: cropped_aligned` imports them, as most registrants start.

Each size runs in a fresh git + DVC project (dvc.yaml, params.yaml, pipeline_lib, stages copied; small models,
`params_for_scale`), one `dvc repro --single-item <stage>` per stage in pipeline order, while a sampler reads
the stage command's process tree every 0.2 s (`/proc/<pid>/status`: VmRSS, RssAnon). Per stage it records the
command's wall time, DVC's time around it (the rest of that `dvc repro`: start-up, hashing, caching), peak RSS
and peak anonymous RSS (RSS less memory-mapped file pages, which the kernel can drop), and the disk its outputs
and the cache grew by. Then `dvc status` on the finished project, timed.

Writes results/scale.json: per size and stage those figures, and per stage the ratios large/small of time per
frame, peak RSS and peak anonymous RSS (issue 25's targets: within 1.3x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from pipeline_lib.config import Params  # noqa: E402
from pipeline_lib.data.annotations import read_annotation, write_annotation  # noqa: E402
from pipeline_lib.data.demo.generate import TRUTH_DIR, generate_corpus  # noqa: E402
from pipeline_lib.data.demo.video import VideoWriter, read_frames  # noqa: E402
from pipeline_lib.data.labels import SPLIT_FOLDERS, Task  # noqa: E402
from pipeline_lib.data.layout import TEST_LIST_TASKS, AffWild2Layout, read_test_list, write_test_list  # noqa: E402
from pipeline_lib.data.manifest import probe_video  # noqa: E402
from pipeline_lib.data.mtl import read_mtl, write_mtl  # noqa: E402

CROP = 112


# --- the corpus ----------------------------------------------------------------------------------------------


def demo_root(work: Path) -> Path:
    """A demo corpus with its truth: the project's own data/raw when it is one, else generated at the defaults."""
    own = ROOT / "data" / "raw"
    if (own / TRUTH_DIR).is_dir() and (own / "videos").is_dir():
        return own
    out = work / "demo"
    generate_corpus(out, Params().data.demo, seed=0, progress=False)
    return out


def _subject(name: str, videos: dict[str, str]) -> str:
    """A subject's release name: its video's, with the `_left` / `_right` suffix kept."""
    if name in videos:
        return videos[name]
    base, side = name.rsplit("_", 1)
    return f"{videos[base]}_{side}"


def _crops(frames: np.ndarray, boxes: np.ndarray) -> list[Image.Image | None]:
    """A 112x112 face crop per frame (the box widened by 30 %), None where the demo had no face."""
    out: list[Image.Image | None] = []
    for frame, box in zip(frames, boxes, strict=False):
        if not np.isfinite(box).all():
            out.append(None)
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = 0.65 * max(box[2] - box[0], box[3] - box[1])
        crop = Image.fromarray(frame).crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        out.append(crop.resize((CROP, CROP), Image.Resampling.BILINEAR))
    return out


def build_release(demo: Path, out: Path, loops: int) -> dict[str, int]:
    """`demo` re-shaped as the real release at `out`, every video and label file looped `loops` times."""
    src = AffWild2Layout(demo)
    shutil.rmtree(out, ignore_errors=True)
    layout = AffWild2Layout(out)
    videos = {path.stem: f"{n}-30-{{}}" for n, path in enumerate(sorted(src.videos_dir().glob("*.mp4")), start=1)}
    frames_total = 0
    for stem in sorted(videos):
        path = src.videos_dir() / f"{stem}.mp4"
        frames = read_frames(path)  # (T, H, W, 3) uint8
        height, width = frames.shape[1:3]
        videos[stem] = videos[stem].format(f"{width}x{height}")
        with VideoWriter(layout.videos_dir() / f"{videos[stem]}.mp4", probe_video(path)[0], width, height) as writer:
            for _ in range(loops):
                for frame in frames:
                    writer.write(frame)
        frames_total += loops * len(frames)
        subjects = sorted(p.stem for p in (demo / TRUTH_DIR).glob(f"{stem}*.npz")
                          if p.stem == stem or p.stem.rsplit("_", 1)[0] == stem)
        for subject in subjects:
            with np.load(demo / TRUTH_DIR / f"{subject}.npz") as truth:
                boxes = truth["box"]
            folder = out / "cropped_aligned" / _subject(subject, videos)
            folder.mkdir(parents=True)
            once = out / "cropped_aligned" / f".{_subject(subject, videos)}"
            once.mkdir()
            for t, crop in enumerate(_crops(frames, boxes)):
                if crop is None:
                    continue
                first = once / f"{t}.jpg"
                crop.save(first, quality=95)
                for k in range(loops):  # the same file under every loop's frame number: no disk per loop
                    os.link(first, folder / f"{k * len(frames) + t + 1:05d}.jpg")
            shutil.rmtree(once)
    for task in (Task.VA, Task.EXPR, Task.AU, Task.CE):
        for split in SPLIT_FOLDERS:
            folder = src.annotation_dir(task, split)
            for file in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
                values = read_annotation(file, task)
                write_annotation(layout.annotation_path(task, split, _subject(file.stem, videos)), task,
                                 np.concatenate([values] * loops))
    for split in SPLIT_FOLDERS:
        if src.mtl_path(split).is_file():
            write_mtl(layout.mtl_path(split), {_subject(name, videos): np.concatenate([rows] * loops)
                                               for name, rows in read_mtl(src.mtl_path(split)).items()})
    for track in TEST_LIST_TASKS:
        if src.test_list_path(track).is_file():
            write_test_list(layout.test_list_path(track),
                            [_subject(n, videos) for n in read_test_list(src.test_list_path(track))])
    return {"videos": len(videos), "frames": frames_total, "loops": loops}


# --- the project ---------------------------------------------------------------------------------------------


def params_for_scale(root: Path) -> dict[str, Any]:
    """params.yaml with `data.source` the release root, crops imported, small models and fixed epochs.

    Every epoch count is fixed (not per frame), so a stage's time per frame should not move with the corpus;
    pretraining samples every 8th face frame for one epoch (issue 25 allows it), the same at both sizes.
    Imported crops carry no landmark points, so the task models read `mesh`, as on the demo (the landmarker
    works on crops; README, 'Running on a real Aff-Wild2 copy'), beside one network extractor, `mae`.
    """
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["data"]["source"] = str(root)
    raw["faces"].update(source="cropped_aligned", samples=4)
    raw["pretrain"].update(epochs=1, frame_stride=8, samples=2)
    raw["features"].update(extractors=["mae", "mesh"], probe_random_inits=0)
    raw["finetune"].update(epochs=1, steps_per_epoch=10, probe_steps=50)
    raw["temporal"]["common"].update(extractor="mesh", epochs=3)
    raw["fusion"].update(extractors=["mae", "mesh"], epochs=3)
    raw["compound"].update(extractors=["mesh"], seeds=1)
    return raw


def make_project(repo: Path, params: dict[str, Any]) -> None:
    repo.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    for package in ("pipeline_lib", "stages"):
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    for args in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "init"]):
        run(args, repo)
    if (ROOT / ".dvc" / "config").is_file():  # the project's cache settings (link type), not its remote
        config = [line for line in (ROOT / ".dvc" / "config").read_text().splitlines()]
        cache = _section(config, "[cache]")
        if cache:
            with (repo / ".dvc" / "config").open("a") as f:
                f.write("\n".join(cache) + "\n")


def _section(lines: list[str], header: str) -> list[str]:
    out, inside = [], False
    for line in lines:
        if line.startswith("["):
            inside = line.strip() == header
        if inside:
            out.append(line)
    return out


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr


# --- measuring -----------------------------------------------------------------------------------------------


def _status_kib(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon, VmHWM) of a process in KiB; zeros once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        return tuple(int(fields.get(key, "0 kB").split()[0]) for key in ("VmRSS", "RssAnon", "VmHWM"))  # type: ignore[return-value]
    except (OSError, ValueError):
        return 0, 0, 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(c) for c in text]
    except OSError:
        pass
    return out


class TreeSampler(threading.Thread):
    """Samples a `dvc repro` process tree: DVC's own RSS and, summed over the stage command's processes
    (everything below DVC), peak RSS and peak anonymous RSS, and when the command ran."""

    def __init__(self, root_pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.every = root_pid, every
        self.stop = threading.Event()
        self.peak_rss = self.peak_anon = self.dvc_rss = 0
        self.hwm: dict[int, int] = {}  # per command process, the kernel's own peak RSS (exact, between samples too)
        self.first: float | None = None
        self.last: float | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            below = []
            frontier = _children(self.root_pid)
            while frontier:
                below += frontier
                frontier = [c for p in frontier for c in _children(p)]
            now = time.perf_counter()
            self.dvc_rss = max(self.dvc_rss, _status_kib(self.root_pid)[0])
            if below:
                self.first = self.first if self.first is not None else now
                self.last = now
                sizes = [_status_kib(p) for p in below]
                self.peak_rss = max(self.peak_rss, sum(s[0] for s in sizes))
                self.peak_anon = max(self.peak_anon, sum(s[1] for s in sizes))
                for p, s in zip(below, sizes, strict=True):
                    self.hwm[p] = max(self.hwm.get(p, 0), s[2])
            self.stop.wait(self.every)


def disk_bytes(path: Path, exclude: tuple[str, ...] = ()) -> int:
    """Bytes on disk under `path`, each inode once (hard links to the cache count once)."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in exclude]
        for name in files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def measure_stage(repo: Path, stage: str) -> dict[str, Any]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    before = disk_bytes(repo)
    start = time.perf_counter()
    proc = subprocess.Popen(["dvc", "repro", "--single-item", stage], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"dvc repro {stage} failed:\n{log[-4000:]}")
    command = (sampler.last - sampler.first + sampler.every) if sampler.first is not None else 0.0
    return {"wall_s": round(wall, 2), "command_s": round(min(command, wall), 2),
            "dvc_s": round(max(wall - command, 0.0), 2), "peak_rss_mib": round(sampler.peak_rss / 1024, 1),
            "peak_anon_mib": round(sampler.peak_anon / 1024, 1), "dvc_rss_mib": round(sampler.dvc_rss / 1024, 1),
            # every command process's own high-water mark, summed: exact for one process, an upper bound for many
            "hwm_rss_mib": round(sum(sampler.hwm.values()) / 1024, 1),
            "disk_written_mib": round((disk_bytes(repo) - before) / 2**20, 1)}


def run_size(work: Path, demo: Path, loops: int) -> dict[str, Any]:
    root = work / f"release_x{loops}"
    start = time.perf_counter()
    corpus = build_release(demo, root, loops)
    corpus["build_s"] = round(time.perf_counter() - start, 1)
    print(f"  corpus x{loops}: {corpus['videos']} videos, {corpus['frames']} frames ({corpus['build_s']} s)",
          flush=True)
    repo = work / f"repo_x{loops}"
    make_project(repo, params_for_scale(root))
    stages = [s.split()[0] for s in run(["dvc", "stage", "list", "--name-only"], repo).splitlines() if s.strip()]
    per_stage = {}
    for stage in stages:
        per_stage[stage] = figures = measure_stage(repo, stage)
        figures["ms_per_frame"] = round(1000 * figures["command_s"] / corpus["frames"], 4)
        print(f"  {stage}: {figures}", flush=True)
    start = time.perf_counter()
    status = run(["dvc", "status"], repo)
    status_s = time.perf_counter() - start
    return {"corpus": corpus, "stages": per_stage, "dvc_status_s": round(status_s, 2),
            "dvc_status_clean": "up to date" in status,
            "disk_mib": {"workspace_data": round(disk_bytes(repo / "data") / 2**20, 1),
                         "dvc_cache": round(disk_bytes(repo / ".dvc" / "cache") / 2**20, 1),
                         "workspace_and_cache": round((disk_bytes(repo, exclude=(".git",))) / 2**20, 1),
                         "cropped_aligned": round(disk_bytes(root / "cropped_aligned") / 2**20, 1),
                         "videos": round(disk_bytes(root / "videos") / 2**20, 1)}}


def ratios(small: dict[str, Any], large: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    out = {}
    for stage, a in small["stages"].items():
        b = large["stages"].get(stage)
        if b is None:
            continue
        out[stage] = {key: (round(b[key] / a[key], 2) if a[key] else None)
                      for key in ("ms_per_frame", "peak_rss_mib", "peak_anon_mib")}
    return out


AFF_WILD2_FRAMES = 2_800_000


def extrapolate(result: dict[str, Any], frames: int = AFF_WILD2_FRAMES) -> dict[str, dict[str, float]]:
    """Per stage at `frames`: hours (the larger size's time per frame), and peak anonymous memory on the line
    through the two sizes (what grows with the corpus: labels, per-frame predictions, indexes)."""
    sizes = sorted(result["sizes"].values(), key=lambda s: s["corpus"]["frames"])
    small, large = sizes[0], sizes[-1]
    n0, n1 = small["corpus"]["frames"], large["corpus"]["frames"]
    out = {}
    for stage, b in large["stages"].items():
        a = small["stages"][stage]
        slope = (b["peak_anon_mib"] - a["peak_anon_mib"]) / (n1 - n0)  # MiB per frame
        out[stage] = {"hours": round(b["ms_per_frame"] * frames / 3.6e6, 2),
                      "peak_anon_gib": round(max(b["peak_anon_mib"], b["peak_anon_mib"] + slope * (frames - n1)) / 1024,
                                             2)}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The README / docs tables of a results/scale.json: both sizes, their ratios, and 2.8 M frames."""
    sizes = sorted(result["sizes"].values(), key=lambda s: s["corpus"]["frames"])
    small, large = sizes[0], sizes[-1]
    n0, n1 = small["corpus"]["frames"], large["corpus"]["frames"]
    ratios, far = result["ratios_large_over_small"], extrapolate(result)
    lines = [f"| stage | ms / frame {n0:,} -> {n1:,} | ratio | peak anon MiB | ratio | peak RSS ratio | "
             f"DVC s (large) | at {AFF_WILD2_FRAMES / 1e6:.1f} M frames, 2 cores |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for stage, b in large["stages"].items():
        a, r, x = small["stages"][stage], ratios[stage], far[stage]
        lines.append(f"| {stage} | {a['ms_per_frame']:.2f} -> {b['ms_per_frame']:.2f} | {r['ms_per_frame']:.2f}x | "
                     f"{a['peak_anon_mib']:.0f} -> {b['peak_anon_mib']:.0f} | {r['peak_anon_mib']:.2f}x | "
                     f"{r['peak_rss_mib']:.2f}x | {b['dvc_s']:.1f} | {x['hours']:.1f} h, "
                     f"{x['peak_anon_gib']:.1f} GiB |")
    disk = large["disk_mib"]
    lines += ["", f"`dvc status` on the larger project: **{large['dvc_status_s']} s** "
                  f"({'up to date' if large['dvc_status_clean'] else 'NOT up to date'}); "
                  f"data {disk['workspace_data']:,.0f} MiB, cache {disk['dvc_cache']:,.0f} MiB, "
                  f"both together {disk['workspace_and_cache']:,.0f} MiB (hard links count once); "
                  f"cropped_aligned {small['disk_mib']['cropped_aligned']:,.0f} MiB at {n0:,} frames."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, action="append", help="times each video is looped (twice at least)")
    parser.add_argument("--keep", type=Path, help="work here and keep the corpora and projects")
    parser.add_argument("--table", action="store_true", help="print results/scale.json as markdown and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads((HERE / "results" / "scale.json").read_text(encoding="utf-8"))))
        return
    loops = sorted(args.loops or [1, 13])
    work = args.keep or Path(tempfile.mkdtemp(prefix="abaw-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        demo = demo_root(work)
        sizes = {}
        for k in loops:
            print(f"loops {k}", flush=True)
            sizes[str(k)] = run_size(work, demo, k)
        small, large = sizes[str(loops[0])], sizes[str(loops[-1])]
        result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "processor": platform.processor()},
                  "sizes": sizes, "ratios_large_over_small": ratios(small, large),
                  "frames_ratio": round(large["corpus"]["frames"] / small["corpus"]["frames"], 2)}
        out = HERE / "results" / "scale.json"
        out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(markdown(result))
        print(f"wrote {out}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
