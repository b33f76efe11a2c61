"""MAE pretraining: the loss falls on a tiny run, checkpoints load weights-only, resume, foreign files refused."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_lib.config import ConfigError, PretrainSettings
from pipeline_lib.data.errors import CheckpointError, DataError
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.models.mae import load_mae
from pipeline_lib.train.face_frames import FaceFrames
from pipeline_lib.train.pretrain import pretrain_mae
from pipeline_lib.train.schedule import warmup_cosine


def _faces(t: int, seed: int) -> np.ndarray:
    """(t, 112, 112, 3) smooth, structured pictures: a bright disc with two dark 'eyes' that drift."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:112, :112]
    out = np.zeros((t, 112, 112, 3), np.uint8)
    for k in range(t):
        cx, cy = 56 + rng.normal(0, 4), 56 + rng.normal(0, 4)
        face = ((x - cx) ** 2 + (y - cy) ** 2 < 40 ** 2) * 170.0 + 40
        for ex in (-15, 15):
            face[(x - cx - ex) ** 2 + (y - cy + 10) ** 2 < 36] = 30
        out[k] = np.clip(face[:, :, None] * [1.0, 0.85, 0.7] + rng.normal(0, 3, (112, 112, 1)), 0, 255)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("faces")
    paths = []
    for v in range(2):
        crops = _faces(40, v)
        present = np.ones(40, bool)
        present[::10] = False  # absent frames are not trained on
        crops[~present] = 0
        filled = np.zeros(40, bool)
        filled[5] = True  # nor are filled ones
        nan = np.full((40, 4), np.nan, np.float32)
        write_faces(root / f"v{v}.h5", FaceTrack(crops, present, filled, nan, np.full((40, 5, 2), np.nan, np.float32),
                                                 present.astype(np.float32)), {})
        paths.append(root / f"v{v}.h5")
    return paths


def test_face_frames_index_only_detected_frames_and_pickle_without_handles(stores):
    data = FaceFrames(stores, frame_stride=1)
    assert len(data) == 2 * (40 - 4 - 1)
    assert 0 not in data.frames[:10] and 5 not in data.frames[:10]
    assert data[0].shape == (3, 112, 112) and data[0].dtype == torch.uint8
    clone = pickle.loads(pickle.dumps(data))
    assert clone._handles == {} and torch.equal(clone[3], data[3])
    assert len(FaceFrames(stores, frame_stride=5)) == 2 * 7


def test_warmup_then_cosine():
    factors = [warmup_cosine(s, 2, 6) for s in range(6)]
    assert factors[:2] == [0.5, 1.0]
    np.testing.assert_allclose(factors[2:],
                               [1.0, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0.5 * (1 + np.cos(3 * np.pi / 4))])


SETTINGS = PretrainSettings(epochs=6, batch_size=16, lr=2e-3, warmup_epochs=1, frame_stride=1, color_jitter=0.0,
                            crop_scale_min=0.9, threads=2)


def test_loss_falls_and_checkpoints_load_weights_only_and_resume(tmp_path, stores):
    model, result = pretrain_mae(stores, SETTINGS, tmp_path, seed=0)
    losses = result.epoch_losses
    assert result.epochs_run == 6 and result.images == 70
    assert losses[-1] < 0.7 * losses[0], losses  # a clear fall, not noise
    checkpoint = torch.load(tmp_path / "mae.pt", weights_only=True)  # tensors and plain values only
    assert set(checkpoint) == {"model", "config", "meta"}
    loaded, meta = load_mae(tmp_path / "mae.pt")
    images = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.encode(images), model.encode(images))
    assert meta["images"] == 70 and meta["settings"]["epochs"] == 6

    longer = SETTINGS.model_copy(update={"epochs": 8})
    _, resumed = pretrain_mae(stores, longer, tmp_path, seed=0)
    assert resumed.resumed_from_epoch == 6 and resumed.epochs_run == 2
    other = SETTINGS.model_copy(update={"epochs": 1, "lr": 1e-3})
    _, fresh = pretrain_mae(stores, other, tmp_path, seed=0)
    assert fresh.resumed_from_epoch == 0  # other settings: never resumed from


def test_patch_size_reaches_the_checkpoint_and_none_keeps_the_models_own(tmp_path, stores):
    for patch, grid in ((8, 14), (None, 7)):
        out = tmp_path / str(patch)
        pretrain_mae(stores, SETTINGS.model_copy(update={"epochs": 1, "patch_size": patch}), out, seed=0)
        assert torch.load(out / "mae.pt", weights_only=True)["config"]["overrides"] == {
            "mask_ratio": 0.75, **({"patch_size": patch} if patch else {})}
        loaded, _ = load_mae(out / "mae.pt")
        assert (loaded.config.patch_size, loaded.config.grid) == (patch or 16, grid)
    with pytest.raises(ConfigError, match="pretrain: patch_size 15 must divide image_size 112"):
        pretrain_mae(stores, SETTINGS.model_copy(update={"patch_size": 15}), tmp_path / "bad", seed=0)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("content", ["garbage", "evil", "wrong-keys"])
def test_foreign_or_broken_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "mae.pt"
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif content == "evil":
        torch.save({"model": _Evil(), "config": {}}, path)
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_mae(path)


def test_no_faces_is_a_clear_error(tmp_path):
    empty = tmp_path / "e.h5"
    write_faces(empty, FaceTrack(np.zeros((3, 112, 112, 3), np.uint8), np.zeros(3, bool), np.zeros(3, bool),
                                 np.full((3, 4), np.nan, np.float32), np.full((3, 5, 2), np.nan, np.float32),
                                 np.zeros(3, np.float32)), {})
    with pytest.raises(DataError, match="no face frames to pretrain on"):
        pretrain_mae([empty], SETTINGS, tmp_path / "out")


def test_a_nan_loss_stops_pretraining_and_keeps_the_last_good_epoch(tmp_path, stores, monkeypatch):
    from pipeline_lib.models.mae import MAE
    from pipeline_lib.train.loop import LossNotFinite

    forward, calls = MAE.forward, [0]

    def breaks_on_the_sixth_batch(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls[0] += 1
        return out._replace(loss=out.loss * float("nan")) if calls[0] == 6 else out

    monkeypatch.setattr(MAE, "forward", breaks_on_the_sixth_batch)
    with pytest.raises(LossNotFinite, match=r"^pretrain: the training loss is nan at epoch 2, step 2 of 4;"):
        pretrain_mae(stores, SETTINGS, tmp_path, seed=0)  # 70 images, 4 full batches of 16 per epoch
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and not (tmp_path / "mae.pt").exists()
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
