"""`--shard i/n` across processes builds exactly the store one process builds: `abaw faces` and `abaw features`
with shards 0/2 and 1/2 running at the same time, as separate processes writing into one output, against one
process with every video. Every array, every attribute and the provenance must be identical; only the
seconds a video took may differ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
import zarr

from pipeline_lib.config import parse_params
from pipeline_lib.data.prepare import prepare_raw
from pipeline_lib.data.raw import load_raw
from tests.features.test_encode import _checkpoint

ABAW = Path(sys.executable).parent / "abaw"
TIMING = {"seconds"}  # per-video wall time in a face store's run report: the only field allowed to differ


def _run_together(commands: list[list[str]], cwd: Path) -> None:
    """Start every command at once, wait for all; fail with the output of any that failed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1"}
    running = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for c in commands]
    outputs = [p.communicate(timeout=300)[0] for p in running]
    for command, process, output in zip(commands, running, outputs, strict=True):
        assert process.returncode == 0, f"{' '.join(command[1:4])} failed:\n{output}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """A tiny demo corpus, its params (one face worker, one torch thread) and one process's face stores."""
    from tests.conftest import tiny_params_raw

    root = tmp_path_factory.mktemp("shards")
    params = tiny_params_raw()
    params["features"].update(threads=1, batch_size=16, extractors=["mae", "random"])  # no fine-tuned encoders here
    prepare_raw(root / "raw", parse_params(params).data, seed=0, workers=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    paths = {"root": root, "raw": root / "raw", "params": root / "params.yaml"}
    _run_together([_faces(paths, root / "one", "0/1"), _faces(paths, root / "two", "0/2"),
                   _faces(paths, root / "two", "1/2")], root)
    return paths


def _faces(paths: dict[str, Path], out: Path, shard: str) -> list[str]:
    """`abaw faces` of one shard into OUT/faces (the stores shared), its reports apart (named by the shard)."""
    tag = shard.replace("/", "of")
    return [str(ABAW), "faces", "--params", str(paths["params"]), "--raw", str(paths["raw"]), "--out",
            str(out / "faces"), "--report", str(out / tag / "faces.json"), "--videos-report",
            str(out / tag / "videos.json"), "--plot", str(out / tag / "samples.png"), "--shard", shard,
            "--no-progress"]


def _h5_tree(path: Path) -> dict[str, Any]:
    """Every dataset (values, dtype, shape, chunks, compression, fill value) and attribute of an HDF5 file."""
    tree: dict[str, Any] = {}
    with h5py.File(path, "r") as h5:
        tree["/attrs"] = {key: _json_or_value(value) for key, value in h5.attrs.items()}

        def visit(name: str, node: h5py.Dataset | h5py.Group) -> None:
            tree[f"{name}/attrs"] = {key: _json_or_value(value) for key, value in node.attrs.items()}
            if isinstance(node, h5py.Dataset):
                tree[name] = (node.dtype.str, node.shape, node.chunks, node.compression, node.fillvalue,
                              node[...].tobytes())
        h5.visititems(visit)
    return tree


def _json_or_value(value: Any) -> Any:
    """A JSON attribute decoded with the timing fields removed (at any depth); other values as they are."""
    if isinstance(value, (str, bytes)):
        try:
            return _without_timing(json.loads(value))
        except ValueError:
            return value
    return value.tolist() if isinstance(value, np.ndarray) else value


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def test_face_shards_in_two_processes_write_the_stores_of_one_process(corpus):
    one = sorted((corpus["root"] / "one" / "faces").glob("*.h5"))
    two = sorted((corpus["root"] / "two" / "faces").glob("*.h5"))
    assert [p.name for p in one] == [p.name for p in two] == sorted(f"{e.name}.h5" for e in load_raw(
        corpus["raw"]).entries)
    assert not list((corpus["root"] / "two" / "faces").glob(".*"))  # no partial file left by either shard
    shards = [json.loads((corpus["root"] / "two" / tag / "faces.json").read_text()) for tag in ("0of2", "1of2")]
    assert all(s["processed"] > 0 for s in shards)  # both shards did work
    for a, b in zip(one, two, strict=True):
        tree_a, tree_b = _h5_tree(a), _h5_tree(b)
        assert tree_a.keys() == tree_b.keys() and "crops" in tree_a and "landmarks" in tree_a
        for key in tree_a:
            assert tree_a[key] == tree_b[key], f"{a.name}: {key} differs"


def _zarr_tree(path: Path) -> dict[str, Any]:
    """Every group and array of a zarr store: attributes, and for arrays dtype, shape, chunks, shards, values."""
    tree: dict[str, Any] = {}

    def visit(name: str, node: zarr.Group | zarr.Array) -> None:
        tree[f"{name}/attrs"] = dict(node.attrs)
        if isinstance(node, zarr.Array):
            tree[name] = (str(node.dtype), node.shape, node.chunks, node.shards, node[...].tobytes())
        else:
            for child, member in sorted(node.members()):
                visit(f"{name}/{child}", member)

    visit("", zarr.open_group(path, mode="r", zarr_format=3))
    return tree


def test_feature_shards_in_two_processes_write_the_store_of_one_process(corpus, tmp_path):
    checkpoint = _checkpoint(tmp_path / "mae.pt", seed=0)
    faces = corpus["root"] / "one" / "faces"

    def features(out: Path, shard: str) -> list[str]:
        tag = shard.replace("/", "of")
        return [str(ABAW), "features", "--params", str(corpus["params"]), "--raw", str(corpus["raw"]), "--faces",
                str(faces), "--checkpoint", str(checkpoint), "--out", str(out), "--report",
                str(tmp_path / tag / "features.json"), "--shard", shard, "--no-progress"]

    _run_together([features(tmp_path / "one.zarr", "0/1"), features(tmp_path / "two.zarr", "0/2"),
                   features(tmp_path / "two.zarr", "1/2")], tmp_path)
    one, two = _zarr_tree(tmp_path / "one.zarr"), _zarr_tree(tmp_path / "two.zarr")
    names = {e.name for e in load_raw(corpus["raw"]).entries}
    for extractor in ("mae", "random"):
        arrays = {key.split("/")[2] for key in one if key.startswith(f"/{extractor}/") and key.count("/") == 3}
        assert arrays == {*names, *(f"{n}.valid" for n in names)}  # every video, features and validity
    assert one.keys() == two.keys()
    for key in one:
        assert one[key] == two[key], f"{key} differs"
    provenance = one[f"/mae/{sorted(names)[0]}/attrs"]
    assert provenance["complete"] is True and provenance["provenance"]["extractor"] == "mae"
    shards = [json.loads((tmp_path / tag / "features.json").read_text()) for tag in ("0of2", "1of2")]
    ordered = sorted(names)  # shard i of n encodes every n-th video from the i-th, with both extractors
    assert [s["arrays_written"] for s in shards] == [2 * len(ordered[0::2]), 2 * len(ordered[1::2])]
    # File by file, the two stores are the same bytes (arrays, metadata and attributes alike).
    files = sorted(p.relative_to(tmp_path / "one.zarr") for p in (tmp_path / "one.zarr").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "two.zarr") for p in (tmp_path / "two.zarr").rglob("*")
                           if p.is_file())
    assert [f for f in files if (tmp_path / "one.zarr" / f).read_bytes() != (tmp_path / "two.zarr" / f)
            .read_bytes()] == []
