"""Temporal training on a tiny real corpus: learns, picks the best epoch, saves what it scored, loads back."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline_lib.artifacts.predictions import read_predictions
from pipeline_lib.config import TemporalSettings
from pipeline_lib.data.errors import CheckpointError
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.models.task_network import load_task_network
from pipeline_lib.train.scoring import score_task
from pipeline_lib.train.sliding import predict_videos
from pipeline_lib.train.task_data import load_task_data
from pipeline_lib.train.temporal import train_temporal
from pipeline_lib.train.temporal_run import run_temporal_task
from tests.train.conftest import TINY_TEMPORAL


def _settings(task: str, **update):
    base = {"epochs": 6, "hidden": 16, "layers": 1, "heads": 2, "batch_size": 4, "dropout": 0.0, "lr": 3e-3,
            "threads": 1, **TINY_TEMPORAL}
    return TemporalSettings().resolve(task, 16).model_copy(update={**base, **update})


@pytest.mark.parametrize("encoder", ["transformer", "gru", "lstm", "tcn", "framewise"])
def test_every_encoder_trains_and_keeps_its_best_epoch(corpus, encoder):
    raw, features = corpus
    data = load_task_data(raw, FeatureStore(features, mode="r"), "expr", "mae")
    result = train_temporal(data.train, data.val, _settings("expr", encoder=encoder), seed=0)
    assert len(result.train_loss) == len(result.val_metric) == 6
    assert result.best_epoch == int(np.argmax(result.val_metric))  # first best on ties
    assert result.best["f1_macro"] == max(result.val_metric)
    rescored = score_task("expr", [o for o, _ in predict_videos(result.network, data.val, 16)], data.val)
    assert rescored["f1_macro"] == pytest.approx(result.best["f1_macro"])  # the kept weights are the best epoch's
    assert result.train_loss[-1] < result.train_loss[0]


def test_temporal_context_beats_single_frames_on_noisy_frames(corpus):
    """Labels are constant over 8-frame segments and each frame's features are mostly noise."""
    raw, features = corpus
    data = load_task_data(raw, FeatureStore(features, mode="r"), "va", "mae")
    temporal = train_temporal(data.train, data.val, _settings("va", epochs=15, encoder="transformer",
                                                               convergence=5), seed=0)
    framewise = train_temporal(data.train, data.val, _settings("va", epochs=15, encoder="framewise", convergence=1),
                               seed=0)
    assert temporal.best["ccc_mean"] > framewise.best["ccc_mean"] + 0.05


def test_run_writes_checkpoints_predictions_and_metrics(corpus, tmp_path: Path):
    raw, features = corpus
    settings = _settings("va")
    metrics = run_temporal_task(raw, features, settings, tmp_path / "models", tmp_path / "pred" / "va.h5", seed=0)
    assert metrics["metric"] == "ccc_mean" and metrics["train_videos"] == 3 and metrics["val_videos"] == 1
    for model in ("temporal", "baseline"):
        assert metrics[model]["val_from_predictions"] == pytest.approx(metrics[model]["ccc_mean"], abs=1e-4)
    assert metrics["temporal_beats_baseline"] == (metrics["temporal"]["ccc_mean"] > metrics["baseline"]["ccc_mean"])
    rows, meta = read_predictions(tmp_path / "pred" / "va.h5")
    assert sorted(rows) == ["te1", "tr1", "tr2", "tr3", "va1"] and meta["task"] == "va" and meta["window"] == 16
    assert rows["te1"]["outputs"].shape == (48, 2) and rows["te1"]["hidden"].shape == (48, 16)
    assert rows["te1"]["hidden"].dtype == np.float16 and np.abs(rows["te1"]["outputs"]).max() <= 1
    baseline, _ = read_predictions(tmp_path / "pred" / "va.h5", "baseline")
    assert "hidden" not in baseline["va1"]
    network, saved = load_task_network(tmp_path / "models" / "va" / "temporal.pt")
    assert saved["features"] == meta["features"] and saved["extractor"] == "mae"
    data = load_task_data(raw, FeatureStore(features, mode="r"), "va", "mae")
    again = predict_videos(network, data.val, 16)[0][0]
    assert np.allclose(again, rows["va1"]["outputs"], atol=1e-5)  # the checkpoint reproduces the predictions
    with h5py.File(tmp_path / "pred" / "va.h5") as h5:
        assert json.loads(h5.attrs["meta"])["extractor"] == "mae"


def test_foreign_or_corrupt_checkpoint_is_refused(tmp_path: Path):
    torch.save({"model": Path("a-foreign-object")}, tmp_path / "foreign.pt")  # needs unpickling a class
    with pytest.raises(CheckpointError, match="not a checkpoint this pipeline wrote"):
        load_task_network(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a checkpoint this pipeline wrote"):
        load_task_network(tmp_path / "junk.pt")
    torch.save({"model": {}, "spec": {"in_dim": 4}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="not a temporal checkpoint"):
        load_task_network(tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match="missing: run `abaw temporal`"):
        load_task_network(tmp_path / "absent.pt")
