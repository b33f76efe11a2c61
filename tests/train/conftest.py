"""A tiny Aff-Wild2-layout corpus with real videos, real annotation files and a real zarr feature store.

Features carry the labels through heavy per-frame noise, so one frame is
ambiguous and a window is not: what the temporal stage is for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, EXPR_NAMES
from pipeline_lib.data.prepare import import_affwild2
from pipeline_lib.features.store import FeatureStore
from tests.data.conftest import write_tiny_video

FRAMES = 48
WIDTH = 8
VIDEOS = {"tr1": "train", "tr2": "train", "tr3": "train", "va1": "val", "te1": "test"}


# Anger, Fear, Sadness, Surprise: between them the constituents of five compound expressions, so synthetic
# compound windows can be mixed from this corpus's basic windows.
CLASSES = np.array([EXPR_NAMES.index(n) for n in ("Anger", "Fear", "Sadness", "Surprise")])


def _labels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """EXPR class per 8-frame segment (one of CLASSES) and valence following it."""
    kind = np.repeat(rng.integers(0, 4, FRAMES // 8), 8)  # (T,) 0..3
    valence = np.array([-0.6, -0.2, 0.2, 0.6])[kind]
    return CLASSES[kind], valence


CE_COLUMNS = np.array([c for c in range(WIDTH) if c not in CLASSES])  # feature columns no basic class uses


def _write_ce(source: Path, store: FeatureStore, rng: np.random.Generator, noise: float, seed: int) -> None:
    """Two compound videos ("ce1" train, "ce2" val): CE class per 8-frame segment (0..3), features one-hot in
    CE_COLUMNS, so they differ from the basic ones; one frame unannotated."""
    for name, folder in (("ce1", "Train_Set"), ("ce2", "Validation_Set")):
        write_tiny_video(source / "videos" / f"{name}.mp4", n_frames=FRAMES, fps=25, size=32)
        ce = np.repeat(rng.permutation(np.arange(FRAMES // 8) % 4), 8)  # (T,)
        features = np.eye(WIDTH, dtype=np.float32)[CE_COLUMNS[ce]] + rng.normal(0, noise, (FRAMES, WIDTH))
        store.write("mae", name, features.astype(np.float16), np.ones(FRAMES, bool), {"extractor": "mae",
                                                                                       "seed": seed})
        lines = [str(int(c)) for c in ce]
        lines[0] = "-1"
        folder_path = source / "annotations" / "CE" / folder
        folder_path.mkdir(parents=True, exist_ok=True)
        (folder_path / f"{name}.txt").write_text(",".join(CE_NAMES) + "\n" + "\n".join(lines) + "\n")


def build_corpus(root: Path, noise: float = 1.5, seed: int = 0, au: bool = False,
                 unlabeled: bool = False, ce: bool = False, cross: bool = False) -> tuple[Path, Path]:
    """(raw dir, feature store path) of a 5-video corpus with EXPR and VA labels.

    With `au`, AU labels too (AU1 on in classes 2 and 3, every other AU off, a
    few frames -1); by default there are none at all. With `unlabeled`, a sixth
    video ("un1") that no annotation or test list names. With `ce`, two compound
    videos (see `_write_ce`) and test lists for every track (else EXPR only).
    With `cross`, a video "x1" in VA's training split and EXPR's (and AU's)
    validation split, as 86 Aff-Wild2 videos are.
    """
    rng = np.random.default_rng(seed)
    source = root / "source"
    store = FeatureStore(root / "features.zarr")
    videos = {**VIDEOS, **({"un1": "unlabeled"} if unlabeled else {}), **({"x1": "cross"} if cross else {})}
    for name, split in videos.items():
        write_tiny_video(source / "videos" / f"{name}.mp4", n_frames=FRAMES, fps=25, size=32)
        expr, valence = _labels(rng)
        features = np.eye(WIDTH, dtype=np.float32)[expr] * 1.0 + rng.normal(0, noise, (FRAMES, WIDTH))
        valid = np.ones(FRAMES, bool)
        valid[5:7] = False  # a face-less stretch
        features[~valid] = 0
        store.write("mae", name, features.astype(np.float16), valid, {"extractor": "mae", "seed": seed})
        if split == "unlabeled":
            continue
        if split == "test":
            (source / "test_set").mkdir(parents=True, exist_ok=True)
            for track in ("VA", "EXPR", "AU", "CE", "MTL") if ce else ("EXPR",):
                (source / "test_set" / f"{track}_test_set_release.txt").write_text(f"{name}\n")
            continue
        folders = {task: {"train": "Train_Set", "val": "Validation_Set"}.get(split, "Train_Set" if task == "VA"
                                                                             else "Validation_Set")
                   for task in ("VA", "EXPR", "AU")}
        expr_dir = source / "annotations" / "EXPR_Recognition_Challenge" / folders["EXPR"]
        va_dir = source / "annotations" / "VA_Estimation_Challenge" / folders["VA"]
        expr_dir.mkdir(parents=True, exist_ok=True)
        va_dir.mkdir(parents=True, exist_ok=True)
        expr_lines = [str(int(e)) for e in expr]
        expr_lines[0] = "-1"  # an unannotated frame
        (expr_dir / f"{name}.txt").write_text(",".join(EXPR_NAMES) + "\n" + "\n".join(expr_lines) + "\n")
        va_lines = [f"{v:.2f},{v / 2:.2f}" for v in valence]
        va_lines[1] = "-5,-5"
        (va_dir / f"{name}.txt").write_text("valence,arousal\n" + "\n".join(va_lines) + "\n")
        if au:
            au_dir = source / "annotations" / "AU_Detection_Challenge" / folders["AU"]
            au_dir.mkdir(parents=True, exist_ok=True)
            rows = np.zeros((FRAMES, len(AU_NAMES)), np.int64)
            rows[:, 0] = expr >= CLASSES[2]  # AU1 with Sadness and Surprise
            au_lines = [",".join(map(str, r)) for r in rows]
            au_lines[2] = ",".join(["-1"] * len(AU_NAMES))
            (au_dir / f"{name}.txt").write_text(",".join(AU_NAMES) + "\n" + "\n".join(au_lines) + "\n")
    (source / "annotations" / "AU_Detection_Challenge" / "Train_Set").mkdir(parents=True, exist_ok=True)
    if ce:
        _write_ce(source, store, rng, noise, seed)
    import_affwild2(root / "raw", source)
    return root / "raw", root / "features.zarr"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


# The tiny stores hold the `mae` extractor only; these tests were written for the earlier code defaults
# (pseudo-label sampling and debiasing on, no fusion stream into compound), kept here so they test what they did.
TINY_TEMPORAL = {"extractor": "mae"}
TINY_FUSION = {"extractors": ["mae"], "pseudo": {"uniform_sampling": True, "debias": True, "debias_labels": 0.0}}
TINY_COMPOUND = {"extractors": ["mae"], "fusion_features": False}


def train_task_models(raw: Path, store: Path, models: Path, predictions: Path, window: int) -> None:
    """The three temporal task models (2 epochs, tiny), checkpoints under `models`, `<task>.h5` under
    `predictions`."""
    from pipeline_lib.config import TemporalSettings
    from pipeline_lib.train.temporal_run import run_temporal_task

    base = {"epochs": 2, "hidden": 8, "layers": 1, "heads": 2, "batch_size": 4, "threads": 1, **TINY_TEMPORAL}
    for task in ("va", "expr", "au"):
        settings = TemporalSettings().resolve(task, window).model_copy(update=base)
        run_temporal_task(raw, store, settings, models, predictions / f"{task}.h5", seed=0)


def build_chain(root: Path, window: int = 16) -> dict[str, Path]:
    """Every trained stage after features on the tiny corpus with CE videos and a cross-task video: temporal
    (3 tasks), fusion and compound, tiny settings. Keys: raw, store, temporal, fusion, compound, models."""
    from pipeline_lib.config import CompoundSettings, FusionSettings
    from pipeline_lib.train.compound_run import run_compound
    from pipeline_lib.train.fusion_run import run_fusion

    raw, store = build_corpus(root, au=True, unlabeled=True, ce=True, cross=True)
    train_task_models(raw, store, root / "models" / "temporal", root / "pred" / "temporal", window)
    fusion = FusionSettings(epochs=2, hidden=8, heads=2, batch_size=4, threads=1,
                            **{**TINY_FUSION, "pseudo": {**TINY_FUSION["pseudo"], "compare": False}})
    run_fusion(raw, store, root / "pred" / "temporal", fusion, window, root / "models" / "fusion",
               root / "pred" / "fusion" / "fusion.h5", notice=lambda message: None)
    compound = CompoundSettings(**TINY_COMPOUND, hidden=8, heads=2, batch_size=4, threads=1, seeds=1,
                                synthetic={"windows": 32},
                                curriculum={"epochs": [1, 1, 1], "share": [0.0, 0.5, 1.0],
                                            "synthetic": [0.0, 1.0, 0.0]})
    run_compound(raw, store, root / "pred" / "fusion" / "fusion.h5", compound, window, root / "models" / "compound",
                 root / "pred" / "compound" / "compound.h5")
    return {"raw": raw, "store": store, "temporal": root / "pred" / "temporal",
            "fusion": root / "pred" / "fusion" / "fusion.h5", "compound": root / "pred" / "compound" / "compound.h5",
            "models": root / "models"}
