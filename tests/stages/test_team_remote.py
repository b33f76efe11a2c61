"""Two people, one S3-compatible remote (moto on 127.0.0.1), the real pipeline on a tiny corpus.

Person A runs `dvc repro` and the window ablation, then `abaw share push` (outputs
and run-cache). Person B clones, pulls, and finds everything up to date; B's
`window=64` is restored from A's run-cache instead of re-run; B's own new
`window` re-runs only the temporal stages and what depends on them. A pull
killed half-way and repeated leaves a consistent workspace.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params_raw
from tests.s3server import CREDENTIALS, configure_s3_remote, moto_server
from tests.stages.conftest import BIN, commit, make_project, run, write_params

DOWNSTREAM = {"temporal@va", "temporal@expr", "temporal@au", "fusion", "compound", "evaluate"}
UPSTREAM = {"corpus", "faces", "pretrain", "finetune@va", "finetune@expr", "finetune@au", "features"}


def ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def restored(log: str) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run", log))


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> dict:
    """A's repository after `dvc repro`, the `window=64` experiment and `abaw share push`, on a live S3 server."""
    base = tmp_path_factory.mktemp("team")
    with moto_server(buckets=("team",)) as endpoint:
        a = make_project(base / "a", tiny_params_raw())
        configure_s3_remote(a, "team", "s3://team/abaw", endpoint)  # committed: clones inherit it
        commit(a, "team remote")
        run(["dvc", "repro"], a, CREDENTIALS)
        commit(a, "repro")
        log = run(["dvc", "exp", "run", "-S", "window=64"], a, CREDENTIALS)
        assert ran(log) == DOWNSTREAM
        run(["git", "reset", "-q", "--hard"], a)  # back to window 32 in the workspace
        run(["dvc", "checkout", "-q", "--force"], a)
        pushed = run([str(BIN / "abaw"), "share", "push"], a, CREDENTIALS)
        assert re.match(r"pushed \d+ file\(s\) to remote 'team' \(s3://team/abaw\) in ", pushed)
        yield {"a": a, "base": base, "endpoint": endpoint}


def _clone(team: dict, name: str) -> Path:
    clone = team["base"] / name
    run(["git", "clone", "-q", str(team["a"]), str(clone)], team["base"])
    return clone


def test_clone_pulls_and_nothing_reruns(team: dict):
    b = _clone(team, "b")
    assert not (b / "data" / "features.zarr").exists()
    out = run([str(BIN / "abaw"), "share", "pull"], b, CREDENTIALS)
    assert re.match(r"pulled [1-9]\d* file\(s\) from remote 'team' \(s3://team/abaw\) in ", out)
    log = run(["dvc", "repro"], b, CREDENTIALS)
    assert ran(log) == set() and restored(log) == set()
    assert "Data and pipelines are up to date." in run(["dvc", "status"], b)
    a_summary = json.loads((team["a"] / "metrics" / "summary.json").read_text())
    assert json.loads((b / "metrics" / "summary.json").read_text()) == a_summary


def _repro_with_window(team: dict, name: str, window: int) -> tuple[Path, str]:
    """A fresh clone, pulled, with `window` set: its `dvc repro` log."""
    b = _clone(team, name)
    run([str(BIN / "abaw"), "share", "pull"], b, CREDENTIALS)
    params = yaml.safe_load((b / "params.yaml").read_text())
    params["window"] = window
    write_params(b, params)
    return b, run(["dvc", "repro"], b, CREDENTIALS)


def test_teammates_ablation_comes_from_the_run_cache(team: dict):
    b, log = _repro_with_window(team, "b64", 64)  # A ran window=64 as an experiment
    assert ran(log) == set() and restored(log) == DOWNSTREAM, log
    assert json.loads((b / "metrics" / "temporal" / "va.json").read_text())["window"] == 64
    assert (b / "models" / "temporal" / "va" / "temporal.pt").is_file()


def test_a_new_window_reruns_only_temporal_and_downstream(team: dict):
    b, log = _repro_with_window(team, "b48", 48)  # nobody ran window=48
    assert ran(log) == DOWNSTREAM and not ran(log) & UPSTREAM
    assert json.loads((b / "metrics" / "temporal" / "expr.json").read_text())["window"] == 48


def test_a_killed_pull_is_repaired_by_pulling_again(team: dict):
    c = _clone(team, "c")
    env = {**os.environ, **CREDENTIALS, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    # One transfer at a time so the pull is still running when the first object lands.
    pulling = subprocess.Popen(["dvc", "pull", "-j", "1"], cwd=c, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    cache = c / ".dvc" / "cache" / "files"
    deadline = time.monotonic() + 120
    while pulling.poll() is None and not (cache.exists() and any(p.is_file() for p in cache.rglob("*"))):
        assert time.monotonic() < deadline, "dvc pull fetched nothing in 120 s"
        time.sleep(0.005)
    os.killpg(pulling.pid, signal.SIGKILL)
    assert pulling.wait() == -signal.SIGKILL, "the pull finished before it could be interrupted"
    status = run(["dvc", "status"], c)
    assert "Data and pipelines are up to date." not in status  # interrupted: outputs are missing, and say so
    run([str(BIN / "abaw"), "share", "pull"], c, CREDENTIALS)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], c)
    assert ran(run(["dvc", "repro"], c, CREDENTIALS)) == set()
    assert run(["git", "status", "--porcelain"], c) == ""
