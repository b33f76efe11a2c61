"""What every stage shares: the --params option and turning expected faults into one-line errors."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from pipeline_lib.config import ConfigError, Params, load_params
from pipeline_lib.data.errors import DataError

P = ParamSpec("P")
R = TypeVar("R")

ParamsOption = Annotated[
    Path,
    typer.Option(
        "--params",
        help="params.yaml to read (every stage reads its own section).",
        dir_okay=False,
        resolve_path=True,
    ),
]

# Faults a user can cause with their input: reported in one line, exit code 2.
EXPECTED_FAULTS: tuple[type[Exception], ...] = (ConfigError, DataError)


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Run a stage body; expected faults become one red line instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except EXPECTED_FAULTS as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
            sys.exit(130)

    return wrapper


def read_params(path: Path) -> Params:
    """Load and validate params before any work starts."""
    return load_params(path)
