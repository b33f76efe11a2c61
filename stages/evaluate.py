"""`abaw evaluate`: official metrics of every model on validation, tuned post-processing, challenge-format
submissions for the test lists, plots and the headline summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stages._common import ParamsOption, RawOption, guarded, read_params, write_report
from stages.summary import show_table

app = typer.Typer(help="Score every model, write challenge submissions and plots.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    temporal: Annotated[Path, typer.Option(help="Per-task predictions from `abaw temporal` (<task>.h5).",
                                           file_okay=False)] = Path("data/predictions/temporal"),
    fusion: Annotated[Path, typer.Option(help="fusion.h5 from `abaw fusion`.", dir_okay=False)] = Path(
        "data/predictions/fusion/fusion.h5"),
    compound: Annotated[Path, typer.Option(help="compound.h5 from `abaw compound`.", dir_okay=False)] = Path(
        "data/predictions/compound/compound.h5"),
    features: Annotated[Path | None, typer.Option(
        help="Feature store: with the `mesh` extractor in it, AU also scores the zero-shot blendshape baseline.",
        file_okay=False)] = None,
    submissions: Annotated[Path, typer.Option(help="Challenge-format files go here.", file_okay=False)] = Path(
        "submissions"),
    plots: Annotated[Path, typer.Option(help="PNG plots go here.", file_okay=False)] = Path("plots/evaluate"),
    report: Annotated[Path, typer.Option(help="Every score of every model (JSON).", dir_okay=False)] = Path(
        "metrics/evaluate.json"),
    summary: Annotated[Path, typer.Option(help="Headline numbers (JSON).", dir_okay=False)] = Path(
        "metrics/summary.json"),
) -> None:
    """Evaluate every model on validation and write the test-set submissions."""
    from pipeline_lib.evaluate.headline import read_headline
    from pipeline_lib.evaluate.run import run_evaluate

    settings = read_params(params).evaluate
    metrics, headline = run_evaluate(raw, temporal, fusion, compound, settings, submissions, plots, features)
    for path, content in ((report, metrics), (summary, headline)):
        write_report(path, content)
    show_table(read_headline(summary, report))
    for task, model in metrics["unscored"].items():
        typer.secho(f"notice: {task}: no validation labels; its test submission uses {model} unscored, with the "
                    f"default post-processing", fg=typer.colors.YELLOW, err=True)
    sub = metrics["submissions"]
    typer.echo(f"submissions: {sum(sub['files'].values())} file(s), {sum(sub['rows'].values())} frame line(s) "
               f"written to {submissions}/, re-read with {len(sub['errors'])} error(s)")
    if sub["errors"]:
        for line in sub["errors"][:10]:
            typer.secho(f"  {line}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
