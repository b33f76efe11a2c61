"""What every stage shares: the --params option and turning expected faults into one-line errors."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from pipeline_lib.config import ConfigError, Params, load_params
from pipeline_lib.data.errors import DataError
from pipeline_lib.files import write_text_atomic

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

# The inputs most stages read, with the paths dvc.yaml passes.
RawOption = Annotated[Path, typer.Option("--raw", help="data/raw from `abaw corpus`.", file_okay=False)]
FeaturesOption = Annotated[Path, typer.Option("--features", help="Feature store from `abaw features`.",
                                              file_okay=False)]


class TaskName(str, Enum):
    """The tasks a per-task stage (finetune, temporal) trains, as its --task option offers them: labels.BASIC_KEYS
    (a test holds the two equal; typer needs a literal Enum)."""

    va = "va"
    expr = "expr"
    au = "au"


# Faults a user can cause with their input: reported in one line, exit code 2.
EXPECTED_FAULTS: tuple[type[Exception], ...] = (ConfigError, DataError)  # share.RemoteError is a ConfigError


def fail(message: str) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=2)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or `kill`'s stop), raised like Ctrl-C so writers remove their partial files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """Run a stage body; expected faults become one red line instead of a traceback.

    Ctrl-C and SIGTERM unwind the stage (every writer drops its partial file on
    the way out), print one line and exit 128 + the signal number.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        main_thread = threading.current_thread() is threading.main_thread()  # handlers can only be set there
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
        swallowed: list[KeyboardInterrupt] = []
        default_hook = sys.unraisablehook

        def unraisable(info: Any) -> None:
            # SIGTERM or Ctrl-C landing while a finalizer (a gc weakref callback, __del__) runs raises there, and
            # Python swallows it with an "Exception ignored" traceback: the stage would run on and exit 0.
            if isinstance(info.exc_value, KeyboardInterrupt):
                swallowed.append(info.exc_value)
            else:
                default_hook(info)

        sys.unraisablehook = unraisable
        try:
            result = func(*args, **kwargs)
            if swallowed:
                raise swallowed[0]
            return result
        except EXPECTED_FAULTS as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
            # I/O still pending on a library's event loop (zarr writes run on one) is abandoned on purpose: its
            # array never gets its `complete` mark. Without this, asyncio reports each such task at exit, after
            # our line.
            logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
            typer.secho(f"interrupted ({signal.Signals(signum).name}): re-run to finish", fg=typer.colors.YELLOW,
                        err=True)
            sys.exit(128 + signum)
        finally:
            sys.unraisablehook = default_hook
            if main_thread:
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return wrapper


def read_params(path: Path) -> Params:
    """Load and validate params before any work starts."""
    return load_params(path)


def write_report(path: Path, content: object) -> None:
    """A stage's metrics JSON, written atomically: a killed stage leaves the old file or none, never half of one."""
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n")
    return index, count
