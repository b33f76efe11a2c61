"""A real S3-compatible server (moto's server mode) on 127.0.0.1, from the .venv-s3 that install.sh makes."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOTO = ROOT / os.environ.get("S3_VENV", ".venv-s3") / "bin" / "moto_server"
# moto accepts any key unless authentication is on; the values only have to be present.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "abaw-test", "AWS_SECRET_ACCESS_KEY": "abaw-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(*, authenticate: bool = False, buckets: tuple[str, ...] = ()) -> Iterator[str]:
    """Run moto_server on a free loopback port; yields its endpoint URL. `authenticate`: every key is rejected."""
    assert MOTO.is_file(), f"{MOTO} missing: run scripts/install.sh (it builds the S3 test server's venv)"
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if authenticate else {})}
    process = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert process.poll() is None, "moto_server exited at start-up"
                assert time.monotonic() < deadline, "moto_server did not start within 30 s"
                time.sleep(0.1)
        for bucket in buckets:  # unauthenticated server: a bare PUT creates the bucket
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"), timeout=10)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def configure_s3_remote(repo: Path, name: str, url: str, endpoint: str, *, level: str = "repo") -> None:
    """Add `name` as the default remote; level 'repo' commits it to .dvc/config so clones inherit it."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo, dvc_repo.config.edit(level) as conf:
        conf["remote"][name] = {"url": url, "endpointurl": endpoint}
        conf["core"]["remote"] = name
