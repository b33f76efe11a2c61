"""The compound stage on a tiny real chain: curriculum sampling, zero-shot scores, the model's prior, the
curriculum-vs-direct comparison, outputs and bad input."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline_lib.artifacts.predictions import read_compound_predictions
from pipeline_lib.config import CompoundSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.data.labels import CE_NAMES, EXPR_NAMES
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.models.compound import CompoundModel, load_compound_model, zero_shot_scores
from pipeline_lib.train.compound import constituent_loss
from pipeline_lib.train.compound_data import COL_BASIC, COL_CE, load_compound_data
from pipeline_lib.train.compound_run import run_compound
from pipeline_lib.train.curriculum import CurriculumBatches, Stage, curriculum_stages, direct_stages, epoch_shares
from pipeline_lib.train.synthetic import SyntheticCompound, pure_windows
from tests.train.conftest import TINY_COMPOUND, build_chain

WINDOW = 16


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    return build_chain(tmp_path_factory.mktemp("compound"), WINDOW)


def _settings(**update) -> CompoundSettings:
    return CompoundSettings(**{**TINY_COMPOUND, "hidden": 8, "heads": 2, "batch_size": 4, "threads": 1, "seeds": 2,
                               "synthetic": {"windows": 32},
                               "curriculum": {"epochs": [1, 1, 1], "share": [0.0, 0.5, 1.0],
                                              "synthetic": [0.0, 1.0, 0.0]}, **update})


def test_zero_shot_score_sums_the_two_constituents():
    probs = torch.zeros(1, len(EXPR_NAMES))
    probs[0, EXPR_NAMES.index("Happiness")] = 0.6
    probs[0, EXPR_NAMES.index("Surprise")] = 0.3
    probs[0, EXPR_NAMES.index("Neutral")] = 0.1
    scores = zero_shot_scores(probs)[0]
    assert scores[CE_NAMES.index("Happily_Surprised")] == pytest.approx(0.9)
    assert scores[CE_NAMES.index("Fearfully_Surprised")] == pytest.approx(0.3)
    assert scores[CE_NAMES.index("Sadly_Angry")] == pytest.approx(0.0)
    assert zero_shot_scores(probs).argmax().item() == CE_NAMES.index("Happily_Surprised")


def test_curriculum_stages_split_compound_windows_into_real_and_synthetic():
    stages = curriculum_stages([2, 1, 1], [0.0, 0.5, 1.0], [0.0, 0.5, 0.0])
    assert stages == [Stage(2, 0.0, 0.0), Stage(1, 0.25, 0.25), Stage(1, 1.0, 0.0)]
    assert epoch_shares(stages) == [(0.0, 0.0), (0.0, 0.0), (0.25, 0.25), (1.0, 0.0)]
    assert curriculum_stages([2, 1], [0.0, 0.4]) == [Stage(2, 0.0), Stage(1, 0.4)]  # no synthetic fraction: real only
    # without CE training labels: the all-real stage is dropped, the mixed one's compound windows all synthetic
    assert curriculum_stages([2, 1, 1], [0.0, 0.5, 1.0], [0.0, 0.5, 0.0], real=False) == [
        Stage(2, 0.0, 0.0), Stage(1, 0.0, 0.5)]
    assert direct_stages([2, 1]) == [Stage(2, 1.0), Stage(1, 1.0)]
    with pytest.raises(ValueError, match="one share per stage"):
        curriculum_stages([1, 1], [0.0])
    with pytest.raises(ValueError, match="shares in"):
        curriculum_stages([1], [1.5])
    with pytest.raises(ValueError, match="summing to at most 1"):
        Stage(1, 0.7, 0.5)


def _video(name: str, basic: bool, n: int = 8) -> VideoArrays:
    labels = np.full((n, 2), -1.0, np.float32)
    labels[:, COL_BASIC if basic else COL_CE] = 1
    return VideoArrays(name, np.zeros((n, 2), np.float32), np.ones(n, bool), labels, labels >= 0)


def test_curriculum_batches_draw_the_scheduled_shares_of_each_pool():
    data = WindowDataset([_video("b", True, 40), _video("c", False, 40), _video("s", False, 40)], window=4,
                         stride=4)  # 10 + 10 + 10 windows; the third video stands for the synthetic pool
    basic, compound, synthetic = list(range(10)), list(range(10, 20)), list(range(20, 30))
    shares = [(0.0, 0.0), (0.3, 0.0), (0.2, 0.5), (1.0, 0.0)]
    batches = CurriculumBatches(data, basic, compound, shares, per_epoch=10, batch_size=4, seed=0,
                                synthetic=synthetic)
    assert len(batches) == 3
    for real, mixed in shares:
        seen = torch.cat([b["video"] for b in batches])  # one pass = one epoch
        assert len(seen) == 10 and int((seen == 1).sum()) == round(real * 10)
        assert int((seen == 2).sum()) == round(mixed * 10)
    with pytest.raises(ValueError, match="compound pool is empty"):
        CurriculumBatches(data, basic, [], [(0.5, 0.0)], per_epoch=10, batch_size=4)
    with pytest.raises(ValueError, match="synthetic pool is empty"):
        CurriculumBatches(data, basic, compound, [(0.0, 0.5)], per_epoch=10, batch_size=4)
    with pytest.raises(ValueError, match="basic pool is empty"):
        CurriculumBatches(data, [], compound, [(0.5, 0.0)], per_epoch=10, batch_size=4)
    # an all-compound epoch stays all compound when both shares round down (2.5 -> 2 and 2.5 -> 2 of 5)
    halves = CurriculumBatches(data, [], compound, [(0.5, 0.5)], per_epoch=5, batch_size=5, synthetic=synthetic)
    seen = torch.cat([b["video"] for b in halves])
    assert len(seen) == 5 and int((seen == 0).sum()) == 0 and int((seen == 1).sum()) == 2


def _expr_video(name: str, classes: list[int], n_per: int = 8, width: int = 3) -> VideoArrays:
    """A video of `n_per`-frame EXPR segments (-1 = unannotated), features = frame index in every column."""
    expr = np.repeat(np.array(classes, np.float32), n_per)
    labels = np.stack([expr, np.full_like(expr, -1)], axis=1)  # (T, 2): basic, compound
    features = np.repeat(np.arange(len(expr), dtype=np.float32)[:, None], width, axis=1)
    return VideoArrays(name, features, np.ones(len(expr), bool), labels, labels >= 0)


def test_pure_windows_need_enough_frames_of_one_class():
    fear, surprise, happy = (EXPR_NAMES.index(n) for n in ("Fear", "Surprise", "Happiness"))
    # windows of 8 at stride 8: [fear x8], [surprise x8], [fear x4 + surprise x4], [-1 x8]
    video = _expr_video("v", [fear, surprise, -1, -1], n_per=8)
    video.labels[16:20, 0], video.labels[20:24, 0] = fear, surprise
    video = VideoArrays("v", video.features, video.valid, video.labels, video.labels >= 0)
    data = WindowDataset([video], window=8, stride=8)
    pools = pure_windows(data, COL_BASIC, purity=0.6, min_frames=4)
    assert {c: v.tolist() for c, v in pools.items()} == {fear: [0], surprise: [1]}
    assert {c: v.tolist() for c, v in pure_windows(data, COL_BASIC, 0.5, 4).items()} == {fear: [0, 2], surprise: [1]}
    assert SyntheticCompound.available(pools) == [CE_NAMES.index("Fearfully_Surprised")]
    assert happy not in pools


def test_synthetic_windows_mix_two_constituents_and_label_the_compound():
    fear, surprise = EXPR_NAMES.index("Fear"), EXPR_NAMES.index("Surprise")
    data = WindowDataset([_expr_video("f", [fear]), _expr_video("s", [surprise] * 2)], window=8, stride=8)
    data.videos[1].labels[9, 0] = -1  # one frame of the second surprise window unannotated
    data.videos[1].label_mask[9, 0] = False
    mixed = SyntheticCompound(data, COL_BASIC, COL_CE, count=20, mix=(0.25, 0.25), purity=0.6, min_frames=4, seed=1)
    assert len(mixed) == 20 and mixed.classes == [CE_NAMES.index("Fearfully_Surprised")]
    assert mixed.summary()["per_compound"]["Fearfully_Surprised"] == 20
    assert mixed.summary()["missing"] == [n for n in CE_NAMES if n != "Fearfully_Surprised"]
    for i in range(len(mixed)):
        item, pair = mixed[i], mixed.pairs[i]
        assert pair.first == 0 and pair.second in (1, 2) and pair.lam == 0.25
        second = data[pair.second]
        expected = 0.25 * data[0]["features"] + 0.75 * second["features"]
        torch.testing.assert_close(item["features"], expected)
        labelled = second["label_mask"][:, COL_BASIC]  # the fear window is labelled throughout
        assert torch.equal(item["label_mask"][:, COL_CE], labelled) and not item["label_mask"][:, COL_BASIC].any()
        assert (item["labels"][labelled, COL_CE] == CE_NAMES.index("Fearfully_Surprised")).all()
        assert (item["labels"][~labelled, COL_CE] == -1).all() and int(item["video"]) == -1
    assert {p.second for p in mixed.pairs} == {1, 2}  # both surprise windows are drawn
    with pytest.raises(ValueError, match="mix must be a range"):
        SyntheticCompound(data, COL_BASIC, COL_CE, count=1, mix=(0.8, 0.2))


def test_prior_makes_an_untrained_compound_head_follow_the_zero_shot_score():
    torch.manual_seed(0)
    model = CompoundModel(4, hidden=8, encoder="framewise", encoder_kwargs={"dropout": 0.0}, prior=True).eval()
    torch.nn.init.zeros_(model.compound[1].weight)
    torch.nn.init.zeros_(model.compound[1].bias)
    basic, compound, _ = model(torch.randn(2, 5, 4))
    expected = zero_shot_scores(basic.softmax(-1)).argmax(-1)  # (2, 5)
    assert torch.equal(compound.argmax(-1), expected)


def test_constituent_loss_is_low_when_the_basic_head_names_a_constituent():
    logits = torch.full((1, 2, len(EXPR_NAMES)), -10.0)
    logits[0, :, EXPR_NAMES.index("Fear")] = 10.0
    target = torch.tensor([[CE_NAMES.index("Fearfully_Surprised"), -1]])
    assert constituent_loss(logits, target).item() == pytest.approx(0.0, abs=1e-3)
    target = torch.tensor([[CE_NAMES.index("Happily_Surprised"), -1]])
    assert constituent_loss(logits, target).item() > 5
    assert constituent_loss(logits, torch.tensor([[-1, -1]])).item() == 0.0


def test_inputs_join_frames_fusion_stream_and_zero_shot_with_both_labels(chain):
    data = load_compound_data(chain["raw"], FeatureStore(chain["store"], mode="r"), chain["fusion"], ["mae"])
    assert data.sources == ["mae", "fusion_expr", "zero_shot"]
    assert [v.name for v in data.compound_train] == ["ce1"] and [v.name for v in data.val] == ["ce2"]
    assert {v.name for v in data.basic_train} == {"tr1", "tr2", "tr3"}
    video = next(v for v in data.every if v.name == "ce1")
    assert video.features.shape == (48, 8 + 8 + len(CE_NAMES))
    assert video.labels[0, COL_CE] == -1 and not video.label_mask[0, COL_CE] and video.label_mask[1:, COL_CE].all()
    assert not video.label_mask[:, COL_BASIC].any()
    with h5py.File(chain["fusion"]) as h5:
        expected = zero_shot_scores(torch.from_numpy(h5["ce1/expr"][...])).numpy()
    np.testing.assert_allclose(data.zero_shot["ce1"], expected, atol=1e-6)
    np.testing.assert_allclose(video.features[:, -len(CE_NAMES):], expected, atol=2e-3)  # float16


def test_run_compares_curriculum_with_direct_and_synthetic_only_and_writes_outputs(chain, tmp_path: Path):
    metrics = run_compound(chain["raw"], chain["store"], chain["fusion"], _settings(), WINDOW, tmp_path / "m",
                           tmp_path / "p" / "compound.h5")
    assert metrics["real_compound_labels"] is True
    for run, epochs in (("curriculum", 3), ("direct", 3), ("synthetic_only", 2)):  # synthetic only: no all-real stage
        assert len(metrics[run]["curve"]) == epochs and 1 <= metrics[run]["best_epoch"] <= epochs
        assert metrics[run]["f1_macro"] == max(metrics[run]["curve"])
        assert set(metrics[run]["class_f1"]) == set(CE_NAMES)
    gap = metrics["curriculum"]["f1_macro"] - metrics["direct"]["f1_macro"]
    assert metrics["curriculum_minus_direct"] == round(gap, 4) and metrics["curriculum_beats_direct"] == (gap >= 0)
    assert metrics["synthetic"]["windows"] == 32 and sum(metrics["synthetic"]["per_compound"].values()) == 32
    seeds = metrics["seeds"]
    assert seeds["seeds"] == [0, 1] and set(seeds["f1_macro"]) == {"curriculum", "direct", "synthetic_only",
                                                                  "zero_shot"}
    for run in ("curriculum", "direct", "synthetic_only"):  # seed 0's run is the one reported above
        assert seeds["f1_macro"][run][0] == metrics[run]["f1_macro"] and len(seeds["f1_macro"][run]) == 2
        assert seeds["mean"][run] == round(float(np.mean(seeds["f1_macro"][run])), 4)
    assert seeds["f1_macro"]["zero_shot"] == [metrics["zero_shot"]["f1_macro"]] * 2
    videos, meta = read_compound_predictions(tmp_path / "p" / "compound.h5")
    assert set(videos) == {"tr1", "tr2", "tr3", "va1", "te1", "un1", "ce1", "ce2", "x1"}
    assert videos["te1"]["ce"].shape == (48, len(CE_NAMES)) and videos["te1"]["basic"].shape == (48, 8)
    np.testing.assert_allclose(videos["te1"]["ce"].sum(1), 1.0, atol=1e-5)
    model, saved = load_compound_model(tmp_path / "m" / "compound.pt")
    assert saved["sources"] == meta["sources"] and model.spec["hidden"] == 8


def test_without_compare_only_the_curriculum_runs(chain, tmp_path: Path):
    metrics = run_compound(chain["raw"], chain["store"], chain["fusion"], _settings(compare=False), WINDOW,
                           tmp_path / "m", tmp_path / "p" / "c.h5")
    assert "direct" not in metrics and "synthetic_only" not in metrics and "curriculum_beats_direct" not in metrics


def test_missing_fusion_predictions_name_the_stage(chain, tmp_path: Path):
    with pytest.raises(DataError, match="run `abaw fusion` first"):
        run_compound(chain["raw"], chain["store"], tmp_path / "nope.h5", _settings(), WINDOW, tmp_path / "m",
                     tmp_path / "p.h5")


def test_foreign_checkpoint_is_refused(tmp_path: Path):
    path = tmp_path / "compound.pt"
    torch.save({"model": {}, "spec": {"in_dim": 3, "nonsense": 1}}, path)
    with pytest.raises(CheckpointError, match="not a compound checkpoint"):
        load_compound_model(path)


def _without_ce_training_labels(chain, tmp_path: Path) -> Path:
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(chain["raw"], raw)
    ce_file = raw / "annotations" / "CE" / "Train_Set" / "ce1.txt"
    lines = ce_file.read_text().splitlines()
    ce_file.write_text("\n".join([lines[0]] + ["-1"] * (len(lines) - 1)) + "\n")
    return raw


def test_without_ce_training_frames_the_curriculum_trains_on_synthetic_windows(chain, tmp_path: Path):
    """C-EXPR-DB ships no CE training labels: single -> synthetic compound, the all-real stage dropped."""
    raw = _without_ce_training_labels(chain, tmp_path)
    notices: list[str] = []
    metrics = run_compound(raw, chain["store"], chain["fusion"], _settings(), WINDOW, tmp_path / "m",
                           tmp_path / "p" / "c.h5", notice=notices.append)
    assert metrics["trained"] and metrics["real_compound_labels"] is False and notices == []
    assert len(metrics["curriculum"]["curve"]) == 2  # epochs of the stages kept: [1, 1]
    assert "direct" not in metrics and "synthetic_only" not in metrics  # the curriculum is synthetic-only here
    assert metrics["seeds"]["f1_macro"].keys() == {"curriculum", "zero_shot"}
    model, meta = load_compound_model(tmp_path / "m" / "compound.pt")
    assert model is not None and meta["best_epoch"] == metrics["curriculum"]["best_epoch"]


def test_without_ce_validation_the_last_epoch_is_kept_with_a_notice(chain, tmp_path: Path):
    raw = _without_ce_training_labels(chain, tmp_path)
    (raw / "annotations" / "CE" / "Validation_Set" / "ce2.txt").unlink()
    manifest = raw / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("ce2,videos/ce2.mp4,CE:val,", "ce2,videos/ce2.mp4,,"))
    notices: list[str] = []
    metrics = run_compound(raw, chain["store"], chain["fusion"], _settings(), WINDOW, tmp_path / "m",
                           tmp_path / "p" / "c.h5", notice=notices.append)
    assert metrics["trained"] and metrics["val_videos"] == 0 and "seeds" not in metrics and "zero_shot" not in metrics
    assert metrics["curriculum"]["best_epoch"] == 2 and "f1_macro" not in metrics["curriculum"]
    assert notices == ["compound: no CE-labelled validation video; the last epoch is kept and no CE score is reported"]
    videos, _ = read_compound_predictions(tmp_path / "p" / "c.h5")
    assert videos["te1"]["ce"].shape == (48, len(CE_NAMES))


def test_without_ce_training_frames_and_no_synthetic_stage_the_zero_shot_scores_stand_in(chain, tmp_path: Path):
    raw = _without_ce_training_labels(chain, tmp_path)
    notices: list[str] = []
    settings = _settings(curriculum={"epochs": [1, 1], "share": [0.0, 1.0], "synthetic": [0.0, 0.0]})
    metrics = run_compound(raw, chain["store"], chain["fusion"], settings, WINDOW, tmp_path / "m",
                           tmp_path / "p" / "c.h5", notice=notices.append)
    assert metrics["trained"] is False and "no stage of compound.curriculum draws synthetic" in metrics["reason"]
    assert len(notices) == 1


def test_without_ce_training_frames_and_synthetic_off_the_zero_shot_scores_stand_in(chain, tmp_path: Path):
    raw = _without_ce_training_labels(chain, tmp_path)
    notices: list[str] = []
    metrics = run_compound(raw, chain["store"], chain["fusion"], _settings(synthetic={"enabled": False}), WINDOW,
                           tmp_path / "m", tmp_path / "p" / "c.h5", notice=notices.append)
    assert metrics["trained"] is False and "no CE-labelled training frame" in metrics["reason"]
    assert "compound.synthetic is off" in metrics["reason"]
    assert len(notices) == 1 and "zero-shot" in notices[0]
    videos, _ = read_compound_predictions(tmp_path / "p" / "c.h5")
    expected = videos["te1"]["zero_shot"] / videos["te1"]["zero_shot"].sum(1, keepdims=True)
    np.testing.assert_allclose(videos["te1"]["ce"], expected, atol=1e-6)
    model, meta = load_compound_model(tmp_path / "m" / "compound.pt")
    assert model is None and "no CE-labelled" in meta["reason"]
