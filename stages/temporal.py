"""`abaw temporal --task va|expr|au`: a temporal model per task on windows of cached features, with its
frame-wise baseline, validated every epoch with the official metric."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages._common import FeaturesOption, ParamsOption, RawOption, TaskName, guarded, read_params, write_report

app = typer.Typer(help="Temporal models on cached frame features (one task per run; DVC runs all three).")


@app.callback(invoke_without_command=True)
@guarded
def main(
    task: Annotated[TaskName, typer.Option(help="Which task to train.", case_sensitive=False)],
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    features: FeaturesOption = Path("data/features.zarr"),
    models: Annotated[Path, typer.Option(help="Checkpoints go to MODELS/<task>/.", file_okay=False)] = Path(
        "models/temporal"),
    predictions: Annotated[Path, typer.Option(help="Per-frame predictions go to PREDICTIONS/<task>.h5.",
                                              file_okay=False)] = Path("data/predictions/temporal"),
    report: Annotated[Path, typer.Option(help="Metrics go to REPORT/<task>.json, curves to REPORT/<task>/.",
                                         file_okay=False)] = Path("metrics/temporal"),
) -> None:
    """Train TASK's temporal model and its frame-wise baseline; predict every video. Under torchrun, rank 0 alone
    writes."""
    from contextlib import nullcontext

    from dvclive import Live

    from pipeline_lib.train import distributed
    from pipeline_lib.train.temporal_run import run_temporal_task

    params_ = read_params(params)
    name = task.value
    settings = params_.temporal.resolve(name, params_.window)
    main_rank = distributed.is_main()  # RANK from torchrun: right before the process group is joined
    try:
        with Live(str(report / name), dvcyaml=False, save_dvc_exp=False) if main_rank else nullcontext() as live:
            def on_epoch(model: str, epoch: int, loss: float, val: float) -> None:
                assert live is not None  # passed on by the main rank alone, which opened Live
                live.step = epoch  # the models train one after the other: each curve is indexed by its own epoch
                live.log_metric(f"{model}/train_loss", loss, plot=True)
                live.log_metric(f"{model}/val_{name}", val, plot=True)
                if model == "temporal":
                    typer.echo(f"{name} {model} epoch {epoch + 1}/{settings.epochs}: loss {loss:.4f}, val {val:.4f}")

            metrics = run_temporal_task(raw, features, settings, models, predictions / f"{name}.h5",
                                        seed=params_.seed, on_epoch=on_epoch if main_rank else None)
    finally:
        distributed.leave()
    if not main_rank:
        return
    write_report(report / f"{name}.json", metrics)
    metric = metrics["metric"]
    line = f"temporal {name} ({settings.encoder}, window {settings.window}): val {metric} {metrics['temporal'][metric]}"
    if settings.baseline:
        line += f" vs frame-wise {metrics['baseline'][metric]}"
    if distributed.world_size() > 1:
        line += f" ({distributed.world_size()} processes)"
    typer.echo(line)
