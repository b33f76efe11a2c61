"""The fusion stage on a tiny real corpus with real temporal predictions: every variant end to end,
pseudo-labels on and off, and the provenance checks."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline_lib.artifacts.predictions import read_fusion_predictions
from pipeline_lib.config import FusionSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.data.labels import COL_EXPR
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.models.fusion import load_fusion_model
from pipeline_lib.train.fusion import FusionLoss
from pipeline_lib.train.fusion_data import COL_PSEUDO, load_fusion_data, pseudo_pool, with_pseudo_labels
from pipeline_lib.train.fusion_run import run_fusion
from pipeline_lib.train.pseudo import make_pseudo_labels
from tests.train.conftest import TINY_FUSION, build_corpus, train_task_models

WINDOW = 16


@pytest.fixture(scope="module")
def fused(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(raw, store, temporal predictions dir): all three task models trained for 2 epochs."""
    root = tmp_path_factory.mktemp("fusion")
    raw, store = build_corpus(root, au=True, unlabeled=True, cross=True)
    train_task_models(raw, store, root / "models", root / "pred", WINDOW)
    return raw, store, root / "pred"


def _settings(**update) -> FusionSettings:
    pseudo = update.pop("pseudo", {})
    return FusionSettings(epochs=2, hidden=8, heads=2, batch_size=4, threads=1,
                          **{**TINY_FUSION, **update, "pseudo": {**TINY_FUSION["pseudo"], "threshold": 0.2, **pseudo}})


def test_inputs_join_frame_and_task_features_with_all_labels(fused):
    raw, store, pred = fused
    data = load_fusion_data(raw, FeatureStore(store, mode="r"), pred, ["mae"])
    assert data.sources == ["mae", "va", "expr", "au"] and data.widths == [8, 8, 8, 8]
    assert sorted(v.name for v in data.train) == ["tr1", "tr2", "tr3", "x1"]
    assert sorted(v.name for v in data.val) == ["va1", "x1"]
    # x1 is VA train and EXPR / AU val: its training view carries VA only, its validation view EXPR and AU only
    x1_train = next(v for v in data.train if v.name == "x1")
    x1_val = next(v for v in data.val if v.name == "x1")
    x1_all = next(v for v in data.every if v.name == "x1")
    assert x1_train.features is x1_all.features and x1_val.features is x1_all.features  # views, not copies
    assert x1_train.label_mask[:, :2].any() and not x1_train.label_mask[:, 2:].any()
    assert not x1_val.label_mask[:, :2].any() and x1_val.label_mask[:, 2].any() and x1_val.label_mask[:, 3:15].any()
    np.testing.assert_array_equal(x1_train.labels[:, :2], x1_all.labels[:, :2])  # each view: its tasks, unchanged
    np.testing.assert_array_equal(x1_val.labels[:, 2:15], x1_all.labels[:, 2:15])
    tr1 = next(v for v in data.every if v.name == "tr1")
    assert tr1.features.shape == (48, 32) and tr1.labels.shape == (48, 16)
    assert tr1.label_mask[0].tolist()[:3] == [True, True, False]  # EXPR -1 on frame 0, VA labelled
    assert not tr1.label_mask[1, :2].any() and not tr1.label_mask[2, 3:15].any()  # VA -5, AU -1 frames
    assert not tr1.label_mask[:, COL_PSEUDO].any()
    stored, valid = FeatureStore(store, mode="r").read("mae", "tr1")  # frame features: centred per video
    np.testing.assert_allclose(tr1.features[valid, :8], stored[valid] - stored[valid].astype(np.float32).mean(0),
                               atol=2e-3)
    pool = pseudo_pool(data)
    # never validation or test frames, and not x1 (a training video, but in EXPR's validation split)
    assert sorted(pool) == ["tr1", "tr2", "tr3", "un1"]
    assert pool["tr1"].sum() == 1 and pool["un1"].sum() == 46  # tr1: frame 0; un1: every face frame
    tr3 = data.entries["tr3"]
    compound_only = replace(data, entries={**data.entries, "tr3": replace(tr3, splits={"CE": "train"})},
                            train=[v for v in data.train if v.name != "tr3"])
    assert sorted(pseudo_pool(compound_only)) == ["tr1", "tr2", "un1"]  # compound faces get no basic label


def test_pseudo_labels_reach_training_only_where_no_real_label(fused):
    raw, store, pred = fused
    data = load_fusion_data(raw, FeatureStore(store, mode="r"), pred, ["mae"])
    labels = {"tr1": np.full(48, 3), "un1": np.full(48, 5)}
    train = {v.name: v for v in with_pseudo_labels(data, labels)}
    assert sorted(train) == ["tr1", "tr2", "tr3", "un1", "x1"]
    assert (train["un1"].labels[:, COL_PSEUDO] == 5).all() and train["un1"].label_mask[:, COL_PSEUDO].all()
    assert not train["un1"].label_mask[:, :15].any()  # an unlabelled video teaches its pseudo-labels only
    assert not train["x1"].label_mask[:, 2:].any()  # the training view of x1: VA only, no EXPR val label
    loss = FusionLoss(list(train.values()), _settings(), pseudo_weight=1.0)
    y = torch.from_numpy(train["tr1"].labels[None, :8])
    m = torch.from_numpy(train["tr1"].label_mask[None, :8])
    outputs = {"va": torch.zeros(1, 8, 2), "expr": torch.zeros(1, 8, 8), "au": torch.zeros(1, 8, 12)}
    outputs["expr"][0, 0, 3] = 5.0  # only frame 0 lacks a real EXPR label: its pseudo-label 3 is scored
    _, parts = loss(outputs, y, m)
    assert parts["pseudo"] == pytest.approx(float(torch.nn.functional.cross_entropy(outputs["expr"][0, :1],
                                                                                    torch.tensor([3]))))


def test_debias_adds_the_log_prior_to_pseudo_logits(fused):
    raw, store, pred = fused
    data = load_fusion_data(raw, FeatureStore(store, mode="r"), pred, ["mae"])
    train = with_pseudo_labels(data, {"un1": np.full(48, 2)})
    prior = np.array([0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    loss = FusionLoss(train, _settings(), prior=prior, pseudo_weight=1.0)
    un1 = next(v for v in train if v.name == "un1")
    logits = torch.randn(1, 4, 8)
    outputs = {"va": torch.zeros(1, 4, 2), "expr": logits, "au": torch.zeros(1, 4, 12)}
    _, parts = loss(outputs, torch.from_numpy(un1.labels[None, 10:14]), torch.from_numpy(un1.label_mask[None, 10:14]))
    adjusted = logits[0] + torch.log(torch.tensor(prior, dtype=torch.float32))
    assert parts["pseudo"] == pytest.approx(float(torch.nn.functional.cross_entropy(adjusted,
                                                                                    torch.full((4,), 2))), rel=1e-5)


def test_counterfactual_pseudo_labels_are_the_ones_the_stage_trains_on(fused, tmp_path: Path):
    raw, store, pred = fused
    data = load_fusion_data(raw, FeatureStore(store, mode="r"), pred, ["mae"])
    teacher, pool = data.teacher("temporal"), pseudo_pool(data)
    plain = make_pseudo_labels(teacher, pool, 0.2)
    debiased = make_pseudo_labels(teacher, pool, 0.2, counterfactual=1.0)
    assert not np.array_equal(plain.labels["un1"], debiased.labels["un1"])  # the option changes what is taught
    metrics = run_fusion(raw, store, pred, _settings(pseudo={"debias_labels": 1.0}), WINDOW, tmp_path / "models",
                         tmp_path / "out" / "fusion.h5")
    assert metrics["pseudo"]["kept_per_class"] == debiased.summary()["kept_per_class"]
    assert metrics["pseudo"]["teacher_mean"] == plain.summary()["teacher_mean"]
    with h5py.File(tmp_path / "out" / "fusion.h5") as h5:
        assert h5["un1/pseudo_label"][...].tolist() == debiased.labels["un1"].tolist()


@pytest.mark.parametrize("fusion", ["concat", "attention"])
@pytest.mark.parametrize("dependency", ["independent", "feedback", "feature_feedback"])
def test_every_variant_runs_end_to_end(fused, tmp_path: Path, fusion, dependency):
    raw, store, pred = fused
    settings = _settings(fusion=fusion, dependency=dependency, pseudo={"compare": False})
    metrics = run_fusion(raw, store, pred, settings, WINDOW, tmp_path / "models", tmp_path / "out" / "fusion.h5")
    assert metrics["fusion"] == fusion and metrics["dependency"] == dependency
    val = metrics["val"]
    assert val["mtl"] == pytest.approx(val["ccc_mean"] + val["expr_f1"] + val["au_f1_mean"], abs=2e-4)
    assert metrics["fusion_beats_individual"] == (val["mtl"] >= metrics["individual"]["sum"])
    assert metrics["pseudo"]["used"] and metrics["pseudo"]["kept_frames"] > 0 and "pseudo_off" not in metrics
    with h5py.File(tmp_path / "out" / "fusion.h5") as h5:
        assert sorted(h5) == ["te1", "tr1", "tr2", "tr3", "un1", "va1", "x1"]
        assert h5["x1"].attrs["splits"] == "VA:train+EXPR:val+AU:val" and h5["un1"].attrs["splits"] == ""
        assert "pseudo_label" not in h5["x1"]  # never on a video in EXPR's validation split
        assert h5["te1/va"].shape == (48, 2) and h5["te1/expr"].shape == (48, 8) and h5["te1/au"].shape == (48, 12)
        np.testing.assert_allclose(h5["te1/expr"][...].sum(1), 1.0, atol=1e-5)
        assert "pseudo_label" in h5["un1"] and "pseudo_label" not in h5["va1"]
    model, meta = load_fusion_model(tmp_path / "models" / "fusion.pt")
    assert meta["sources"] == ["mae", "va", "expr", "au", "predictions"] and model.spec["fusion"] == fusion
    assert model.spec["residual"] and meta["widths"] == [8, 8, 8, 8, 22]


def test_residual_fusion_is_never_below_the_temporal_models_it_starts_from(fused, tmp_path: Path):
    raw, store, pred = fused
    metrics = run_fusion(raw, store, pred, _settings(pseudo={"enabled": False}), WINDOW,
                         tmp_path / "models", tmp_path / "out" / "fusion.h5")
    individual = metrics["individual"]
    start = sum(individual[t]["temporal"] for t in ("va", "expr", "au"))
    # Epoch 0 is the task models' own predictions (through float16, as fed in), so only rounding can differ.
    assert metrics["val"]["mtl"] >= start - 2e-3
    assert 0 <= metrics["best_epoch"] <= 2 and len(metrics["curve"]) == 2
    plain = run_fusion(raw, store, pred, _settings(residual=False, pseudo={"enabled": False}), WINDOW,
                       tmp_path / "m2", tmp_path / "o2" / "fusion.h5")
    assert plain["sources"] == ["mae", "va", "expr", "au"] and plain["best_epoch"] >= 1


def test_pseudo_compare_reports_both_runs_and_off_reproduces_them(fused, tmp_path: Path):
    raw, store, pred = fused
    on = run_fusion(raw, store, pred, _settings(pseudo={"compare": True}), WINDOW, tmp_path / "m1",
                    tmp_path / "p1" / "f.h5")
    comparison = on["pseudo"]["comparison"]
    assert comparison["expr_f1"]["on"] == on["val"]["expr_f1"]
    assert comparison["rarest_f1"]["off"] == on["pseudo_off"]["expr_class_f1"][comparison["rarest_class"]]
    off = run_fusion(raw, store, pred, _settings(pseudo={"enabled": False, "compare": True}), WINDOW, tmp_path / "m2",
                     tmp_path / "p2" / "f.h5")
    assert not off["pseudo"]["enabled"] and "pseudo_off" not in off
    assert off["val"]["mtl"] == on["pseudo_off"]["mtl"]  # the ablation run is the comparison's off-run
    assert off["expr_class_f1"] == on["pseudo_off"]["expr_class_f1"]


def test_demo_truth_reports_how_right_the_pseudo_labels_were(fused, tmp_path: Path):
    raw, store, pred = fused
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    (copy / "demo_truth").mkdir()
    truth = np.full((48, 15), -1.0, np.float32)
    truth[:, COL_EXPR] = 2
    truth[:10, COL_EXPR] = -1  # frames with no basic expression
    np.savez(copy / "demo_truth" / "un1.npz", labels=truth)
    metrics = run_fusion(copy, store, pred, _settings(), WINDOW, tmp_path / "m", tmp_path / "p" / "f.h5")
    pseudo = read_fusion_predictions(tmp_path / "p" / "f.h5")[0]["un1"]["pseudo_label"]
    kept = pseudo != -1
    found = metrics["pseudo"]["demo_truth"]
    assert found["frames"] == int(kept.sum()) > 0  # only un1 has truth
    assert found["frames_without_basic_truth"] == int(kept[:10].sum())
    assert found["precision"] == pytest.approx(float((pseudo[10:][kept[10:]] == 2).mean()), abs=1e-4)
    assert found["chance"] == 1.0
    plain = run_fusion(raw, store, pred, _settings(), WINDOW, tmp_path / "m2", tmp_path / "p2" / "f.h5")
    assert "demo_truth" not in plain["pseudo"]  # a corpus without truth reports none


def test_no_confident_frame_skips_pseudo_labels_with_a_notice(fused, tmp_path: Path):
    raw, store, pred = fused
    notices: list[str] = []
    metrics = run_fusion(raw, store, pred, _settings(pseudo={"threshold": 1.0, "per_class": False}), WINDOW,
                         tmp_path / "m", tmp_path / "p" / "f.h5", notice=notices.append)
    assert len(notices) == 1 and notices[0].startswith("pseudo-labels skipped")
    assert metrics["pseudo"] == {"enabled": True, "used": False, "teacher": "temporal"} and "pseudo_off" not in metrics


def test_missing_task_model_is_named(fused, tmp_path: Path):
    raw, store, pred = fused
    partial = tmp_path / "pred"
    partial.mkdir()
    for task in ("va", "expr"):
        (partial / f"{task}.h5").write_bytes((pred / f"{task}.h5").read_bytes())
    with pytest.raises(DataError, match=r"au\.h5: individual task model 'au' is missing: run `abaw temporal "
                                        r"--task au` first"):
        run_fusion(raw, store, partial, _settings(), WINDOW, tmp_path / "m", tmp_path / "p" / "f.h5")


def test_task_model_on_another_extractor_is_named(fused, tmp_path: Path):
    raw, store, pred = fused
    other = tmp_path / "pred"
    other.mkdir()
    for task in ("va", "expr", "au"):
        (other / f"{task}.h5").write_bytes((pred / f"{task}.h5").read_bytes())
    with h5py.File(other / "expr.h5", "r+") as h5:
        meta = json.loads(h5.attrs["meta"])
        h5.attrs["meta"] = json.dumps({**meta, "extractor": "random"})
    with pytest.raises(DataError, match="individual task model 'expr' was trained on extractor 'random', but "
                                        r"fusion.extractors is \['mae'\]"):
        run_fusion(raw, store, other, _settings(), WINDOW, tmp_path / "m", tmp_path / "p" / "f.h5")
    with h5py.File(other / "expr.h5", "r+") as h5:
        h5.attrs["meta"] = json.dumps({**meta, "features": "0000000000000000"})
    with pytest.raises(DataError, match="individual task model 'expr' was trained on 'mae' features that have "
                                        "changed since"):
        run_fusion(raw, store, other, _settings(), WINDOW, tmp_path / "m", tmp_path / "p" / "f.h5")


def test_foreign_checkpoint_is_refused(tmp_path: Path):
    path = tmp_path / "fusion.pt"
    torch.save({"model": {}, "spec": {"widths": "nope"}}, path)
    with pytest.raises(CheckpointError, match="not a fusion checkpoint"):
        load_fusion_model(path)
    import pickle

    path.write_bytes(pickle.dumps(object()))
    with pytest.raises(CheckpointError, match="not a checkpoint this pipeline wrote"):
        load_fusion_model(path)


def test_teacher_can_be_the_frame_wise_model_or_the_better_one(fused, tmp_path: Path):
    raw, store, pred = fused
    data = load_fusion_data(raw, FeatureStore(store, mode="r"), pred, ["mae"])
    assert data.teacher("baseline")["va1"] is data.individual["baseline"]["va1"]["expr"]
    metrics = run_fusion(raw, store, pred, _settings(pseudo={"teacher": "best", "compare": False}), WINDOW,
                         tmp_path / "m", tmp_path / "p" / "f.h5")
    assert metrics["pseudo"]["teacher"] == metrics["individual"]["expr"]["best_model"]
