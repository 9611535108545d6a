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
from rich.markup import escape

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
    err.print(f"[bold red]Error:[/] {escape(str(exc))}", markup=True, highlight=False, emoji=False)
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
    paths: list[Path] = typer.Argument(
        ...,
        metavar="SRC... [DST]",
        help="One parallel checkpoint SRC and its DST; or, with --out-dir, checkpoint files "
        "and folders (searched recursively for .h5, .hdf5, .weights.h5, .keras). "
        "Inputs are never modified.",
    ),
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
    infer: bool = typer.Option(
        False,
        "--infer",
        help="Weights-only files without --reference: rebuild the layout from weight names "
        "(checked; models nested inside the template cannot be seen).",
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Replace an existing DST (batch: existing outputs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        "-o",
        help="Batch: write outputs here, mirroring the input tree. Existing outputs are "
        "checked and kept unless --force.",
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, help="Batch: worker processes (default: number of CPUs)."
    ),
    report_file: Path | None = typer.Option(
        None, "--report", help="Batch: write a JSON report (one entry per input) here."
    ),
) -> None:
    """Rewrite a parallel checkpoint as the single template model's checkpoint.

    With --out-dir: convert every checkpoint found, skip single models, report failures
    and go on (exit 1 when any input failed).
    """
    if out_dir is None:
        if jobs is not None or report_file is not None:
            raise typer.BadParameter("--jobs and --report need --out-dir (the batch form)")
        if len(paths) != 2:
            raise typer.BadParameter(
                f"expected SRC DST, or SRC... --out-dir DIR; found {len(paths)} path(s)",
                param_hint="SRC DST",
            )
        src, dst = paths
        if src.is_dir():
            raise typer.BadParameter(
                f"{src} is a folder; convert folders with: ckptfix convert {src} --out-dir DIR",
                param_hint="SRC",
            )
        from .convert import convert_checkpoint

        result = run_library(
            lambda: convert_checkpoint(
                src, dst, template=template, reference=reference, infer=infer, force=force
            )
        )
        if as_json:
            print_json(result)
            return
        from .render import render_conversion

        out.print(render_conversion(result))
        return

    from .batch import batch_report_json, convert_batch, write_batch_report
    from .batch_view import BatchProgressView, render_batch

    try:
        with BatchProgressView(err) as view:
            batch = convert_batch(
                paths,
                out_dir,
                jobs=jobs,
                force=force,
                reference=reference,
                template=template,
                infer=infer,
                progress=view,
            )
        if report_file is not None:
            write_batch_report(batch, report_file)
    except CkptfixError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print("Interrupted; finished outputs are kept: rerun the same command to go on.")
        raise typer.Exit(130) from None
    if as_json:
        print_json(batch_report_json(batch))
    else:
        out.print(render_batch(batch, None if report_file is None else str(report_file)))
    if not batch.ok:
        raise typer.Exit(int(ExitCode.FAILED))


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

    out.print(render_report(report, tensors=tensors), crop=False)  # the fix line stays whole


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CkptfixError as exc:  # pragma: no cover - commands catch their own
        err.print(f"Error: {exc}")
        sys.exit(int(exc.exit_code))


__all__ = ["app", "main", "ExitCode"]
