"""`abaw fusion`: multi-task fusion of frame features and the task models' hidden features, with EXPR
pseudo-labels from the EXPR temporal model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages._common import FeaturesOption, ParamsOption, RawOption, guarded, read_params, write_report

app = typer.Typer(help="Multi-task fusion with task dependencies and semi-supervised EXPR pseudo-labels.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    features: FeaturesOption = Path("data/features.zarr"),
    temporal: Annotated[Path, typer.Option(help="Per-task predictions from `abaw temporal` (<task>.h5).",
                                           file_okay=False)] = Path("data/predictions/temporal"),
    models: Annotated[Path, typer.Option(help="Checkpoint folder (fusion.pt).", file_okay=False)] = Path(
        "models/fusion"),
    predictions: Annotated[Path, typer.Option(help="Per-frame predictions go to PREDICTIONS/fusion.h5.",
                                              file_okay=False)] = Path("data/predictions/fusion"),
    report: Annotated[Path, typer.Option(help="Stage metrics (JSON); curves go beside it in a folder of its name.",
                                         dir_okay=False)] = Path("metrics/fusion.json"),
) -> None:
    """Train the fusion model on all three tasks; predict every video."""
    from dvclive import Live

    from pipeline_lib.train.fusion_run import run_fusion

    params_ = read_params(params)
    settings = params_.fusion
    with Live(str(report.with_suffix("")), dvcyaml=False, save_dvc_exp=False) as live:
        def on_epoch(run: str, epoch: int, loss: float, val: float) -> None:
            live.step = epoch  # the runs train one after the other: each curve is indexed by its own epoch
            live.log_metric(f"pseudo_{run}/train_loss", loss, plot=True)
            live.log_metric(f"pseudo_{run}/val_mtl", val, plot=True)
            typer.echo(f"fusion (pseudo-labels {run}) epoch {epoch + 1}/{settings.epochs}: loss {loss:.4f}, "
                       f"val MTL {val:.4f}")

        def notice(message: str) -> None:
            typer.secho(f"notice: {message}", fg=typer.colors.YELLOW, err=True)

        metrics = run_fusion(raw, features, temporal, settings, params_.window, models,
                             predictions / "fusion.h5", seed=params_.seed, on_epoch=on_epoch, notice=notice)
    write_report(report, metrics)
    val, individual = metrics["val"], metrics["individual"]
    typer.echo(f"fusion ({settings.fusion}, {settings.dependency}): val MTL {val['mtl']} "
               f"(CCC {val['ccc_mean']}, EXPR F1 {val['expr_f1']}, AU F1 {val['au_f1_mean']}) vs best individual "
               f"sum {individual['sum']}")
    truth = metrics["pseudo"].get("demo_truth")
    if truth and truth["precision"] is not None:
        typer.echo(f"pseudo-labels vs the demo corpus's truth: {truth['precision']:.1%} right on "
                   f"{truth['frames_with_truth']} frames (majority-class guess {truth['chance']:.1%})")
    comparison = metrics["pseudo"].get("comparison")
    if comparison:
        typer.echo(f"pseudo-labels on/off: EXPR F1 {comparison['expr_f1']['on']}/{comparison['expr_f1']['off']}, "
                   f"rarest class {comparison['rarest_class']} F1 {comparison['rarest_f1']['on']}/"
                   f"{comparison['rarest_f1']['off']}")
