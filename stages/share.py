"""`abaw share check|push|pull`: DVC push/pull (with the run-cache) whose failures name the remote in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages._common import guarded

app = typer.Typer(help="Share caches, models and finished experiments with a team through a DVC remote.",
                  no_args_is_help=True)

RemoteOption = Annotated[str | None, typer.Option("--remote", "-r", help="DVC remote name; default: the "
                                                  "repository's default remote.")]
RepoOption = Annotated[Path, typer.Option("--repo", help="The DVC repository (a clone of this project).",
                                          file_okay=False, exists=True)]
RunCacheOption = Annotated[bool, typer.Option(help="Also transfer DVC's run-cache, so stages (and experiments) "
                                              "someone already ran are restored instead of recomputed.")]
JobsOption = Annotated[int | None, typer.Option(help="Parallel transfers (DVC's default when unset).", min=1)]


def _where(report) -> str:
    return f"remote '{report.remote.name}' ({report.remote.url})"


def _warn_missing(report, why: str) -> None:
    if report.run_outputs_missing:
        typer.secho(f"warning: {report.run_outputs_missing} run-cache output file(s) {why}",
                    fg=typer.colors.YELLOW, err=True)


@app.command()
@guarded
def check(remote: RemoteOption = None, repo: RepoOption = Path(".")) -> None:
    """Ask the remote one cheap question (list its bucket or folder) and say whether it answers."""
    from pipeline_lib.share.remote import check_remote

    info = check_remote(repo, remote)
    typer.echo(f"remote '{info.name}' ({info.url}" + (f" at {info.endpoint}" if info.endpoint else "") + "): ok")


@app.command()
@guarded
def push(remote: RemoteOption = None, repo: RepoOption = Path("."), run_cache: RunCacheOption = True,
         jobs: JobsOption = None) -> None:
    """Push every output of dvc.lock (and the run-cache) to the remote."""
    from pipeline_lib.share.remote import push as push_

    report = push_(repo, remote, run_cache=run_cache, jobs=jobs)
    typer.echo(f"pushed {report.files} file(s) to {_where(report)} in {report.seconds:.1f} s"
               + (f" (run-cache outputs: {report.run_outputs} file(s))" if run_cache else ""))
    _warn_missing(report, "not in the local cache (removed by `dvc gc`?): teammates re-run those stages")


@app.command()
@guarded
def pull(remote: RemoteOption = None, repo: RepoOption = Path("."), run_cache: RunCacheOption = True,
         jobs: JobsOption = None) -> None:
    """Pull the outputs of dvc.lock (and the run-cache) from the remote and check them out."""
    from pipeline_lib.share.remote import pull as pull_

    report = pull_(repo, remote, run_cache=run_cache, jobs=jobs)
    typer.echo(f"pulled {report.files} file(s) from {_where(report)} in {report.seconds:.1f} s; "
               f"{len(report.changed)} output(s) checked out"
               + (f" (run-cache outputs: {report.run_outputs} file(s))" if run_cache else ""))
    _warn_missing(report, "not on the remote (pushed with plain `dvc push --run-cache`?): those stages re-run")
