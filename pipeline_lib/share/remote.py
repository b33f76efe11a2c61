"""Push and pull the pipeline's outputs (and DVC's run-cache) through a DVC remote, with errors that name it.

DVC itself reports an unreachable endpoint or rejected credentials as an
"unexpected error" with a traceback, or as "N files failed to upload", after
having hashed the whole workspace. `check_remote` asks the remote one cheap
question first (list the bucket or folder) and turns the answer into one line
naming the remote, its URL and what to fix. `push` / `pull` then call DVC's
own Python API, so transfers, the run-cache and the interrupted-pull recovery
are DVC's, unchanged.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline_lib.config import ConfigError

__all__ = ["RemoteError", "RemoteInfo", "SyncReport", "check_remote", "push", "pull"]

# Error codes an S3-compatible server answers when the key or secret is wrong or lacks rights.
_CREDENTIAL_HINTS = ("access key", "accesskey", "signature", "credential", "token", "forbidden", "access denied")


class RemoteError(ConfigError):
    """The remote cannot be used as configured; the message is one line naming it (a ConfigError, so every
    stage reports it as one)."""

    def __init__(self, name: str, url: str | None, problem: str) -> None:
        super().__init__(name, url, problem)
        self.name, self.url, self.problem = name, url, " ".join(problem.split())

    def __str__(self) -> str:
        where = f"remote '{self.name}'" + (f" ({self.url})" if self.url else "")
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    endpoint: str | None  # S3-compatible endpoint (MinIO, moto, ...) if not AWS itself


@dataclass(frozen=True)
class SyncReport:
    remote: RemoteInfo
    files: int  # objects transferred (outputs' files plus run-cache entries)
    seconds: float
    changed: tuple[str, ...] = ()  # pull: workspace paths DVC checked out
    run_outputs: int = 0  # files of run-cache outputs transferred (finished runs of other params)
    run_outputs_missing: int = 0  # ... that could not be (not in the source cache / not on the remote)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _open(root: Path) -> Any:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise RemoteError("?", None, f"{root} is not a DVC repository (run `dvc init` or cd into the clone)") \
            from None


def _describe(repo: Any, name: str | None) -> RemoteInfo:
    remotes = repo.config["remote"]
    chosen = name or repo.config["core"].get("remote")
    if not chosen:
        raise RemoteError("(default)", None, "no default remote is configured: `dvc remote add -d NAME URL`, "
                          "or pass --remote NAME" + (f" (configured: {', '.join(sorted(remotes))})" if remotes else ""))
    if chosen not in remotes:
        raise RemoteError(chosen, None, "no such remote in .dvc/config or .dvc/config.local"
                          + (f" (configured: {', '.join(sorted(remotes))})" if remotes else ""))
    section = remotes[chosen]
    return RemoteInfo(chosen, section["url"], section.get("endpointurl"))


def _explain(exc: BaseException, info: RemoteInfo) -> str:
    """What went wrong talking to the remote, and what to fix, in words."""
    text = _first_line(exc)
    lowered = f"{type(exc).__name__} {text}".lower()
    kind = type(exc).__name__
    if "nocredentials" in lowered or "unable to locate credentials" in lowered:
        return ("no credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or "
                f"`dvc remote modify --local {info.name} access_key_id ...` and secret_access_key")
    if isinstance(exc, PermissionError) or any(hint in lowered for hint in _CREDENTIAL_HINTS):
        return (f"credentials rejected ({text}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the remote's "
                "access_key_id / secret_access_key in .dvc/config.local")
    if "connect" in lowered or "timeout" in lowered or "timed out" in lowered or "name resolution" in lowered:
        where = info.endpoint or info.url
        return f"cannot reach {where} ({kind}: {text}): is the server up and the endpointurl right?"
    if isinstance(exc, FileNotFoundError):
        return f"does not exist ({text}): create the bucket or folder, or fix the url"
    return f"{kind}: {text}"


def _probe(remote: Any, info: RemoteInfo, purpose: Literal["push", "pull"]) -> None:
    """List the remote's bucket (object stores) or folder (local, ssh, ...): raises RemoteError on any problem."""
    fs, path = remote.fs, remote.path
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    is_bucket = any(p in ("s3", "gs", "gcs", "azure", "az", "oss") for p in protocols)
    try:
        if is_bucket:
            bucket = path.split("/", 1)[0]
            fs.ls(bucket)
        elif not fs.exists(path):
            if purpose == "pull":
                raise RemoteError(info.name, info.url, f"the remote folder {path} does not exist: nothing was ever "
                                  "pushed there (wrong url?)")
            parent = fs.parent(path)
            if parent and not fs.exists(parent):
                raise RemoteError(info.name, info.url, f"the parent folder {parent} does not exist")
    except RemoteError:
        raise
    except Exception as exc:
        raise RemoteError(info.name, info.url, _explain(exc, info)) from None


def _run_cache_objects(repo: Any) -> set[Any]:
    """The output objects every run-cache entry points at.

    `dvc push --run-cache` (DVC 3) copies the entries only, not the outputs they
    name, so a teammate's `dvc repro` finds the entry, misses the files and
    re-runs the stage. Transferring these objects too is what makes a finished
    experiment (say `-S window=64`) restore instead of recompute.
    """
    from dvc_data.hashfile.hash_info import HashInfo

    objects: set[Any] = set()
    runs = Path(repo.cache.legacy.path) / "runs"
    for entry in sorted(runs.glob("*/*/*")) if runs.is_dir() else ():
        try:
            lock = yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        except (OSError, ValueError):
            continue  # a half-written entry; DVC ignores it as well
        for out in lock.get("outs", []):
            if out.get("md5"):
                name = "md5" if out.get("hash") == "md5" else "md5-dos2unix"  # pre-3.0 entries are legacy
                objects.add(HashInfo(name, out["md5"]))
    return objects


def _with_dir_contents(repo: Any, objects: set[Any]) -> set[Any]:
    """`objects` plus the files of every directory object among them that is in the local cache.

    Transferring a `.dir` object moves its listing only; the files it lists are named explicitly.
    """
    from dvc_data.hashfile.tree import Tree

    found = set(objects)
    for hash_info in objects:
        if not hash_info.isdir:
            continue
        odb = repo.cache.local if hash_info.name == "md5" else repo.cache.legacy
        try:
            tree = Tree.load(odb, hash_info)
        except (OSError, ValueError):
            continue  # listing not here (yet): pull fetches listings first, then their files
        found.update(oid for _, _, oid in tree if oid is not None)
    return found


def check_remote(root: Path, name: str | None = None, purpose: Literal["push", "pull"] = "pull") -> RemoteInfo:
    """The remote `name` (default: DVC's default remote) of the repository at `root`, after checking it answers."""
    from dvc.exceptions import DvcException

    with _open(root) as repo:
        info = _describe(repo, name)
        try:
            remote = repo.cloud.get_remote(info.name, command=purpose)
        except DvcException as exc:
            raise RemoteError(info.name, info.url, _first_line(exc)) from None
        _probe(remote, info, purpose)
    return info


def push(root: Path, name: str | None = None, *, run_cache: bool = True, jobs: int | None = None) -> SyncReport:
    """`dvc push` after a remote check; with `run_cache`, also the run-cache and every output it names, so
    teammates get finished experiments too."""
    from dvc.exceptions import DvcException

    info = check_remote(root, name, "push")
    start = time.perf_counter()
    moved = missing = 0
    with _open(root) as repo:
        try:
            files = repo.push(remote=info.name, run_cache=run_cache, jobs=jobs)
            if run_cache:
                result = repo.cloud.push(_with_dir_contents(repo, _run_cache_objects(repo)), jobs=jobs,
                                         remote=info.name)
                moved, missing = len(result.transferred), len(result.failed)
        except DvcException as exc:
            raise RemoteError(info.name, info.url, f"push failed: {_first_line(exc)}") from None
    return SyncReport(info, int(files), time.perf_counter() - start, run_outputs=moved, run_outputs_missing=missing)


def pull(root: Path, name: str | None = None, *, run_cache: bool = True, jobs: int | None = None,
         allow_missing: bool = False) -> SyncReport:
    """`dvc pull` (outputs of the current dvc.lock, plus the run-cache and the outputs it restores) after a check.

    Afterwards `dvc repro` / `dvc exp run` with params a teammate already ran restore those stages instead of
    running them. An interrupted pull is safe to repeat: DVC checks files out of its cache only once complete.
    """
    from dvc.exceptions import DvcException

    info = check_remote(root, name, "pull")
    start = time.perf_counter()
    moved = missing = 0
    with _open(root) as repo:
        try:
            result = repo.pull(remote=info.name, run_cache=run_cache, jobs=jobs, allow_missing=allow_missing)
            if run_cache:  # the entries came with the pull; now the files they restore: listings first
                named = _run_cache_objects(repo)
                fetched = repo.cloud.pull(named, jobs=jobs, remote=info.name)
                contents = repo.cloud.pull(_with_dir_contents(repo, named) - named, jobs=jobs, remote=info.name)
                moved = len(fetched.transferred) + len(contents.transferred)
                missing = len(fetched.failed) + len(contents.failed)
        except DvcException as exc:
            raise RemoteError(info.name, info.url, f"pull failed: {_first_line(exc)}") from None
    # DVC names checked-out paths relative to the current directory; report them from the repository root.
    changed = tuple(sorted(os.path.relpath(os.path.abspath(p), root.resolve()).replace(os.sep, "/")
                           for key in ("added", "modified") for p in result.get(key, [])))
    return SyncReport(info, int(result["stats"].get("fetched", 0)), time.perf_counter() - start, changed, moved,
                      missing)
