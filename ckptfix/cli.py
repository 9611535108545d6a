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
from .errors import CkptfixError, ExitCode, cli_wording
from .report import to_json

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
    err.print(
        f"[bold red]Error:[/] {escape(cli_wording(str(exc)))}",
        markup=True,
        highlight=False,
        emoji=False,
    )
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
    """Print one JSON object on stdout (plain, no rich markup), in the command line's words."""
    sys.stdout.write(json.dumps(_cli_words(to_json(obj)), indent=2, sort_keys=False) + "\n")


_PATH_KEYS = frozenset({"path", "source", "destination", "out_dir", "convert_command"})


def _cli_words(data: Any) -> Any:
    if isinstance(data, str):
        return cli_wording(data)
    if isinstance(data, dict):
        return {k: v if k in _PATH_KEYS else _cli_words(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_cli_words(v) for v in data]
    return data


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
    exact: bool = typer.Option(
        False,
        "--exact",
        help="Refuse a layout only inferred from weight names (Keras 2 weights-only files "
        "without --reference): for scripts that accept exact conversions only.",
    ),
    infer: bool = typer.Option(
        False,
        "--infer",
        hidden=True,
        help="Deprecated: inference is the default (checked, and reported).",
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
    to: str | None = typer.Option(
        None,
        "--to",
        help="Batch: the target format. keras3 writes each Keras 2 input as a Keras 3 file "
        "(.keras for a full model, .weights.h5 for weights), single models included.",
    ),
) -> None:
    """Rewrite a parallel checkpoint as the single template model's checkpoint.

    With --out-dir: convert every checkpoint found, skip single models, report failures
    and go on (exit 1 when any input failed).
    """
    if out_dir is None:
        if jobs is not None or report_file is not None or to is not None:
            raise typer.BadParameter(
                "--jobs, --report and --to need --out-dir (the batch form); for one file, "
                "name DST like x.keras or x.weights.h5"
            )
        if len(paths) != 2:
            raise typer.BadParameter(
                f"expected SRC DST, or SRC... --out-dir DIR; found {len(paths)} path(s)",
                param_hint="SRC DST",
            )
        src, dst = paths
        if src.is_dir() and not (src / "saved_model.pb").exists():  # SavedModel: say so below
            raise typer.BadParameter(
                f"{src} is a folder; convert folders with: ckptfix convert {src} --out-dir DIR",
                param_hint="SRC",
            )
        from .convert import convert_checkpoint

        result = run_library(
            lambda: convert_checkpoint(
                src, dst, template=template, reference=reference, exact=exact, force=force
            )
        )
        if as_json:
            print_json(result)
            return
        from .render import render_conversion

        out.print(render_conversion(result))
        return

    from .batch import TARGETS, convert_batch, write_batch_report
    from .batch_view import BatchProgressView, render_batch

    if to is not None and to not in TARGETS:
        raise typer.BadParameter(f"expected one of: {', '.join(TARGETS)}", param_hint="--to")

    try:
        with BatchProgressView(err) as view:
            batch = convert_batch(
                paths,
                out_dir,
                jobs=jobs,
                force=force,
                reference=reference,
                template=template,
                exact=exact,
                progress=view,
                to=to,
            )
        if report_file is not None:
            write_batch_report(batch, report_file)
    except CkptfixError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err.print("Interrupted; finished outputs are kept: rerun the same command to go on.")
        raise typer.Exit(130) from None
    if as_json:
        print_json(batch)
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
    from .report import inspect_checkpoint

    report = run_library(lambda: inspect_checkpoint(path, template=template, reference=reference))
    if as_json:
        print_json(report)
        return
    from .render import render_report

    out.print(render_report(report, tensors=tensors), crop=False)  # the fix line stays whole


# --- train ---------------------------------------------------------------------------------


@app.command("train")
def train_command(
    model: str = typer.Option(
        ..., "--model", help="MODULE:FACTORY or path/file.py:FACTORY returning the model."
    ),
    data: str = typer.Option(..., "--data", help=".npz with x, y (optional val_x, val_y)."),
    epochs: int = typer.Option(..., "--epochs", min=1, help="Total epochs (resume counts)."),
    batch_size: int = typer.Option(..., "--batch-size", min=1, help="Global batch size."),
    out_dir: str = typer.Option(..., "--out", help="Checkpoint folder."),
    devices: int | None = typer.Option(
        None, "--devices", min=1, help="Replicas (GPUs, else logical CPUs). Default: all GPUs."
    ),
    monitor: str = typer.Option("val_loss", "--monitor", help="Metric for --save-best-only."),
    save_best_only: bool = typer.Option(False, "--save-best-only", help="Save improvements."),
    weights_only: bool = typer.Option(False, "--weights-only", help="Write .weights.h5 files."),
    loss: str | None = typer.Option(None, "--loss", help="Loss if the factory does not compile."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a model data-parallel; every checkpoint loads into the single model."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    import ckptfix.train as trainer  # imports TensorFlow lazily, only for this command

    factory = run_library(lambda: trainer.load_factory(model))
    arrays = run_library(lambda: trainer.load_arrays(data))
    val = (arrays["val_x"], arrays["val_y"]) if "val_x" in arrays else None
    progress = Progress(
        TextColumn("epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[logs]}"),
        console=err,
        disable=as_json,
    )

    def on_epoch(report: trainer.EpochReport) -> None:
        logs = "  ".join(f"{k}={v:.4g}" for k, v in report.logs.items())
        saved = f"  -> {report.checkpoint}" if report.checkpoint else ""
        progress.update(task, completed=report.epoch, logs=logs + saved)

    with progress:
        task = progress.add_task("train", total=epochs, logs="")
        result = run_library(
            lambda: trainer.train(
                factory,
                arrays["x"],
                arrays["y"],
                epochs=epochs,
                batch_size=batch_size,
                checkpoint_dir=out_dir,
                devices=devices,
                validation_data=val,
                monitor=monitor,
                save_best_only=save_best_only,
                save_weights_only=weights_only,
                resume=resume,
                loss=loss,
                on_epoch_end=on_epoch,
            )
        )
    if as_json:
        print_json(result.summary())
        return
    out.print(
        f"Trained on {result.replicas} replica(s) ({result.strategy}, {result.keras}); "
        f"epochs {result.initial_epoch + 1}-{result.epochs}"
        + (f", resumed from {result.resumed_from}" if result.resumed_from else ""),
        markup=False,
        soft_wrap=True,
    )
    for note in result.notes:
        out.print(f"Note: {note}", markup=False, soft_wrap=True)
    if not result.checkpoints:
        out.print("No checkpoint written.")
    for path in result.checkpoints:
        out.print(f"  {path}", markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CkptfixError as exc:  # pragma: no cover - commands catch their own
        err.print(f"Error: {exc}")
        sys.exit(int(exc.exit_code))


__all__ = ["app", "main", "ExitCode"]
