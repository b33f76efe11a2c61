"""`abaw features`: encode every face frame once with frozen encoders into data/features.zarr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stages._common import ParamsOption, RawOption, fail, guarded, parse_shard, read_params, write_report

app = typer.Typer(help="Frame features from frozen encoders (mae, random, finetuned_<task>) into the zarr feature "
                       "store.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    faces: Annotated[Path, typer.Option(help="Face stores from `abaw faces`.", file_okay=False)] = Path("data/faces"),
    checkpoint: Annotated[Path, typer.Option(help="MAE checkpoint from `abaw pretrain`.", dir_okay=False)] = Path(
        "models/mae/mae.pt"),
    finetuned: Annotated[Path, typer.Option(help="Fine-tuned encoders from `abaw finetune` (<task>.pt), read by "
                                                 "the finetuned_<task> extractors.", file_okay=False)] = Path(
        "models/finetuned"),
    out: Annotated[Path, typer.Option(help="The zarr feature store (the DVC output).", file_okay=False)] = Path(
        "data/features.zarr"),
    report: Annotated[Path, typer.Option(help="Stage metrics (JSON).", dir_okay=False)] = Path("metrics/features.json"),
    shard: Annotated[str, typer.Option(help="Process only shard i of n (i/n) of the videos.")] = "0/1",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Encode every face store with each extractor; arrays with matching provenance are skipped."""
    from rich.progress import Progress

    from pipeline_lib.features.build import build_features

    settings = read_params(params)
    try:
        shard_pair = parse_shard(shard)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with Progress(disable=not progress) as bars:
        task = bars.add_task("features", total=None)
        metrics = build_features(raw, faces, checkpoint, out, settings.features, finetuned_dir=finetuned,
                                 seed=settings.seed, shard=shard_pair,
                                 on_video=lambda v: bars.advance(task, 1))
    write_report(report, metrics)
    probe = metrics.get("expr_probe_macro_f1", {})
    typer.echo(f"features: {metrics['videos']} videos x {len(metrics['extractors'])} extractors, "
               f"{metrics['arrays_written']} arrays written, {metrics['arrays_resumed']} already current; "
               f"EXPR linear probe macro F1: {json.dumps(probe)}")
    if empty := metrics.get("landmarks_without_points"):
        typer.secho(f"warning: landmarks: {len(empty)} video(s) have faces but no landmark points (e.g. {empty[0]}; "
                    f"crops imported from cropped_aligned carry none), so their landmarks features are all invalid; "
                    f"train the task models on finetuned_<task> there (README, 'Running on a real Aff-Wild2 copy')",
                    fg=typer.colors.YELLOW, err=True)
    if draws := metrics.get("expr_probe_random_inits"):
        typer.echo(f"  more random inits: {json.dumps(draws['macro_f1'])}; MAE above "
                   f"{metrics.get('random_inits_below_mae')} random inits (their mean {draws.get('mean_with_random')})")
