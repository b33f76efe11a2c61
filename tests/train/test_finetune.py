"""LP-FT of the MAE encoder: what trains, what stays, the best epoch kept, a checkpoint load_mae reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_lib.config import FinetuneSettings
from pipeline_lib.data.errors import DataError
from pipeline_lib.models.mae import MAE, config_by_name, load_mae
from pipeline_lib.train.finetune import (
    FaceVideo,
    _centred,
    _parameter_groups,
    finetune_encoder,
    save_finetuned,
)

OVERRIDES = {"depth": 3, "decoder_depth": 1, "width": 32, "heads": 2, "decoder_width": 32, "decoder_heads": 2}


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = MAE(config_by_name("mae_tiny", **OVERRIDES))
    path = tmp_path / "mae.pt"
    torch.save({"model": model.state_dict(), "config": {"name": "mae_tiny", "overrides": OVERRIDES},
                "meta": {"seed": 0}}, path)
    return path


def _video(name: str, seed: int, frames: int = 12) -> FaceVideo:
    """EXPR class k (k = 0..3) shown as a bright square at one of four places, on noise."""
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 80, (frames, 112, 112, 3), dtype=np.uint8)
    classes = rng.integers(0, 4, frames)
    for i, k in enumerate(classes):
        crops[i, 28 * k:28 * k + 28, :28] = 255
    present = np.ones(frames, bool)
    present[-1] = False
    labels = classes[:, None].astype(np.float32)
    annotated = np.ones((frames, 1), bool)
    annotated[0] = False
    return FaceVideo(name, crops, present, labels, annotated)


def _settings(**changes) -> FinetuneSettings:
    return FinetuneSettings(**{"epochs": 2, "steps_per_epoch": 2, "videos_per_batch": 2, "frames_per_video": 4,
                               "probe_steps": 5, "batch_size": 8, "threads": 1, **changes})


def test_centred_removes_each_videos_mean():
    features = torch.arange(12.0).reshape(6, 2)  # 2 videos x 3 frames
    centred = _centred(features, 2).view(2, 3, 2)
    assert torch.allclose(centred.mean(dim=1), torch.zeros(2, 2))
    assert torch.equal(centred[0], features[:3] - features[:3].mean(0))


def test_layer_decay_from_the_top_block(checkpoint):
    encoder = load_mae(checkpoint)[0]
    head = torch.nn.Linear(32, 8)
    groups = _parameter_groups(encoder, head, _settings(blocks=2, lr=1e-3, layer_decay=0.5, head_lr=1e-2))
    assert [g["lr"] for g in groups] == [1e-3, 1e-3, 5e-4, 1e-2]  # norm, block 2, block 1, head
    assert groups[1]["params"][0] is next(encoder.blocks[2].parameters())
    assert groups[2]["params"][0] is next(encoder.blocks[1].parameters())


def test_only_the_last_blocks_change_and_the_best_epoch_is_kept(checkpoint, tmp_path, one_torch_thread):
    train = [_video(f"t{i}", i) for i in range(3)]
    val = [_video("v", 9)]
    epochs_seen = []
    settings = _settings(blocks=1, lr=1e-2)
    encoder, result = finetune_encoder(train, val, "expr", checkpoint, settings,
                                       on_epoch=lambda e, loss, score: epochs_seen.append(e))
    assert epochs_seen == [0, 1, 2] and len(result.scores) == 3 and len(result.losses) == 2
    assert result.best_epoch == int(np.argmax(result.scores))  # the first of equal scores
    assert result.best_score == max(result.scores) and (result.train_videos, result.val_videos) == (3, 1)
    pretrained = load_mae(checkpoint)[0].state_dict()
    tuned = encoder.state_dict()
    frozen = [k for k in tuned if not k.startswith(("blocks.2.", "norm."))]
    assert all(torch.equal(tuned[k], pretrained[k]) for k in frozen)
    changed = [k for k in tuned if k.startswith("blocks.2.") and not torch.equal(tuned[k], pretrained[k])]
    assert bool(changed) == (result.best_epoch > 0)
    assert not any(p.requires_grad for p in encoder.parameters()) and not encoder.training
    save_finetuned(tmp_path / "expr.pt", encoder, checkpoint, result, settings)
    reloaded, meta = load_mae(tmp_path / "expr.pt")
    assert all(torch.equal(v, tuned[k]) for k, v in reloaded.state_dict().items())
    assert meta["seed"] == 0 and meta["finetuned"]["task"] == "expr"
    assert meta["finetuned"]["best_epoch"] == result.best_epoch and len(meta["finetuned"]["scores"]) == 3


def test_blocks_zero_is_the_linear_probe_alone(checkpoint, one_torch_thread):
    encoder, result = finetune_encoder([_video("t", 0)], [_video("v", 1)], "expr", checkpoint, _settings(blocks=0))
    assert result.best_epoch == 0 and len(result.scores) == 1 and result.losses == []
    pretrained = load_mae(checkpoint)[0].state_dict()
    assert all(torch.equal(v, pretrained[k]) for k, v in encoder.state_dict().items())


@pytest.mark.parametrize("task, labels", [("va", np.full((12, 2), 0.3, np.float32)),
                                          ("au", np.eye(12, dtype=np.float32))])
def test_va_and_au_run(checkpoint, task, labels, one_torch_thread):
    base = _video("t", 0)
    video = FaceVideo("t", base.crops, base.present, labels, np.ones_like(labels, bool))
    labels_val = labels.copy()
    labels_val[::2] *= -1 if task == "va" else 0
    val = FaceVideo("v", base.crops, base.present, labels_val, np.ones_like(labels, bool))
    _, result = finetune_encoder([video], [val], task, checkpoint, _settings(epochs=1))
    assert result.metric == {"va": "ccc_mean", "au": "f1_mean"}[task] and len(result.scores) == 2
    assert all(np.isfinite(result.scores))


def test_too_few_labelled_frames_or_no_validation_video(checkpoint):
    with pytest.raises(DataError, match=r"finetune expr: no training video with 40\+ labelled face frames"):
        finetune_encoder([_video("t", 0)], [_video("v", 1)], "expr", checkpoint, _settings(frames_per_video=40))
    with pytest.raises(DataError, match=r"finetune va: no validation video annotated for VA"):
        finetune_encoder([_video("t", 0)], [], "va", checkpoint, _settings())
