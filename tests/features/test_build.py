"""The features stage's probes: the extra random inits are the `random` extractor's draw for other seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_lib.config import FeaturesSettings
from pipeline_lib.data.labels import COL_EXPR
from pipeline_lib.data.manifest import load_labels
from pipeline_lib.data.raw import load_raw
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.features.build import build_features, probe_extractors, probe_random_inits
from pipeline_lib.features.encode import extract_features
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.models.mae import MAE, config_by_name
from tests.train.conftest import build_corpus

OVERRIDES = {"depth": 1, "decoder_depth": 1, "width": 32, "heads": 2, "decoder_width": 32, "decoder_heads": 2,
             "patch_size": 14}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    """A tiny corpus whose face crops show the EXPR class (a bright square at one of four places), and an MAE."""
    root = tmp_path_factory.mktemp("build")
    raw, _ = build_corpus(root)
    faces = root / "faces"
    rng = np.random.default_rng(0)
    for entry in load_raw(raw).entries:
        labels = load_labels(raw, entry)[0] if entry.tasks else np.full((48, 15), -1.0)
        classes = np.clip(labels[:, COL_EXPR].astype(int), 0, 3)
        crops = rng.integers(0, 80, (len(classes), 112, 112, 3), dtype=np.uint8)
        for i, k in enumerate(classes):
            crops[i, 28 * k:28 * k + 28, :28] = 255
        present = np.ones(len(classes), bool)
        present[5:7] = False
        crops[~present] = 0
        t = len(classes)
        write_faces(faces / f"{entry.name}.h5", FaceTrack(crops, present, np.zeros(t, bool),
                                                          np.full((t, 4), np.nan, np.float32),
                                                          np.full((t, 5, 2), np.nan, np.float32),
                                                          present.astype(np.float32)), {"v": entry.name})
    torch.manual_seed(3)
    checkpoint = root / "mae.pt"
    torch.save({"model": MAE(config_by_name("mae_tiny", **OVERRIDES)).state_dict(),
                "config": {"name": "mae_tiny", "overrides": OVERRIDES}, "meta": {}}, checkpoint)
    return {"raw": raw, "faces": faces, "checkpoint": checkpoint, "root": root}


def test_random_init_seed_zero_is_the_stored_random_extractor(project, one_torch_thread):
    store = FeatureStore(project["root"] / "features.zarr")
    names = [e.name for e in load_raw(project["raw"]).entries]
    extract_features(project["faces"], names, store, ["random"], project["checkpoint"], batch_size=16, seed=0)
    stored = probe_extractors(project["raw"], store, ["random"])["random"]
    draws = probe_random_inits(project["raw"], project["faces"], project["checkpoint"], [0, 1], batch_size=16)
    assert set(draws) == {0, 1}
    assert draws[0] == stored  # the same architecture, weights and probe as the `random` group
    assert draws == probe_random_inits(project["raw"], project["faces"], project["checkpoint"], [0, 1],
                                       batch_size=7)  # batching does not change a draw


def test_max_frames_bounds_both_probes_alike(project, one_torch_thread):
    """Capped, the stored `random` group and the seed-0 draw still see the same rows, and fewer of them."""
    store = FeatureStore(project["root"] / "features.zarr")
    names = [e.name for e in load_raw(project["raw"]).entries]
    extract_features(project["faces"], names, store, ["random"], project["checkpoint"], batch_size=16, seed=0)
    capped = probe_extractors(project["raw"], store, ["random"], max_frames=100)["random"]
    draws = probe_random_inits(project["raw"], project["faces"], project["checkpoint"], [0], batch_size=16,
                               max_frames=100)
    assert draws[0] == capped
    assert capped != probe_extractors(project["raw"], store, ["random"])["random"]  # other rows, another fit


def test_stage_metrics_judge_mae_against_the_random_inits(project, one_torch_thread, tmp_path):
    settings = FeaturesSettings(extractors=("mae", "random"), batch_size=16, threads=1, probe_random_inits=2)
    metrics = build_features(project["raw"], project["faces"], project["checkpoint"], tmp_path / "f.zarr", settings,
                             seed=4)
    probe, draws = metrics["expr_probe_macro_f1"], metrics["expr_probe_random_inits"]
    assert list(draws["macro_f1"]) == ["5", "6"]  # seeds after the pipeline seed (the `random` group's)
    every = [probe["random"], *draws["macro_f1"].values()]
    assert draws["max_with_random"] == max(every)
    assert draws["mean_with_random"] == round(sum(every) / 3, 4)
    assert metrics["mae_beats_random_mean"] == (probe["mae"] > sum(every) / 3)
    assert metrics["random_inits_below_mae"] == f"{sum(f < probe['mae'] for f in every)}/3"

    none = build_features(project["raw"], project["faces"], project["checkpoint"], tmp_path / "f.zarr",
                          settings.model_copy(update={"probe_random_inits": 0}), seed=4)
    assert "expr_probe_random_inits" not in none and "mae_beats_random_mean" not in none
