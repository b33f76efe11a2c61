"""The evaluate stage on a tiny real chain: scores of every model, post-processing, challenge files re-read by
the ingest readers, plots and the summary."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline_lib.config import EvaluateSettings
from pipeline_lib.data.annotations import read_annotation
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.mtl import read_mtl
from pipeline_lib.evaluate.run import run_evaluate
from pipeline_lib.evaluate.scores import PostProcess, decide
from pipeline_lib.evaluate.sources import load_eval_data
from pipeline_lib.evaluate.submissions import nearest_face_fill
from tests.train.conftest import FRAMES, build_chain

runner = CliRunner()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    return build_chain(tmp_path_factory.mktemp("evaluate"))


def test_nearest_face_fill_copies_the_closest_face_frame():
    values = np.arange(6, dtype=np.float32)[:, None]  # (6, 1)
    valid = np.array([False, True, False, False, True, False])
    assert nearest_face_fill(values, valid)[:, 0].tolist() == [1, 1, 1, 4, 4, 4]  # a tie goes to the earlier one
    assert nearest_face_fill(values, np.zeros(6, bool))[:, 0].tolist() == list(range(6))


def test_decide_smooths_va_thresholds_aus_and_takes_the_argmax():
    va = np.array([[0.0, 0.0], [0.9, 0.3], [0.0, 0.0]], np.float32)
    smoothed = decide(PostProcess("va", va_smoothing=3), va, np.ones(3, bool))
    np.testing.assert_allclose(smoothed[1], [0.3, 0.1], atol=1e-6)
    thresholds = np.full(12, 0.5)
    thresholds[0] = 0.2
    au = decide(PostProcess("au", au_thresholds=thresholds), np.full((1, 12), 0.3), np.ones(1, bool))
    assert au[0].tolist() == [1] + [0] * 11
    assert decide(PostProcess("expr"), np.eye(8)[[3, 5]], np.ones(2, bool)).tolist() == [3, 5]


def test_every_model_is_read_with_labels_on_the_store_frames(chain):
    data = load_eval_data(chain["raw"], chain["temporal"], chain["fusion"], chain["compound"])
    assert set(data.models["va"]) == {"frame-wise", "temporal", "fusion"}
    assert set(data.models["ce"]) == {"compound", "zero-shot"}
    assert [v.name for v in data.split("val", "ce")] == ["ce2"] and [v.name for v in data.split("val", "va")] == ["va1"]
    # x1 is VA train, EXPR / AU val: scored for EXPR and AU only, on labels read from their Validation_Set files
    assert [v.name for v in data.split("val", "expr")] == ["va1", "x1"]
    assert [v.name for v in data.split("val", "au")] == ["va1", "x1"]
    x1 = data.videos["x1"]
    assert x1.splits == {"VA": "train", "EXPR": "val", "AU": "val"} and (x1.labels[1:, 2] >= 0).all()
    assert data.videos["ce2"].ce[0] == -1 and data.videos["ce2"].n_frames == FRAMES


def test_run_scores_writes_submissions_that_read_back_and_plots(chain, tmp_path: Path):
    metrics, summary = run_evaluate(chain["raw"], chain["temporal"], chain["fusion"], chain["compound"],
                                    EvaluateSettings(va_smoothing=5), tmp_path / "sub", tmp_path / "plots")
    assert metrics["submissions"]["errors"] == [] and summary["submissions_ok"]
    assert metrics["submissions"]["files"] == {"VA": 1, "EXPR": 1, "AU": 1, "CE": 1, "MTL": 1}
    assert metrics["submissions"]["rows"] == {"VA": FRAMES, "EXPR": FRAMES, "AU": FRAMES, "CE": FRAMES,
                                              "MTL": FRAMES}
    for track, shape in (("VA", (FRAMES, 2)), ("EXPR", (FRAMES,)), ("AU", (FRAMES, 12)), ("CE", (FRAMES,))):
        path = tmp_path / "sub" / track / "te1.txt"
        assert read_annotation(path, track).shape == shape
        assert len(path.read_text().splitlines()) == FRAMES + 1  # header + one line per frame
    assert read_mtl(tmp_path / "sub" / "MTL" / "predictions.txt")["te1"].shape == (FRAMES, 15)
    for task in ("va", "expr", "au", "ce"):
        best = metrics["best"][task]
        assert summary[task] == {"model": best, "value": max(
            s["post"][{"va": "ccc_mean", "au": "f1_mean"}.get(task, "f1_macro")]
            for s in metrics["models"][task].values())}
    assert set(metrics["models"]["au"]["fusion"]["thresholds"]) == {f"AU{n}" for n in
                                                                    (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)}
    assert sorted(metrics["plots"]) == ["au_f1.png", "ce_confusion.png", "expr_confusion.png", "va_scatter.png",
                                        "va_timeseries.png"]
    assert all((tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in metrics["plots"])
    assert summary["mtl_fusion"] == metrics["mtl"]["fusion"]["mtl"]


def test_missing_compound_predictions_name_the_stage(chain, tmp_path: Path):
    with pytest.raises(DataError, match="run `abaw compound` first"):
        load_eval_data(chain["raw"], chain["temporal"], chain["fusion"], tmp_path / "nope.h5")


def test_cli_writes_metrics_and_summary(chain, tmp_path: Path, tiny_params_file: Path):
    from stages.cli import app

    args = ["evaluate", "--params", str(tiny_params_file), "--raw", str(chain["raw"]), "--temporal",
            str(chain["temporal"]), "--fusion", str(chain["fusion"]), "--compound", str(chain["compound"]),
            "--submissions", str(tmp_path / "sub"), "--plots", str(tmp_path / "plots"),
            "--report", str(tmp_path / "evaluate.json"), "--summary", str(tmp_path / "summary.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "re-read with 0 error(s)" in result.output
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "evaluate.json").is_file()


def _raw_copy(chain, tmp_path: Path) -> Path:
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(chain["raw"], raw)
    return raw


def test_a_task_without_validation_labels_is_submitted_unscored(chain, tmp_path: Path):
    """C-EXPR-DB has a CE test list but no CE labels: the compound model answers it with default
    post-processing, unscored (it used to stop with KeyError: 'ce')."""
    raw = _raw_copy(chain, tmp_path)
    manifest = raw / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("ce2,videos/ce2.mp4,CE:val,", "ce2,videos/ce2.mp4,,"))
    metrics, summary = run_evaluate(raw, chain["temporal"], chain["fusion"], chain["compound"], EvaluateSettings(),
                                    tmp_path / "sub", tmp_path / "plots")
    assert "ce" not in metrics["best"] and "ce" not in summary and metrics["unscored"] == {"ce": "compound"}
    assert summary["submissions_ok"] and (tmp_path / "sub" / "CE" / "te1.txt").is_file()
    assert "ce_confusion.png" not in metrics["plots"]


def test_a_listed_test_video_the_corpus_skipped_is_a_submission_error(chain, tmp_path: Path):
    raw = _raw_copy(chain, tmp_path)
    (raw / "test_set" / "AU_test_set_release.txt").write_text("te1\ngone\n")
    metrics, summary = run_evaluate(raw, chain["temporal"], chain["fusion"], chain["compound"], EvaluateSettings(),
                                    tmp_path / "sub", tmp_path / "plots")
    assert not summary["submissions_ok"] and metrics["submissions"]["errors"] == [
        f"{raw / 'test_set' / 'AU_test_set_release.txt'}: 1 listed video(s) not in the corpus (first: 'gone'; see "
        "the warnings of `abaw corpus`): no prediction for them"]
    assert metrics["submissions"]["files"]["AU"] == 1  # te1's file is still written


def _with_mesh(chain, tmp_path: Path, skip: str | None = None) -> Path:
    """A copy of the chain's feature store with a `mesh` array per video (all but `skip`): jawOpen = frame / T."""
    import shutil

    from pipeline_lib.features.mesh import MESH_COLUMNS
    from pipeline_lib.features.store import FeatureStore

    path = tmp_path / "features.zarr"
    shutil.copytree(chain["store"], path)
    store = FeatureStore(path)
    for video in store.videos("mae"):
        if video == skip:
            continue
        valid = store.read("mae", video)[1]
        features = np.zeros((len(valid), len(MESH_COLUMNS)), np.float32)
        features[:, MESH_COLUMNS.index("jawOpen")] = np.arange(len(valid)) / len(valid)
        store.write("mesh", video, features, valid, {"extractor": "mesh"})
    return path


def test_the_zero_shot_blendshape_au_model_is_scored_when_the_store_has_mesh(chain, tmp_path: Path):
    from pipeline_lib.data.labels import AU_NAMES

    features = _with_mesh(chain, tmp_path)
    data = load_eval_data(chain["raw"], chain["temporal"], chain["fusion"], chain["compound"], features)
    scores = data.models["au"]["blendshapes"]["va1"]  # (T, 12): AU25 half of jawOpen's column, AU26 all of it
    from pipeline_lib.features.store import FeatureStore

    valid = FeatureStore(features, mode="r").read("mesh", "va1")[1]  # the store keeps faceless rows at 0
    ramp = np.where(valid, np.arange(FRAMES) / FRAMES, 0).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(scores[:, AU_NAMES.index("AU26")], ramp)
    np.testing.assert_allclose(scores[:, AU_NAMES.index("AU25")], ramp / 3, atol=1e-6)
    assert not np.delete(scores, [AU_NAMES.index("AU25"), AU_NAMES.index("AU26")], axis=1).any()
    assert "blendshapes" not in data.models["va"]
    metrics, _ = run_evaluate(chain["raw"], chain["temporal"], chain["fusion"], chain["compound"],
                              EvaluateSettings(), tmp_path / "sub", tmp_path / "plots", features)
    assert set(metrics["models"]["au"]) == {"frame-wise", "temporal", "fusion", "blendshapes"}
    assert set(metrics["models"]["au"]["blendshapes"]["thresholds"]) == set(AU_NAMES)


def test_no_blendshape_model_without_mesh_for_every_video(chain, tmp_path: Path):
    partial = _with_mesh(chain, tmp_path, skip="va1")
    for features in (chain["store"], partial, tmp_path / "none.zarr"):
        data = load_eval_data(chain["raw"], chain["temporal"], chain["fusion"], chain["compound"], features)
        assert "blendshapes" not in data.models["au"]
