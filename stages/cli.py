"""The umbrella `abaw` command: one sub-command per pipeline stage."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline_lib import __version__
from stages import (
    compound,
    corpus,
    evaluate,
    faces,
    features,
    finetune,
    fusion,
    predict,
    pretrain,
    share,
    summary,
    temporal,
)

app = typer.Typer(
    name="abaw",
    help="ABAW affect recognition pipeline. Each sub-command is one DVC stage; `dvc repro` runs them in order.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"abaw {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """ABAW affect recognition pipeline."""


app.add_typer(corpus.app, name="corpus")
app.add_typer(faces.app, name="faces")
app.add_typer(pretrain.app, name="pretrain")
app.add_typer(finetune.app, name="finetune")
app.add_typer(features.app, name="features")
app.add_typer(temporal.app, name="temporal")
app.add_typer(fusion.app, name="fusion")
app.add_typer(compound.app, name="compound")
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(summary.app, name="summary")
app.add_typer(share.app, name="share")
app.command(name="predict", help="Predict VA, expression, AUs and compound expression on any video file.")(
    predict.main)


def main() -> None:
    app()


if __name__ == "__main__":  # `python -m stages.cli ...`, e.g. under torchrun
    main()
