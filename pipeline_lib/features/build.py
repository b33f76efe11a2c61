"""Build data/features.zarr: encode every face store with each extractor, then compare them with a linear probe."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline_lib.config import FeaturesSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.prepare import load_raw
from pipeline_lib.features.encode import VideoFeatures, encode_store, extract_features
from pipeline_lib.features.probe import expr_frames, linear_probe_f1
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.models.mae import MAE
from pipeline_lib.train.pretrain import load_mae

__all__ = ["build_features", "probe_extractors", "probe_random_inits"]


def probe_extractors(raw_dir: Path, store: FeatureStore, extractors: list[str], stride: int = 1,
                     seed: int = 0) -> dict[str, float | None]:
    """EXPR macro F1 of a linear probe per extractor: fitted on train videos, scored on validation videos."""
    raw = load_raw(raw_dir)
    labelled = [e for e in raw.entries if "EXPR" in e.tasks and e.split in ("train", "val")]
    labels = {e.name: load_labels(raw_dir, e)[0] for e in labelled}
    scores: dict[str, float | None] = {}
    for extractor in extractors:
        present = set(store.videos(extractor))
        split = {s: [(*store.read(extractor, e.name), labels[e.name]) for e in labelled
                     if e.split == s and e.name in present] for s in ("train", "val")}
        try:
            scores[extractor] = round(linear_probe_f1(*expr_frames(split["train"], stride),
                                                      *expr_frames(split["val"], stride), seed=seed), 4)
        except ValueError:  # too few labelled frames (e.g. a sharded run holding no validation video)
            scores[extractor] = None
    return scores


def probe_random_inits(raw_dir: Path, face_dir: Path, checkpoint: Path, seeds: Sequence[int], stride: int = 1,
                       batch_size: int = 128, device: str = "cpu") -> dict[int, float | None]:
    """EXPR probe macro F1 of untrained encoders (the MAE's architecture) drawn with each of `seeds`.

    One random draw's probe moves by about ±0.03 on the demo split, so the
    stored `random` group alone cannot say whether pretraining helped; these
    extra draws (encoded on the fly, only the probe's videos, never stored)
    give the spread it is judged against.
    """
    import torch

    raw = load_raw(raw_dir)
    labelled = [e for e in raw.entries if "EXPR" in e.tasks and e.split in ("train", "val")
                and (face_dir / f"{e.name}.h5").is_file()]
    labels = {e.name: load_labels(raw_dir, e)[0] for e in labelled}
    config = load_mae(checkpoint)[0].config
    scores: dict[int, float | None] = {}
    for seed in seeds:
        torch.manual_seed(seed)
        model = MAE(config).to(device).eval()
        split = {s: [(*encode_store(model, face_dir / f"{e.name}.h5", batch_size, device), labels[e.name])
                     for e in labelled if e.split == s] for s in ("train", "val")}
        try:
            scores[seed] = round(linear_probe_f1(*expr_frames(split["train"], stride),
                                                 *expr_frames(split["val"], stride), seed=seed), 4)
        except ValueError:
            scores[seed] = None
    return scores


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
                            batch_size=settings.batch_size, device=settings.device, precision=settings.precision, seed=seed, shard=shard,
                            on_video=on_video)
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
    if shard[1] == 1:
        probe = probe_extractors(raw_dir, store, list(settings.extractors), settings.probe_stride, seed)
        metrics["expr_probe_macro_f1"] = probe
        if probe.get("mae") is not None and probe.get("random") is not None:
            metrics["mae_beats_random"] = bool(probe["mae"] > probe["random"])
        if settings.probe_random_inits and probe.get("mae") is not None:
            draws = probe_random_inits(raw_dir, face_dir, checkpoint,
                                       range(seed + 1, seed + 1 + settings.probe_random_inits), settings.probe_stride,
                                       settings.batch_size, settings.device)
            every = [f for f in ([probe.get("random")] if "random" in probe else []) + list(draws.values())
                     if f is not None]
            metrics["expr_probe_random_inits"] = {"macro_f1": {str(k): v for k, v in draws.items()}}
            if every:  # judged against the spread of random draws, the `random` group among them
                metrics["expr_probe_random_inits"].update(mean_with_random=round(sum(every) / len(every), 4),
                                                          max_with_random=max(every))
                metrics["mae_beats_random_mean"] = bool(probe["mae"] > sum(every) / len(every))
                metrics["random_inits_below_mae"] = f"{sum(f < probe['mae'] for f in every)}/{len(every)}"
    return metrics
