"""The ``ckptfix`` command: thin typer commands over the library, rendered with rich.

Each command parses its options, calls one library function, renders the returned object
(or prints it as JSON), and turns a :class:`~ckptfix.errors.CkptfixError` into one line on
stderr and a documented exit code. No h5py here, and no TensorFlow at import time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from . import __version__
from .errors import CkptfixError, ExitCode
from .report import to_jsonable

app = typer.Typer(
    name="ckptfix",
    help="Repair and prevent broken Keras checkpoints from data-parallel training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")


def fail(exc: CkptfixError) -> NoReturn:
    """Print a library error as one line on stderr and exit with its code."""
    err.print(f"[bold red]Error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(int(exc.exit_code))


def run_library(call: Callable[[], T]) -> T:
    """Run one library call; map its errors to a one-line message and an exit code."""
    try:
        return call()
    except CkptfixError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print("Interrupted; nothing was written.")
        raise typer.Exit(130) from None


def print_json(obj: Any) -> None:
    """Print one JSON object on stdout (plain, no rich markup)."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def _version(value: bool) -> None:
    if value:
        out.print(f"ckptfix {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Repair and prevent broken Keras checkpoints from data-parallel training."""


# --- commands -------------------------------------------------------------------------------
# Each command lives in its own section below; keep them thin.


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CkptfixError as exc:  # pragma: no cover - commands catch their own
        err.print(f"Error: {exc}")
        sys.exit(int(exc.exit_code))


__all__ = ["app", "main", "ExitCode"]
