"""`abaw share` against real remotes: a moto S3 server on 127.0.0.1 and local folders; one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline_lib.share.remote import RemoteError, check_remote, pull, push
from stages.cli import app
from tests.s3server import CREDENTIALS, configure_s3_remote, free_port, moto_server

runner = CliRunner()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    # One attempt per request: an unreachable endpoint fails in a second instead of after botocore's retries.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repository tracking one small file."""
    from dvc.repo import Repo

    root = tmp_path / "a"
    root.mkdir()
    _git(root, "init", "-q")
    Repo.init(str(root)).close()
    (root / "data.txt").write_text("shared bytes\n")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data.txt"], cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def s3() -> str:
    with moto_server(buckets=("team",)) as endpoint:
        yield endpoint


def test_push_then_pull_into_a_clone_through_s3(repo: Path, s3: str, tmp_path: Path):
    configure_s3_remote(repo, "team", "s3://team/abaw", s3)
    result = runner.invoke(app, ["share", "push", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pushed 1 file(s) to remote 'team' (s3://team/abaw) in ")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "data")
    clone = tmp_path / "b"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / "data.txt").exists()
    report = pull(clone)
    assert (clone / "data.txt").read_text() == "shared bytes\n"
    assert report.files == 1 and report.changed == ("data.txt",) and report.remote.endpoint == s3
    assert pull(clone).files == 0  # nothing left to fetch


def test_check_names_the_remote_and_its_endpoint(repo: Path, s3: str):
    configure_s3_remote(repo, "team", "s3://team/abaw", s3)
    result = runner.invoke(app, ["share", "check", "--repo", str(repo)])
    assert result.exit_code == 0 and result.output == f"remote 'team' (s3://team/abaw at {s3}): ok\n"


def test_missing_bucket_is_one_line(repo: Path, s3: str):
    configure_s3_remote(repo, "team", "s3://no-such-bucket/abaw", s3)
    result = runner.invoke(app, ["share", "push", "--repo", str(repo)])
    assert result.exit_code == 2
    assert result.output == ("error: remote 'team' (s3://no-such-bucket/abaw): does not exist (The specified bucket "
                             "does not exist): create the bucket or folder, or fix the url\n")


def test_wrong_credentials_are_named(repo: Path):
    with moto_server(authenticate=True) as endpoint:
        configure_s3_remote(repo, "team", "s3://team/abaw", endpoint)
        result = runner.invoke(app, ["share", "pull", "--repo", str(repo)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("error: remote 'team' (s3://team/abaw): credentials rejected (The AWS Access "
                                    "Key Id you provided does not exist in our records.)")


def test_unreachable_endpoint_is_named(repo: Path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configure_s3_remote(repo, "team", "s3://team/abaw", endpoint)
    result = runner.invoke(app, ["share", "push", "--repo", str(repo)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: remote 'team' (s3://team/abaw): cannot reach {endpoint} "
                                    "(EndpointConnectionError: Could not connect to the endpoint URL")


def test_unknown_and_missing_default_remote(repo: Path, tmp_path: Path):
    with pytest.raises(RemoteError, match=r"^remote '\(default\)': no default remote is configured"):
        check_remote(repo)
    configure_s3_remote(repo, "team", "s3://team/abaw", "http://127.0.0.1:1")
    result = runner.invoke(app, ["share", "pull", "--repo", str(repo), "-r", "tema"])
    assert result.exit_code == 2
    assert result.output == "error: remote 'tema': no such remote in .dvc/config or .dvc/config.local (configured: " \
                            "team)\n"
    (tmp_path / "plain").mkdir()
    with pytest.raises(RemoteError, match="is not a DVC repository"):
        check_remote(tmp_path / "plain")


def test_local_folder_remote(repo: Path, tmp_path: Path):
    from dvc.repo import Repo

    folder = tmp_path / "cache-remote"
    with Repo(str(repo)) as dvc_repo, dvc_repo.config.edit() as conf:
        conf["remote"]["mine"] = {"url": str(folder)}
    with pytest.raises(RemoteError, match=rf"^remote 'mine' \({folder}\): the remote folder .* does not exist"):
        pull(repo, "mine")  # nothing was ever pushed there
    assert push(repo, "mine").files == 1 and any(folder.rglob("*"))
    check_remote(repo, "mine")


def test_a_run_someone_else_finished_is_restored_not_rerun(s3: str, tmp_path: Path):
    """push ships run-cache entries AND the outputs they name; after pull, repro with those params restores."""
    root = tmp_path / "runs"
    root.mkdir()
    _git(root, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "params.yaml").write_text("x: 1\n")
    # a file, a folder (like models/<task>/) and an uncached metric, as the real stages have
    script = ("import os, yaml; x = yaml.safe_load(open('params.yaml'))['x']; open('out.txt', 'w').write(str(x * 10)); "
              "os.makedirs('outdir', exist_ok=True); open('outdir/a', 'w').write(str(x)); "
              "open('outdir/b', 'w').write(str(-x)); open('score.json', 'w').write('{}')")
    subprocess.run([sys.executable, "-m", "dvc", "stage", "add", "-q", "-n", "times10", "-p", "x", "-o", "out.txt",
                    "-o", "outdir", "-M", "score.json", f'{sys.executable} -c "{script}"'], cwd=root, check=True)
    configure_s3_remote(root, "team", "s3://team/runs", s3)

    def repro(where: Path) -> str:
        done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=where, check=True, capture_output=True,
                              text=True)
        return done.stdout + done.stderr

    assert "Running stage 'times10'" in repro(root)
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "x=1")
    (root / "params.yaml").write_text("x: 2\n")  # A's experiment, never committed
    assert "Running stage 'times10'" in repro(root)
    _git(root, "checkout", "-q", "--", ".")
    report = push(root)
    # out.txt + score.json of x=2; those of x=1 went with the ordinary push of the commit
    # x=2's out.txt, outdir listing and its 2 files, and score.json ("{}" in both runs; `cache: false`, so an
    # ordinary push never sends it); x=1's cached outputs went with the ordinary push of the commit
    assert report.run_outputs == 5 and report.run_outputs_missing == 0
    clone = tmp_path / "teammate"
    _git(tmp_path, "clone", "-q", str(root), str(clone))
    pulled = pull(clone)
    assert (clone / "out.txt").read_text() == "10" and pulled.run_outputs == 5
    (clone / "params.yaml").write_text("x: 2\n")
    log = repro(clone)
    assert "Stage 'times10' is cached - skipping run" in log and "Running stage" not in log
    assert (clone / "out.txt").read_text() == "20" and (clone / "outdir" / "b").read_text() == "-2"
