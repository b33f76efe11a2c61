"""`abaw corpus`: build data/raw, either the embedded demo corpus or an import of a real Aff-Wild2 copy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from pipeline_lib.config import Params
from pipeline_lib.data.prepare import prepare_raw
from pipeline_lib.features.encode import GEOMETRIC
from pipeline_lib.models.mae import config_by_name
from stages._common import ParamsOption, guarded, read_params, write_report

app = typer.Typer(help="Build data/raw: the demo corpus (data.source: demo) or an Aff-Wild2 import.")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Raw data folder (the DVC output).", file_okay=False)] = Path("data/raw"),
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering demo videos.")] = 2,
    report: Annotated[Path, typer.Option(help="Where to write the ingest report (JSON).", dir_okay=False)] = Path(
        "metrics/corpus.json"
    ),
) -> None:
    """Generate the demo corpus or import a real Aff-Wild2 copy, then write the manifest."""
    settings = read_params(params)
    result = prepare_raw(out, settings.data, seed=settings.seed, workers=workers)
    write_report(report, result.metrics())
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    for line in result.plan.lines(_feature_arrays(settings)):
        typer.echo(line)
    typer.echo(result.summary_line())


def _feature_arrays(settings: Params) -> dict[int, int]:
    """Width -> how many arrays of it `features.extractors` stores per video (for the disk estimate)."""
    widths = Counter(GEOMETRIC.get(name) or config_by_name(settings.pretrain.model).width
                     for name in settings.features.extractors)
    return dict(widths)
