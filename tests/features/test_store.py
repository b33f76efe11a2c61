"""Zarr feature store: float16 round trip, one shard per array, complete-last resume checks, clear errors."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline_lib.features.store import FeatureStore, FeatureStoreError, shard_layout

PROV = {"checkpoint": "abc123", "params": {"batch": 4, "size": (112, 112)}, "library": "0.1.0"}


def _features(t: int, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    valid = np.ones(t, bool)
    valid[1::3] = False
    return rng.normal(0, 1, (t, d)).astype(np.float32), valid


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore(tmp_path / "features.zarr")


def test_round_trip_casts_to_float16_and_zeroes_invalid_rows(store: FeatureStore):
    features, valid = _features(10)
    store.write("mae", "vid1", features, valid, PROV)
    back, back_valid = store.read("mae", "vid1")
    assert back.dtype == np.float16 and back.shape == (10, 6) and back_valid.dtype == np.bool_
    np.testing.assert_array_equal(back_valid, valid)
    np.testing.assert_array_equal(back[valid], features[valid].astype(np.float16))
    assert not back[~valid].any()
    assert store.videos("mae") == ["vid1"] and store.extractors() == ["mae"]
    assert store.provenance("mae", "vid1") == {"checkpoint": "abc123", "library": "0.1.0",
                                               "params": {"batch": 4, "size": [112, 112]}}


def test_each_array_is_exactly_one_float16_shard(store: FeatureStore):
    store.write("mae", "short", *_features(10), PROV)
    store.write("mae", "long", *_features(600, d=4), PROV)
    root = zarr.open_group(store.path, mode="r")
    short, long = root["mae/short"], root["mae/long"]
    assert short.dtype == np.float16 and short.shards == short.shape == (10, 6)
    assert long.shards == long.shape == (600, 4) and long.chunks == (200, 4)  # 3 balanced inner chunks
    shard_files = [p for p in (store.path / "mae" / "long").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(shard_files) == 1
    assert root["mae/long.valid"].dtype == np.bool_


def test_shard_layout_always_one_shard():
    assert shard_layout(10, 6) == ((10, 6), (10, 6))
    assert shard_layout(256, 6) == ((256, 6), (256, 6))
    assert shard_layout(301, 6) == ((151, 6), (302, 6))  # shard must be whole chunks: one row of slack
    assert shard_layout(0, 6) == ((1, 6), (1, 6))


def test_empty_and_faceless_videos(store: FeatureStore):
    store.write("mae", "empty", np.zeros((0, 6), np.float32), np.zeros(0, bool), PROV)
    features, valid = store.read("mae", "empty")
    assert features.shape == (0, 6) and features.dtype == np.float16 and valid.shape == (0,)
    store.write("mae", "noface", np.ones((5, 6), np.float32), np.zeros(5, bool), PROV)
    features, valid = store.read("mae", "noface")
    assert features.shape == (5, 6) and not features.any() and not valid.any()
    assert store.videos("mae") == ["empty", "noface"]


def test_is_current_follows_provenance_and_delete(store: FeatureStore):
    assert not store.is_current("mae", "vid1", PROV)
    store.write("mae", "vid1", *_features(4), PROV)
    assert store.is_current("mae", "vid1", PROV)
    assert store.is_current("mae", "vid1", {"library": "0.1.0", "checkpoint": "abc123",
                                            "params": {"size": [112, 112], "batch": 4}})  # JSON-normalised
    assert not store.is_current("mae", "vid1", {**PROV, "checkpoint": "other"})
    store.delete("mae", "vid1")
    assert not store.is_current("mae", "vid1", PROV) and store.videos("mae") == []
    store.delete("mae", "vid1")  # absent: no error


def test_interrupted_write_is_neither_current_nor_listed(store: FeatureStore):
    store.write("mae", "done", *_features(4), PROV)
    group = zarr.open_group(store.path, mode="a")["mae"]  # a writer killed before setting `complete`
    group.create_array("half", data=np.ones((4, 6), np.float16), attributes={"provenance": PROV})
    group.create_array("half.valid", data=np.ones(4, bool))
    assert not store.is_current("mae", "half", PROV)
    assert store.videos("mae") == ["done"]
    with pytest.raises(FeatureStoreError, match="half.*unfinished"):
        store.read("mae", "half")
    store.write("mae", "half", *_features(4), PROV)  # the next run rebuilds it
    assert store.is_current("mae", "half", PROV)


def test_rewrite_with_new_provenance_replaces_the_array(store: FeatureStore):
    store.write("mae", "vid1", *_features(10, d=6), PROV)
    new = {**PROV, "checkpoint": "def456"}
    features, valid = _features(7, d=3, seed=1)
    store.write("mae", "vid1", features, valid, new)
    back, back_valid = store.read("mae", "vid1")
    assert back.shape == (7, 3) and back_valid.shape == (7,)
    np.testing.assert_array_equal(back[valid], features[valid].astype(np.float16))
    assert store.is_current("mae", "vid1", new) and not store.is_current("mae", "vid1", PROV)
    assert store.provenance("mae", "vid1")["checkpoint"] == "def456"


@pytest.mark.parametrize("extractor, video", [("", "v"), ("a/b", "v"), (".hidden", "v"), ("mae", ""),
                                              ("mae", "x/y"), ("mae", ".v"), ("mae", "v.valid")])
def test_bad_names_are_rejected(store: FeatureStore, extractor: str, video: str):
    with pytest.raises(ValueError, match="bad"):
        store.write(extractor, video, *_features(2), PROV)


def test_missing_video_raises_naming_it(store: FeatureStore):
    with pytest.raises(FeatureStoreError, match="'ghost'.*'mae'"):
        store.read("mae", "ghost")
    store.write("mae", "vid1", *_features(2), PROV)
    with pytest.raises(FeatureStoreError, match="'ghost'"):
        store.provenance("mae", "ghost")
    assert store.videos("random") == [] and isinstance(FeatureStoreError("x"), LookupError)


def test_bad_inputs_are_rejected_before_anything_is_written(store: FeatureStore):
    with pytest.raises(ValueError, match="valid"):
        store.write("mae", "v", np.zeros((3, 2)), np.ones(4, bool), PROV)
    with pytest.raises(ValueError, match="float16"):
        store.write("mae", "v", np.full((2, 2), 1e6), np.ones(2, bool), PROV)
    with pytest.raises(TypeError):
        store.write("mae", "v", np.zeros((2, 2)), np.ones(2, bool), {"fn": object()})
    assert store.videos("mae") == []


def test_store_pickles_as_its_path_and_read_only_mode(store: FeatureStore):
    store.write("mae", "vid1", *_features(3), PROV)  # opens the zarr handle
    clone = pickle.loads(pickle.dumps(store))
    assert clone.path == store.path and clone._root is None
    np.testing.assert_array_equal(clone.read("mae", "vid1")[0], store.read("mae", "vid1")[0])
    reader = FeatureStore(store.path, mode="r")
    assert reader.videos("mae") == ["vid1"]
    with pytest.raises(PermissionError):
        reader.write("mae", "vid2", *_features(3), PROV)
    assert FeatureStore(store.path.parent / "absent.zarr", mode="r").extractors() == []
