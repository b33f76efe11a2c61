"""Build data/features.zarr: encode every face store with each extractor, then compare them with a linear probe."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pipeline_lib.config import FeaturesSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.store import open_face_store
from pipeline_lib.features.encode import VideoFeatures, build_extractor, encode_crops, extract_features
from pipeline_lib.features.probe import linear_probe_f1, probe_rows, split_stride, stack_rows
from pipeline_lib.features.store import FeatureStore

if TYPE_CHECKING:
    import torch

_SPLITS = ("train", "val")

__all__ = ["build_features", "probe_extractors", "probe_random_inits"]


def _probe_videos(raw_dir: Path) -> list[tuple[str, str, np.ndarray]]:
    """(name, EXPR split, labels (T, 15)) of every video in EXPR's training or validation split."""
    return [(e.name, split, load_labels(raw_dir, e)[0]) for e in load_raw(raw_dir).entries
            if (split := e.split_of("EXPR")) in ("train", "val")]


def _strides(videos: Sequence[tuple[str, str, np.ndarray]], stride: int, max_frames: int | None) -> dict[str, int]:
    """Per split, the frame stride that keeps the probe within `max_frames` (from the labels alone)."""
    return {split: split_stride([labels for _, s, labels in videos if s == split], stride, max_frames)
            for split in _SPLITS}


def _probe_f1(rows: dict[str, list[tuple[np.ndarray, np.ndarray]]], seed: int) -> float | None:
    """The linear probe on per-video rows of each split; None without enough frames."""
    try:
        return round(linear_probe_f1(*stack_rows(rows["train"]), *stack_rows(rows["val"]), seed=seed), 4)
    except ValueError:  # too few labelled frames (e.g. a sharded run holding no validation video)
        return None


def probe_extractors(raw_dir: Path, store: FeatureStore, extractors: list[str], stride: int = 1,
                     seed: int = 0, max_frames: int | None = None) -> dict[str, float | None]:
    """EXPR macro F1 of a linear probe per extractor: fitted on train videos, scored on validation videos.

    Video by video, only the probe's rows are kept (at most `max_frames` per split).
    """
    videos = _probe_videos(raw_dir)
    strides = _strides(videos, stride, max_frames)
    scores: dict[str, float | None] = {}
    for extractor in extractors:
        present = set(store.videos(extractor))
        rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {split: [] for split in _SPLITS}
        for name, split, labels in videos:
            if name in present:
                rows[split].append(probe_rows(*store.read(extractor, name), labels, stride=strides[split]))
        scores[extractor] = _probe_f1(rows, seed)
    return scores


def probe_random_inits(raw_dir: Path, face_dir: Path, checkpoint: Path, seeds: Sequence[int], stride: int = 1,
                       batch_size: int = 128, device: str = "cpu",
                       max_frames: int | None = None) -> dict[int, float | None]:
    """EXPR probe macro F1 of the `random` extractor drawn with each of `seeds`.

    One random draw's probe moves by about ±0.03 on the demo split, so the
    stored `random` group alone cannot say whether pretraining helped; these
    extra draws (encoded on the fly, only the probe's videos, never stored)
    give the spread it is judged against. Each video's crops are read once
    and encoded by every draw; only the probe's rows of it are kept.
    """
    # `random` is a network (only the GEOMETRIC extractors are not)
    models = {seed: cast("torch.nn.Module", build_extractor("random", checkpoint, seed)).to(device) for seed in seeds}
    videos = _probe_videos(raw_dir)
    strides = _strides(videos, stride, max_frames)
    rows: dict[int, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {
        seed: {split: [] for split in _SPLITS} for seed in seeds}
    for name, split, labels in videos:
        if not (face_dir / f"{name}.h5").is_file():
            continue
        with open_face_store(face_dir / f"{name}.h5") as h5:
            present, crops = h5["present"][...].astype(bool), h5["crops"][...]  # (T,), (T, S, S, 3) uint8
        for seed, model in models.items():
            # float16 as the store keeps them: the seed-0 draw is then exactly the stored `random` group
            features = encode_crops(model, crops, present, batch_size, device).astype(np.float16)
            rows[seed][split].append(probe_rows(features, present, labels, stride=strides[split]))
    return {seed: _probe_f1(rows[seed], seed) for seed in seeds}


def _faces_without_points(face_dir: Path, store: FeatureStore, names: Sequence[str]) -> list[str]:
    """Videos with faces but no valid `landmarks` feature: stores imported from `cropped_aligned` carry no points."""
    present = set(store.videos("landmarks"))
    empty = []
    for name in names:
        if name not in present or store.read("landmarks", name)[1].any():
            continue
        with open_face_store(face_dir / f"{name}.h5") as h5:
            if h5["present"][...].any():
                empty.append(name)
    return empty


def build_features(raw_dir: Path, face_dir: Path, checkpoint: Path, out: Path, settings: FeaturesSettings, *,
                   finetuned_dir: Path | None = None, seed: int = 0, shard: tuple[int, int] = (0, 1),
                   on_video: Callable[[VideoFeatures], None] = lambda v: None) -> dict[str, Any]:
    """Encode, probe, and return the stage's metrics."""
    if not checkpoint.is_file():
        raise DataError(checkpoint, "missing: run `abaw pretrain` first")
    raw = load_raw(raw_dir)
    names = [e.name for e in raw.entries if (face_dir / f"{e.name}.h5").is_file()]
    missing = [e.name for e in raw.entries if e.name not in names]
    if missing:
        raise DataError(face_dir, f"no face store for {len(missing)} video(s), e.g. {missing[0]}: run `abaw faces`")
    import torch

    torch.set_num_threads(settings.threads)
    store = FeatureStore(out)
    start = time.perf_counter()
    done = extract_features(face_dir, names, store, settings.extractors, checkpoint, finetuned_dir=finetuned_dir,
                            batch_size=settings.batch_size, device=settings.device, precision=settings.precision,
                            seed=seed, shard=shard, workers=settings.workers, on_video=on_video)
    seconds = time.perf_counter() - start
    encoded = sum(v.encoded for v in done if not v.skipped)
    metrics: dict[str, Any] = {
        "videos": len({v.video for v in done}),
        "extractors": list(settings.extractors),
        "arrays_written": sum(not v.skipped for v in done),
        "arrays_resumed": sum(v.skipped for v in done),
        "frames_encoded": encoded,
        "seconds": round(seconds, 2),
        "frames_per_second": round(encoded / seconds, 1) if encoded and seconds else None,
        "shard": f"{shard[0]}/{shard[1]}",
    }
    if "landmarks" in settings.extractors:
        metrics["landmarks_without_points"] = _faces_without_points(face_dir, store, names)
    if shard[1] == 1:
        probe = probe_extractors(raw_dir, store, list(settings.extractors), settings.probe_stride, seed,
                                 settings.probe_max_frames)
        metrics["expr_probe_macro_f1"] = probe
        if probe.get("mae") is not None and probe.get("random") is not None:
            assert probe["mae"] is not None and probe["random"] is not None  # just checked (.get does not narrow)
            metrics["mae_beats_random"] = bool(probe["mae"] > probe["random"])
        if settings.probe_random_inits and probe.get("mae") is not None:
            assert probe["mae"] is not None  # just checked (.get does not narrow)
            draws = probe_random_inits(raw_dir, face_dir, checkpoint,
                                       range(seed + 1, seed + 1 + settings.probe_random_inits), settings.probe_stride,
                                       settings.batch_size, settings.device, settings.probe_max_frames)
            every = [f for f in (probe.get("random"), *draws.values()) if f is not None]
            metrics["expr_probe_random_inits"] = {"macro_f1": {str(k): v for k, v in draws.items()}}
            if every:  # judged against the spread of random draws, the `random` group among them
                mean = sum(every) / len(every)
                metrics["expr_probe_random_inits"].update(mean_with_random=round(mean, 4), max_with_random=max(every))
                metrics["mae_beats_random_mean"] = bool(probe["mae"] > mean)
                metrics["random_inits_below_mae"] = f"{sum(f < probe['mae'] for f in every)}/{len(every)}"
    return metrics
