"""`abaw faces`: detect, follow and align the subject's face in every video into data/faces/<video>.h5."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from stages._common import ParamsOption, RawOption, fail, guarded, parse_shard, read_params

if TYPE_CHECKING:  # the face library pulls in MTCNN, scikit-image and matplotlib: imported when the stage runs
    from pipeline_lib.faces.runner import FaceJob, JobResult

app = typer.Typer(help="Face detection, subject choice and 5-point alignment into the HDF5 face store.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    out: Annotated[Path, typer.Option(help="Face store folder (the DVC output).",
                                      file_okay=False)] = Path("data/faces"),
    report: Annotated[Path, typer.Option(help="Stage metrics (JSON).", dir_okay=False)] = Path("metrics/faces.json"),
    videos_report: Annotated[Path, typer.Option(help="Per-video report (JSON).", dir_okay=False)] = Path(
        "metrics/faces_videos.json"),
    plot: Annotated[Path, typer.Option(help="Grid of aligned sample crops (PNG).", dir_okay=False)] = Path(
        "plots/faces_samples.png"),
    shard: Annotated[str, typer.Option(help="Process only shard i of n (i/n) of the video files.")] = "0/1",
    workers: Annotated[int | None, typer.Option(min=1, help="Override faces.workers.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Write one face store per video subject; finished stores with matching provenance are skipped."""
    from pipeline_lib.faces.build import build_face_stores

    settings = read_params(params).faces
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    try:
        shard_pair = parse_shard(shard)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, transient=False) as bars:
        overall = bars.add_task("all videos", total=None)
        per_video: dict[str, TaskID] = {}
        expected: dict[str, int] = {}

        def on_plan(jobs: list[FaceJob]) -> None:
            expected.update({job.key: job.expected_frames for job in jobs})
            bars.update(overall, total=sum(expected.values()))

        def on_start(job: FaceJob) -> None:
            per_video[job.key] = bars.add_task(f"  {job.key}", total=job.expected_frames or None)

        def on_frames(key: str, n: int) -> None:
            bars.advance(overall, n)
            if key in per_video:
                bars.advance(per_video[key], n)

        def on_done(result: JobResult) -> None:
            if result.key in per_video:
                bars.remove_task(per_video.pop(result.key))
            if result.skipped:
                bars.advance(overall, expected.get(result.key, 0))

        result = build_face_stores(raw, settings, out, report, videos_report, plot, shard=shard_pair,
                                   on_plan=on_plan, on_start=on_start, on_frames=on_frames, on_done=on_done)
    for name in result.pruned:
        typer.secho(f"removed stale {name}", fg=typer.colors.YELLOW, err=True)
    for key, problems in result.metrics["problems"].items():
        typer.secho(f"warning: {key}: {'; '.join(problems)}", fg=typer.colors.YELLOW, err=True)
    for job in result.results:
        if job.problems:  # already warned: frames it could not read carry no face either
            continue
        for subject, figures in job.subjects.items():
            if figures.get("frames") and not figures.get("present"):
                typer.secho(f"warning: {subject}: no face in any of its {figures['frames']} frames "
                            f"(every frame of it is invalid downstream)", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.summary_line())
