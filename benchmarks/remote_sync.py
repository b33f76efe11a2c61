"""Push and pull of the demo's DVC outputs through an S3-compatible server (moto on 127.0.0.1) and a local folder.

    python benchmarks/remote_sync.py      # after `make demo` (needs the demo outputs in .dvc/cache)

A clone of this repository at HEAD (whose dvc.lock the demo outputs match)
reads the project's own DVC cache and pushes every output of dvc.lock with
`abaw share push --no-run-cache`; a second clone pulls them. Files and bytes
per output come from dvc.lock. The face store is one HDF5 file per video and
the feature store one shard file per array, so the count stays in the hundreds
for the whole demo; that, not bandwidth, is what makes object-store pushes slow.

Writes results/remote_sync.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pipeline_lib.share.remote import pull, push  # noqa: E402
from tests.s3server import CREDENTIALS, configure_s3_remote, moto_server  # noqa: E402


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def outputs() -> dict[str, dict[str, int]]:
    """{output path: {files, bytes}} of every DVC output in dvc.lock."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    found: dict[str, dict[str, int]] = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            found[out["path"]] = {"files": int(out.get("nfiles", 1)), "bytes": int(out.get("size", 0))}
    return found


def clone(tmp: Path, name: str) -> Path:
    where = tmp / name
    git("clone", "-q", str(ROOT), str(where), cwd=tmp)
    return where


def sync(tmp: Path, label: str, setup) -> dict[str, float | int]:
    a = clone(tmp, f"{label}-a")
    subprocess.run([sys.executable, "-m", "dvc", "cache", "dir", "--local", str(ROOT / ".dvc" / "cache")], cwd=a,
                   check=True, capture_output=True)
    setup(a)
    pushed = push(a, run_cache=False)
    b = clone(tmp, f"{label}-b")
    setup(b)
    pulled = pull(b, run_cache=False)
    return {"push_files": pushed.files, "push_seconds": round(pushed.seconds, 1), "pull_files": pulled.files,
            "pull_seconds": round(pulled.seconds, 1), "outputs_checked_out": len(pulled.changed)}


def main() -> None:
    os.environ.update({**CREDENTIALS, "DVC_NO_ANALYTICS": "1"})
    per_output = outputs()
    result: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "outputs": per_output,
        "files": sum(o["files"] for o in per_output.values()),
        "megabytes": round(sum(o["bytes"] for o in per_output.values()) / 2**20, 1),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with moto_server(buckets=("team",)) as endpoint:
            result["s3_moto_loopback"] = sync(tmp, "s3", lambda repo: configure_s3_remote(
                repo, "team", "s3://team/abaw", endpoint, level="local"))

        def local(repo: Path) -> None:
            subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "--local", "-f", "-d", "folder",
                            str(tmp / "folder-remote")], cwd=repo, check=True, capture_output=True)

        result["local_folder"] = sync(tmp, "folder", local)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "remote_sync.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "outputs"}, indent=2))


if __name__ == "__main__":
    main()
