"""The ``ckptfix`` command: thin typer commands over the library, rendered with rich.

Each command parses its options, calls one library function, renders the returned object
(or prints it as JSON), and turns a :class:`~ckptfix.errors.CkptfixError` into one line on
stderr and a documented exit code. No h5py here, and no TensorFlow at import time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
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
        False,
        "--version",
        callback=_version,
        is_eager=True,
        is_flag=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Repair and prevent broken Keras checkpoints from data-parallel training."""


# --- commands -------------------------------------------------------------------------------
# Each command lives in its own section below; keep them thin.


@app.command()
def convert(
    src: Path = typer.Argument(..., help="The parallel (or wrapped) checkpoint. Never modified."),
    dst: Path = typer.Argument(..., help="Where to write the single-model checkpoint."),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Exact layout for weights-only files: the template's JSON config "
        "(model.to_json()), or a .h5 saved from the template.",
    ),
    template: str | None = typer.Option(
        None, "--template", "-t", help="The nested model to lift out, when there are several."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing DST."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Rewrite a parallel checkpoint as the single template model's checkpoint."""
    from .convert import convert_checkpoint

    result = run_library(
        lambda: convert_checkpoint(src, dst, template=template, reference=reference, force=force)
    )
    if as_json:
        print_json(result)
        return
    from .render import render_conversion

    out.print(render_conversion(result))


@app.command()
def verify(
    src: Path = typer.Argument(..., help="The parallel checkpoint."),
    dst: Path = typer.Argument(..., help="The converted single-model checkpoint."),
    template: str | None = typer.Option(
        None, "--template", "-t", help="The nested model, when there are several."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Compare the template inside SRC with DST, tensor by tensor (exit 7 on a mismatch)."""
    from .convert import verify_conversion

    result = run_library(lambda: verify_conversion(src, dst, template=template))
    if as_json:
        print_json(result)
    else:
        from .render import render_verification

        out.print(render_verification(result))
    if not result.ok:
        raise typer.Exit(int(ExitCode.VERIFY))


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="A Keras checkpoint (.h5, .hdf5, .weights.h5, .keras)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
    tensors: bool = typer.Option(False, "--tensors", help="List every tensor."),
    template: str | None = typer.Option(
        None, "--template", "-t", help="The nested model to describe, when there are several."
    ),
    reference: Path | None = typer.Option(
        None, "--reference", "-r", help="A layout reference, as for convert."
    ),
) -> None:
    """Explain what a checkpoint is and how to fix it."""
    from .inspect import inspect_checkpoint

    report = run_library(lambda: inspect_checkpoint(path, template=template, reference=reference))
    if as_json:
        from .render import report_json

        print_json(report_json(report))
        return
    from .render import render_report

    out.print(render_report(report, tensors=tensors))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CkptfixError as exc:  # pragma: no cover - commands catch their own
        err.print(f"Error: {exc}")
        sys.exit(int(exc.exit_code))


__all__ = ["app", "main", "ExitCode"]
