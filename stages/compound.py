"""`abaw compound`: curriculum fine-tuning from single to compound expressions, compared with direct training
and with the zero-shot score of the fusion model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stages._common import FeaturesOption, ParamsOption, RawOption, guarded, read_params, write_report

app = typer.Typer(help="Compound expressions: curriculum fine-tuning vs direct training vs zero-shot.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    features: FeaturesOption = Path("data/features.zarr"),
    fusion: Annotated[Path, typer.Option(help="Fusion predictions (fusion.h5) from `abaw fusion`.",
                                         dir_okay=False)] = Path("data/predictions/fusion/fusion.h5"),
    models: Annotated[Path, typer.Option(help="Checkpoint folder (compound.pt).", file_okay=False)] = Path(
        "models/compound"),
    predictions: Annotated[Path, typer.Option(help="Per-frame predictions go to PREDICTIONS/compound.h5.",
                                              file_okay=False)] = Path("data/predictions/compound"),
    report: Annotated[Path, typer.Option(help="Stage metrics (JSON); curves go beside it in a folder of its name.",
                                         dir_okay=False)] = Path("metrics/compound.json"),
) -> None:
    """Train the compound model with the curriculum (and directly, to compare); predict every video."""
    from dvclive import Live

    from pipeline_lib.train.compound_run import run_compound

    params_ = read_params(params)
    settings = params_.compound
    with Live(str(report.with_suffix("")), dvcyaml=False, save_dvc_exp=False) as live:
        def on_epoch(run: str, epoch: int, loss: float, val: float) -> None:
            live.step = epoch  # the runs train one after the other: each curve is indexed by its own epoch
            live.log_metric(f"{run}/train_loss", loss, plot=True)
            scored = val == val  # NaN: no CE validation video
            if scored:
                live.log_metric(f"{run}/val_ce_f1", val, plot=True)
            typer.echo(f"compound ({run}) epoch {epoch + 1}: loss {loss:.4f}"
                       + (f", val CE F1 {val:.4f}" if scored else ""))

        def notice(message: str) -> None:
            typer.secho(f"notice: {message}", fg=typer.colors.YELLOW, err=True)

        metrics = run_compound(raw, features, fusion, settings, params_.window, models,
                               predictions / "compound.h5", seed=params_.seed, on_epoch=on_epoch, notice=notice)
        if not metrics["trained"]:  # keep the declared curves folder: one point saying nothing was trained
            live.log_metric("trained", 0, plot=True)
    write_report(report, metrics)
    typer.echo(summary_line(metrics))


def summary_line(metrics: dict[str, Any]) -> str:
    """One line: what was trained and how it scored on CE validation (means over the seeds when several)."""
    if not metrics["trained"]:
        return f"compound: zero-shot scores only ({metrics['reason']})"
    source = "real + synthetic" if metrics["real_compound_labels"] else "synthetic only (no CE training labels)"
    if "seeds" not in metrics:
        return f"compound: curriculum trained on {source} compound windows; no CE validation video to score it"
    seeds = metrics["seeds"]
    parts = ", ".join(f"{name} {mean}" for name, mean in seeds["mean"].items())
    return f"compound ({source}): val CE F1, mean of {len(seeds['seeds'])} seed(s): {parts}"
