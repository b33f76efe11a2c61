"""Feature extraction: face-less videos, skipping current arrays, rebuilding on another encoder, registry errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline_lib.data.errors import DataError
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.features.encode import build_extractor, encode_crops, extract_features, weights_digest
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.models.mae import MAE, config_by_name
from tests.device_guard import device_checked


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = MAE(config_by_name("mae_tiny", depth=1, decoder_depth=1))
    torch.save({"model": model.state_dict(),
                "config": {"name": "mae_tiny", "overrides": {"depth": 1, "decoder_depth": 1}},
                "meta": {}}, path)
    return path


def _store(path: Path, present: np.ndarray) -> None:
    t = len(present)
    crops = np.random.default_rng(0).integers(0, 255, (t, 112, 112, 3), dtype=np.uint8)
    crops[~present] = 0
    write_faces(path, FaceTrack(crops, present, np.zeros(t, bool), np.full((t, 4), np.nan, np.float32),
                                np.full((t, 5, 2), np.nan, np.float32), present.astype(np.float32)), {"v": path.stem})


@pytest.fixture
def faces(tmp_path) -> Path:
    root = tmp_path / "faces"
    _store(root / "a.h5", np.array([True, False, True, True, False]))
    _store(root / "none.h5", np.zeros(3, bool))
    return root


def test_features_of_face_frames_only_and_resume(tmp_path, faces):
    store = FeatureStore(tmp_path / "features.zarr")
    ckpt = _checkpoint(tmp_path / "mae.pt", 5)  # `random` is seeded with 0: other weights
    first = extract_features(faces, ["a", "none"], store, ["mae", "random"], ckpt, batch_size=2)
    assert [(v.extractor, v.video, v.encoded, v.skipped) for v in first] == [
        ("mae", "a", 3, False), ("mae", "none", 0, False), ("random", "a", 3, False), ("random", "none", 0, False)]
    features, valid = store.read("mae", "a")
    assert features.dtype == np.float16 and features.shape == (5, 192)
    assert valid.tolist() == [True, False, True, True, False] and not features[~valid].any()
    assert np.abs(features[valid]).sum() > 0
    empty, empty_valid = store.read("mae", "none")
    assert empty.shape == (3, 192) and not empty_valid.any()  # a face-less video: all-False .valid
    assert not np.allclose(store.read("random", "a")[0], features)  # untrained weights, other features

    again = extract_features(faces, ["a", "none"], store, ["mae"], ckpt, batch_size=2)
    assert all(v.skipped for v in again)
    other = _checkpoint(tmp_path / "mae.pt", 6)  # another encoder: rebuilt, never mixed
    rebuilt = extract_features(faces, ["a"], store, ["mae"], other, batch_size=2)
    assert not rebuilt[0].skipped and not np.allclose(store.read("mae", "a")[0], features)


def test_batching_does_not_change_features(tmp_path, faces):
    ckpt = _checkpoint(tmp_path / "mae.pt", 0)
    one, two = FeatureStore(tmp_path / "one.zarr"), FeatureStore(tmp_path / "two.zarr")
    extract_features(faces, ["a"], one, ["mae"], ckpt, batch_size=1)
    extract_features(faces, ["a"], two, ["mae"], ckpt, batch_size=4)
    np.testing.assert_allclose(one.read("mae", "a")[0].astype(np.float32), two.read("mae", "a")[0].astype(np.float32),
                               atol=2e-3)


def test_shards_split_videos(tmp_path, faces):
    ckpt = _checkpoint(tmp_path / "mae.pt", 0)
    store = FeatureStore(tmp_path / "f.zarr")
    done = [extract_features(faces, ["a", "none"], store, ["mae"], ckpt, shard=(i, 2)) for i in range(2)]
    assert [[v.video for v in d] for d in done] == [["a"], ["none"]]


def test_finetuned_extractor_reads_its_tasks_checkpoint(tmp_path, faces):
    mae, tuned = _checkpoint(tmp_path / "mae.pt", 0), tmp_path / "finetuned"
    tuned.mkdir()
    _checkpoint(tuned / "va.pt", 3)
    store = FeatureStore(tmp_path / "f.zarr")
    extract_features(faces, ["a"], store, ["mae", "finetuned_va"], mae, finetuned_dir=tuned)
    reference = FeatureStore(tmp_path / "r.zarr")
    extract_features(faces, ["a"], reference, ["mae"], tuned / "va.pt")  # the same weights under the plain name
    np.testing.assert_array_equal(store.read("finetuned_va", "a")[0], reference.read("mae", "a")[0])
    assert not np.array_equal(store.read("finetuned_va", "a")[0], store.read("mae", "a")[0])
    _checkpoint(tuned / "va.pt", 4)  # re-fine-tuned: its arrays are rebuilt, the MAE's stay
    again = extract_features(faces, ["a"], store, ["mae", "finetuned_va"], mae, finetuned_dir=tuned)
    assert [(v.extractor, v.skipped) for v in again] == [("mae", True), ("finetuned_va", False)]
    with pytest.raises(DataError, match=r"extractor finetuned_au: missing \(run `abaw finetune --task au` first\)"):
        extract_features(faces, ["a"], store, ["finetuned_au"], mae, finetuned_dir=tuned)
    with pytest.raises(DataError, match=r"extractor finetuned_va needs the fine-tuned encoders' folder"):
        extract_features(faces, ["a"], store, ["finetuned_va"], mae)


def test_an_unchanged_finetuned_encoder_copies_the_pretrained_arrays(tmp_path, faces):
    mae, tuned = _checkpoint(tmp_path / "mae.pt", 0), tmp_path / "finetuned"
    tuned.mkdir()
    _checkpoint(tuned / "expr.pt", 0)  # the probe was never beaten: the pretrained weights, another file
    _checkpoint(tuned / "va.pt", 3)
    store = FeatureStore(tmp_path / "f.zarr")
    done = extract_features(faces, ["a"], store, ["mae", "finetuned_expr", "finetuned_va"], mae,
                            finetuned_dir=tuned)
    assert [(v.extractor, v.encoded, v.skipped) for v in done] == [
        ("mae", 3, False), ("finetuned_expr", 0, False), ("finetuned_va", 3, False)]
    np.testing.assert_array_equal(store.read("finetuned_expr", "a")[0], store.read("mae", "a")[0])
    reference = FeatureStore(tmp_path / "r.zarr")  # what encoding it would have written
    extract_features(faces, ["a"], reference, ["finetuned_expr"], mae, finetuned_dir=tuned)
    np.testing.assert_array_equal(store.read("finetuned_expr", "a")[0], reference.read("finetuned_expr", "a")[0])
    again = extract_features(faces, ["a"], store, ["mae", "finetuned_expr"], mae, finetuned_dir=tuned)
    assert all(v.skipped for v in again)  # copied arrays carry their own extractor's provenance


def test_weights_digest_sees_every_value():
    model = MAE(config_by_name("mae_tiny", depth=1, decoder_depth=1))
    before = weights_digest(model)
    assert weights_digest(model) == before
    with torch.no_grad():
        model.norm.bias[0] += 1e-6
    assert weights_digest(model) != before


def test_unknown_extractor(tmp_path):
    with pytest.raises(ValueError, match="unknown extractor 'clip'; known: finetuned_au, finetuned_expr, "
                                         "finetuned_va, landmarks, mae, mesh, random"):
        build_extractor("clip", tmp_path / "mae.pt", 0)


def test_encoding_runs_the_model_where_its_inputs_go():
    """`abaw predict` with `features.device: cuda` built the extractor on the CPU and sent its crops to CUDA."""
    model = MAE(config_by_name("mae_tiny", depth=1, decoder_depth=1, patch_size=14)).eval()  # built on the CPU
    crops = np.zeros((3, 112, 112, 3), np.uint8)
    with device_checked(model) as record, pytest.raises(NotImplementedError):  # meta results cannot be copied out
        encode_crops(model, crops, np.ones(3, bool), batch_size=2, device="meta")
    assert record.calls and record.problems == []
