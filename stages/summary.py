"""`abaw summary`: the finished run's headline in a short table (what `make demo` ends with)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline_lib.evaluate.headline import Headline, read_headline
from stages._common import guarded

app = typer.Typer(help="Print the run's headline: best model per task, MTL, submissions, plots.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    summary: Annotated[Path, typer.Option(help="metrics/summary.json from `abaw evaluate`.", dir_okay=False)] = Path(
        "metrics/summary.json"),
    report: Annotated[Path, typer.Option(help="metrics/evaluate.json from `abaw evaluate`.", dir_okay=False)] = Path(
        "metrics/evaluate.json"),
    plots: Annotated[Path, typer.Option(help="Where `abaw evaluate` drew its plots.", file_okay=False)] = Path(
        "plots/evaluate"),
    submissions: Annotated[Path, typer.Option(help="Where `abaw evaluate` wrote the submissions.",
                                              file_okay=False)] = Path("submissions"),
) -> None:
    """Best model per task on validation, the MTL score, and where the submissions and plots are."""
    headline = read_headline(summary, report)
    console = show_table(headline)
    for task, model in headline.unscored.items():
        console.print(f"{task}: no validation labels; its test submission uses {model}, unscored")
    state = "re-read without error" if headline.submissions_ok else "[red]with errors: see metrics/evaluate.json[/]"
    console.print(f"submissions: {headline.submission_files} file(s) in {submissions}/, {state}")
    if headline.plots:
        console.print(f"plots: {', '.join(str(plots / p) for p in headline.plots)}")
    console.print("every score of every model: metrics/evaluate.json (or `dvc metrics show`)")


def show_table(headline: Headline) -> Console:
    """Print the best model per task and the MTL scores; return the console for more lines."""
    table = Table(title="Validation, after the post-processing tuned there", title_justify="left")
    for column, justify in (("task", "left"), ("metric", "left"), ("best model", "left"), ("score", "right"),
                            ("val videos", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for task, metric, model, value, videos in headline.rows:
        table.add_row(task, metric, model, f"{value:.4f}", str(videos))
    console = Console(width=100)
    console.print(table)
    for name, value in headline.mtl.items():
        console.print(f"MTL ({name}): {value:.4f}  (VA CCC + EXPR F1 + AU F1)")
    return console
