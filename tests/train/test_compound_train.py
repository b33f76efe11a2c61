"""The compound stage on a tiny real chain: curriculum sampling, zero-shot scores, the model's prior, the
curriculum-vs-direct comparison, outputs and bad input."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipeline_lib.config import CompoundSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.data.labels import CE_NAMES, EXPR_NAMES
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.features.windows import VideoArrays, WindowDataset
from pipeline_lib.models.compound import CompoundModel, zero_shot_scores
from pipeline_lib.train.compound import constituent_loss
from pipeline_lib.train.compound_data import COL_BASIC, COL_CE, load_compound_data
from pipeline_lib.train.compound_run import load_compound_model, read_compound_predictions, run_compound
from pipeline_lib.train.curriculum import CurriculumBatches, epoch_shares
from tests.train.conftest import build_chain

WINDOW = 16


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    return build_chain(tmp_path_factory.mktemp("compound"), WINDOW)


def _settings(**update) -> CompoundSettings:
    return CompoundSettings(hidden=8, heads=2, batch_size=4, threads=1,
                            curriculum={"epochs": [1, 1, 1], "share": [0.0, 0.5, 1.0]}, **update)


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


def test_epoch_shares_expand_the_schedule_and_reject_bad_ones():
    assert epoch_shares([2, 1, 1], [0.0, 0.5, 1.0]) == [0.0, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="one share per stage"):
        epoch_shares([1, 1], [0.0])
    with pytest.raises(ValueError, match="shares in"):
        epoch_shares([1], [1.5])


def _video(name: str, basic: bool, n: int = 8) -> VideoArrays:
    labels = np.full((n, 2), -1.0, np.float32)
    labels[:, COL_BASIC if basic else COL_CE] = 1
    return VideoArrays(name, np.zeros((n, 2), np.float32), np.ones(n, bool), labels, labels >= 0)


def test_curriculum_batches_draw_the_scheduled_share_of_compound_windows():
    data = WindowDataset([_video("b", True, 40), _video("c", False, 40)], window=4, stride=4)  # 10 + 10 windows
    basic, compound = list(range(10)), list(range(10, 20))
    batches = CurriculumBatches(data, basic, compound, [0.0, 0.3, 1.0], per_epoch=10, batch_size=4, seed=0)
    assert len(batches) == 3
    for share in (0.0, 0.3, 1.0):
        seen = torch.cat([b["video"] for b in batches])  # one pass = one epoch
        assert len(seen) == 10 and int((seen == 1).sum()) == round(share * 10)
    with pytest.raises(ValueError, match="compound pool is empty"):
        CurriculumBatches(data, basic, [], [0.5], per_epoch=10, batch_size=4)
    with pytest.raises(ValueError, match="basic pool is empty"):
        CurriculumBatches(data, [], compound, [0.5], per_epoch=10, batch_size=4)


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


def test_run_compares_curriculum_with_direct_and_writes_outputs(chain, tmp_path: Path):
    metrics = run_compound(chain["raw"], chain["store"], chain["fusion"], _settings(), WINDOW, tmp_path / "m",
                           tmp_path / "p" / "compound.h5")
    for run in ("curriculum", "direct"):
        assert len(metrics[run]["curve"]) == 3 and 1 <= metrics[run]["best_epoch"] <= 3
        assert metrics[run]["f1_macro"] == max(metrics[run]["curve"])
        assert set(metrics[run]["class_f1"]) == set(CE_NAMES)
    gap = metrics["curriculum"]["f1_macro"] - metrics["direct"]["f1_macro"]
    assert metrics["curriculum_minus_direct"] == round(gap, 4) and metrics["curriculum_beats_direct"] == (gap >= 0)
    videos, meta = read_compound_predictions(tmp_path / "p" / "compound.h5")
    assert set(videos) == {"tr1", "tr2", "tr3", "va1", "te1", "un1", "ce1", "ce2"}
    assert videos["te1"]["ce"].shape == (48, len(CE_NAMES)) and videos["te1"]["basic"].shape == (48, 8)
    np.testing.assert_allclose(videos["te1"]["ce"].sum(1), 1.0, atol=1e-5)
    model, saved = load_compound_model(tmp_path / "m" / "compound.pt")
    assert saved["sources"] == meta["sources"] and model.spec["hidden"] == 8


def test_without_compare_only_the_curriculum_runs(chain, tmp_path: Path):
    metrics = run_compound(chain["raw"], chain["store"], chain["fusion"], _settings(compare=False), WINDOW,
                           tmp_path / "m", tmp_path / "p" / "c.h5")
    assert "direct" not in metrics and "curriculum_beats_direct" not in metrics


def test_missing_fusion_predictions_name_the_stage(chain, tmp_path: Path):
    with pytest.raises(DataError, match="run `abaw fusion` first"):
        run_compound(chain["raw"], chain["store"], tmp_path / "nope.h5", _settings(), WINDOW, tmp_path / "m",
                     tmp_path / "p.h5")


def test_foreign_checkpoint_is_refused(tmp_path: Path):
    path = tmp_path / "compound.pt"
    torch.save({"model": {}, "spec": {"in_dim": 3, "nonsense": 1}}, path)
    with pytest.raises(CheckpointError, match="not a compound checkpoint"):
        load_compound_model(path)


def test_without_ce_training_frames_the_zero_shot_scores_stand_in_with_a_notice(chain, tmp_path: Path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(chain["raw"], raw)
    ce_file = raw / "annotations" / "CE" / "Train_Set" / "ce1.txt"
    lines = ce_file.read_text().splitlines()
    ce_file.write_text("\n".join([lines[0]] + ["-1"] * (len(lines) - 1)) + "\n")
    notices: list[str] = []
    metrics = run_compound(raw, chain["store"], chain["fusion"], _settings(), WINDOW, tmp_path / "m",
                           tmp_path / "p" / "c.h5", notice=notices.append)
    assert metrics["trained"] is False and "no CE-labelled training frame" in metrics["reason"]
    assert len(notices) == 1 and "zero-shot" in notices[0]
    videos, _ = read_compound_predictions(tmp_path / "p" / "c.h5")
    expected = videos["te1"]["zero_shot"] / videos["te1"]["zero_shot"].sum(1, keepdims=True)
    np.testing.assert_allclose(videos["te1"]["ce"], expected, atol=1e-6)
    model, meta = load_compound_model(tmp_path / "m" / "compound.pt")
    assert model is None and "no CE-labelled" in meta["reason"]
