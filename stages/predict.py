"""`abaw predict VIDEO`: the trained chain on any video file -> per-frame CSV, overlay video, timeline plot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages._common import ParamsOption, guarded, read_params

app = typer.Typer(help="Predict valence/arousal, expression, AUs and compound expression on any video file.")


@app.command()
@guarded
def main(
    video: Annotated[Path, typer.Argument(help="Video file (any container PyAV/FFmpeg decodes).", dir_okay=False)],
    out: Annotated[Path | None, typer.Option(help="Output folder; default predictions/<video name>.",
                                             file_okay=False)] = None,
    params: ParamsOption = Path("params.yaml"),
    models: Annotated[Path, typer.Option(help="Trained models (models/ of `dvc repro`).", file_okay=False)] = Path(
        "models"),
    overlay: Annotated[bool, typer.Option(help="Also write the overlay mp4.")] = True,
    mesh: Annotated[bool, typer.Option(help="Draw MediaPipe's 478-point face mesh on the overlay.")] = False,
) -> None:
    """Run faces, features, temporal, fusion and compound models on VIDEO and write the three outputs."""
    from pipeline_lib.predict.chain import predict_video, summary
    from pipeline_lib.predict.render import timeline_png, write_csv, write_overlay

    params_ = read_params(params)
    folder = out if out is not None else Path("predictions") / video.stem
    result = predict_video(video, params_, models, mesh=mesh and overlay,
                           on_step=lambda step: typer.echo(f"predict: {step} ...", err=True))
    for line in result.warnings:
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    written = [write_csv(folder / f"{video.stem}.csv", result.predictions),
               timeline_png(folder / f"{video.stem}_timeline.png", result.predictions, video.name)]
    if overlay:
        written.append(write_overlay(video, folder / f"{video.stem}_overlay.mp4", result.predictions))
    info = summary(result)
    if info["faces"] == 0:
        typer.secho(f"warning: no face found in {video.name}: predictions are empty (face_present=0 on every frame)",
                    fg=typer.colors.YELLOW, err=True)
    else:
        typer.echo(f"{video.name}: {info['frames']} frames, face in {info['faces']}; mean valence "
                   f"{info['valence_mean']}, arousal {info['arousal_mean']}; most frequent expression "
                   f"{info['top_expression']}, compound {info['top_compound']}")
    for path in written:
        typer.echo(f"wrote {path}")
