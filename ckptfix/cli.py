"""The ``ckptfix`` command: thin typer commands over the library, rendered with rich.

Each command parses its options, calls one library function, renders the returned object
(or prints it as JSON), and turns a :class:`~ckptfix.errors.CkptfixError` into one line on
stderr and a documented exit code. No h5py here, and no TensorFlow at import time.

Options that several commands take are defined once, in "Shared options" below: give a new
command the same option by using the same alias (``template: TemplateOption = None``).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from typer.core import TyperCommand

from . import __version__
from .deadline import DEFAULT_TIMEOUT
from .errors import CkptfixError, CkptfixWarning, ExitCode, cli_wording
from .report import to_json

app = typer.Typer(
    name="ckptfix",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: no type metavars, no cut option names
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")

#: click's usage error (exit 2, "Usage: …" then "Error: …"), from the click that typer runs on
#: (typer 0.29 ships its own copy of click, so ``import click`` would name another class).
UsageError: type[Exception] = typer.BadParameter.__bases__[0]

#: Width used to lay out tables when stdout is not a terminal: wide enough never to wrap.
PLAIN_WIDTH = 10_000


# --- output ---------------------------------------------------------------------------------


def show(renderable: RenderableType, console: Console | None = None) -> None:
    """Print a rendering: laid out for the terminal, or, when the output is not a terminal
    (a pipe, a file), one unwrapped line per line with no padding and no trailing spaces."""
    console = console or out
    if console.is_terminal:
        console.print(renderable, crop=False)
        return
    plain = Console(
        file=io.StringIO(),
        width=PLAIN_WIDTH,
        color_system=None,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )
    plain.print(renderable, crop=False)
    text = plain.file.getvalue()  # type: ignore[attr-defined]
    console.file.write("".join(line.rstrip() + "\n" for line in text.splitlines()))
    console.file.flush()


def say(text: str, console: Console | None = None) -> None:
    """Print one plain line (never wrapped, no markup)."""
    (console or out).print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)


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
        say("Interrupted; nothing was written.", err)
        raise typer.Exit(130) from None


def emit(
    result: Any, render: Callable[[], RenderableType], as_json: bool, jsonl: bool = False
) -> None:
    """Print a result: JSON lines, JSON (a list for several results), or its rendering."""
    many = isinstance(result, list | tuple)
    if jsonl:
        print_jsonl(result if many else [result])
    elif as_json:
        print_json(list(result) if many else result)
    else:
        show(render())


def print_json(obj: Any) -> None:
    """Print one JSON document on stdout (plain, no rich markup), in the command line's words."""
    sys.stdout.write(json.dumps(cli_json(obj), indent=2, sort_keys=False) + "\n")


def print_jsonl(objs: Iterable[Any]) -> None:
    """Print JSON lines: one compact object per line."""
    for obj in objs:
        sys.stdout.write(json.dumps(cli_json(obj), separators=(",", ":")) + "\n")


_PATH_KEYS = frozenset({"path", "source", "destination", "out_dir", "convert_command"})


def cli_json(obj: Any) -> Any:
    """The JSON form of a result, with library wording (``force=True``) turned into flags."""
    return _cli_words(to_json(obj))


def _cli_words(data: Any) -> Any:
    if isinstance(data, str):
        return cli_wording(data)
    if isinstance(data, dict):
        return {k: v if k in _PATH_KEYS else _cli_words(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_cli_words(v) for v in data]
    return data


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Warnings as one clean line on stderr: no file path, no source line."""
    text = cli_wording(str(message).strip().splitlines()[0] if str(message).strip() else "")
    label = "" if issubclass(category, CkptfixWarning) else f"{category.__name__}: "
    say(f"Warning: {label}{text}", err)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up log off the terminal (unless the user set the level)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --- help -----------------------------------------------------------------------------------


def usage(*forms: str) -> type[TyperCommand]:
    """A command class whose help shows ``forms`` as its usage lines (git style) and lists
    arguments without typer's type names."""

    class Command(TyperCommand):
        def format_usage(self, ctx: Any, formatter: Any) -> None:
            path = ctx.command_path
            for i, form in enumerate(forms):
                prefix = "Usage: " if i == 0 else " " * len("Usage: ")
                formatter.write_usage(path, f"[OPTIONS] {form}", prefix=prefix)

        def format_options(self, ctx: Any, formatter: Any) -> None:
            args, opts = [], []
            for param in self.get_params(ctx):
                if param.param_type_name == "argument":
                    name = param.metavar or (param.name or "").upper()
                    args.append((name, getattr(param, "help", None) or ""))
                elif param.param_type_name == "option":
                    record = param.get_help_record(ctx)
                    if record is not None:
                        opts.append(record)
            if args:
                with formatter.section("Arguments"):
                    formatter.write_dl(args)
            if opts:
                with formatter.section("Options"):
                    formatter.write_dl(opts)

    return Command


# --- shared options -------------------------------------------------------------------------
# One name, one help text, everywhere (sqlite-utils' ``output_options``): a command takes an
# option by declaring a parameter with one of these types.

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout instead (documented in the README).")
]
TemplateOption = Annotated[
    str | None,
    typer.Option(
        "--template",
        "-t",
        metavar="NAME",
        help="The nested model to use, by its layer name, when several hold weights.",
    ),
]
ReferenceOption = Annotated[
    Path | None,
    typer.Option(
        "--reference",
        "-r",
        metavar="FILE",
        help="Exact layout for Keras 2 weights-only files: the template's JSON config "
        "(model.to_json()) or a .h5 saved from the template.",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="MODULE:FACTORY",
        help="Exact layout from your own code: the function that builds the template "
        "(mymodels:build or path/to/models.py:build), tf_keras or Keras 3; needs "
        "pip install 'ckptfix[tf]'.",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Replace existing outputs.")]


def build_template(spec: str | None) -> Any:
    """The live model of ``--model`` (None without it), built by the user's factory."""
    if spec is None:
        return None
    quiet_tensorflow()
    from .train.factory import build_model

    return run_library(lambda: build_model(spec))


# --- the root -------------------------------------------------------------------------------


def _version(value: bool) -> None:
    if value:
        say(f"ckptfix {__version__}")
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
    """Repair and prevent broken Keras checkpoints from data-parallel training.

    \b
    Examples:
      ckptfix inspect parallel.h5
      ckptfix convert parallel.h5 single.h5
      ckptfix convert runs/ --out-dir fixed/
    """
    warnings.showwarning = _show_warning
    # What Python itself hides outside __main__: other libraries' deprecations are not news
    # for the person running the command.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


# --- inspect --------------------------------------------------------------------------------

#: --timeout, the same for every command that reads files (the library's ``timeout=``).
TIMEOUT_OPTION = typer.Option(
    DEFAULT_TIMEOUT,
    "--timeout",
    min=0,
    metavar="SECONDS",
    help="Refuse a file (exit 5; batch: mark it failed and go on) when reading it makes no "
    "progress for this long, as HDF5 can loop forever on a crafted file. 0: no deadline.",
)


@app.command(cls=usage("FILE", "PATH..."))
def inspect(
    paths: list[str] = typer.Argument(
        ...,
        metavar="PATH...",
        help="Checkpoints (.h5, .hdf5, .weights.h5, .keras; a TensorFlow checkpoint by its "
        "prefix, .index, a .data-* part or its folder; a SavedModel folder) or folders, "
        "searched recursively. One checkpoint: the full report. Several, or a folder: one row "
        "per checkpoint.",
    ),
    as_json: JsonOption = False,
    jsonl: bool = typer.Option(
        False, "--jsonl", help="Print JSON lines: one object per file, one line each."
    ),
    tensors: bool = typer.Option(False, "--tensors", help="List every tensor (one file)."),
    template: TemplateOption = None,
    reference: ReferenceOption = None,
    model: ModelOption = None,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Explain what a checkpoint is and how to fix it.

    Reads metadata only, never tensor data, and never imports TensorFlow (unless --model).
    Several paths or a folder: one summary row per file, and exit 1 when any file could not
    be described (each failure says why); --json then prints a list.

    \b
    Examples:
      ckptfix inspect parallel.h5
      ckptfix inspect runs/*.h5
      ckptfix inspect runs/ --jsonl | jq -r 'select(.wrapped) | .convert_command'
    """
    from .survey import describes_one_file, inspect_checkpoints

    if tensors and not describes_one_file(paths):
        raise UsageError("--tensors lists the tensors of one file; give one FILE")
    live = build_template(model)
    if describes_one_file(paths):
        from .report import inspect_checkpoint

        report = run_library(
            lambda: inspect_checkpoint(
                paths[0], template=template, reference=reference, model=live, timeout=timeout
            )
        )
        if model is not None:
            report = _with_model_flag(report, model)
        from .render import render_report

        emit(report, lambda: render_report(report, tensors=tensors), as_json, jsonl)
        return
    entries = run_library(
        lambda: inspect_checkpoints(
            paths, template=template, reference=reference, model=live, timeout=timeout
        )
    )
    if model is not None:
        entries = tuple(_with_model_flag(e, model) for e in entries)
    from .render import render_inspect_table

    emit(entries, lambda: render_inspect_table(entries), as_json, jsonl)
    if not all(e.ok for e in entries):
        raise typer.Exit(int(ExitCode.FAILED))


def _with_model_flag(obj: Any, spec: str) -> Any:
    """A report (or survey entry) whose fix command builds the layout with ``--model`` too."""
    import dataclasses

    from .report import CheckpointReport

    if not isinstance(obj, CheckpointReport):
        report = getattr(obj, "report", None)
        if report is None:
            return obj
        return dataclasses.replace(obj, report=_with_model_flag(report, spec))
    if obj.convert_command is None or "--reference" in obj.convert_command:
        return obj
    command = f"{obj.convert_command} --model {shlex.quote(spec)}"
    return dataclasses.replace(obj, convert_command=command)


# --- convert --------------------------------------------------------------------------------


@app.command(cls=usage("SRC [DST]", "SRC... --out-dir DIR"))
def convert(
    paths: list[str] = typer.Argument(
        ...,
        metavar="SRC [DST]",
        help="The parallel checkpoint SRC and where to write it. DST's name picks the "
        "format (.h5: Keras 2; .weights.h5, .keras: Keras 3). No DST: SRC's name with "
        ".single (x.single.h5) beside it; an existing folder: its own name inside it. With "
        "--out-dir: files and folders, searched recursively (.h5, .hdf5, .weights.h5, .keras, "
        "TensorFlow checkpoints, SavedModel folders). Inputs are never modified.",
    ),
    reference: ReferenceOption = None,
    template: TemplateOption = None,
    model: ModelOption = None,
    exact: bool = typer.Option(
        False,
        "--exact",
        help="Refuse a layout only inferred from weight names (Keras 2 weights-only files "
        "without --reference or --model; inferred by default): for scripts that accept exact "
        "conversions only.",
    ),
    infer: bool = typer.Option(
        False,
        "--infer",
        hidden=True,
        help="Deprecated: inference is the default (checked, and reported).",
    ),
    force: ForceOption = False,
    as_json: JsonOption = False,
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        "-o",
        metavar="DIR",
        help="Batch: write outputs here, mirroring the input tree. Existing outputs are "
        "checked and kept unless --force.",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        metavar="N",
        help="Batch: files converted at once (default: the CPUs, at most one per file).",
    ),
    report_file: Path | None = typer.Option(
        None,
        "--report",
        metavar="FILE",
        help="Batch: write a JSON report (one entry per input) here.",
    ),
    timeout: float = TIMEOUT_OPTION,
    to: str | None = typer.Option(
        None,
        "--to",
        help="Batch: the target format. keras3 writes each Keras 2 input as a Keras 3 file "
        "(.keras for a full model, .weights.h5 for weights), single models included.",
    ),
) -> None:
    """Rewrite a parallel checkpoint as the template model's own.

    Keras 2 weights-only files: the layout is inferred from weight names by default (said so).
    --reference or --model makes it exact; --exact refuses an inferred layout instead.

    The output is written beside DST, verified tensor by tensor against SRC, then renamed
    into place. With --out-dir: convert every checkpoint found, skip single models, report
    failures and go on (exit 1 when any input failed).

    \b
    Examples:
      ckptfix convert parallel.h5 single.h5
      ckptfix convert parallel_weights.h5 --model mymodels.py:build
      ckptfix convert runs/ --out-dir fixed/ --report migration.json
    """
    if out_dir is None:
        if jobs is not None or report_file is not None or to is not None:
            raise UsageError(
                "--jobs, --report and --to need --out-dir (the batch form); for one file, "
                "name DST like x.keras or x.weights.h5"
            )
        if len(paths) > 2:
            raise UsageError(
                f"expected SRC [DST], or SRC... --out-dir DIR; found {len(paths)} paths"
            )
        src, dst = paths[0], (paths[1] if len(paths) == 2 else None)
        from .survey import is_checkpoint_folder

        if Path(src).is_dir() and not is_checkpoint_folder(Path(src)):
            raise UsageError(
                f"{src} is a folder; convert folders with: ckptfix convert {shlex.quote(src)} "
                "--out-dir DIR"
            )
        from .convert import convert_checkpoint

        live = build_template(model)
        result = run_library(
            lambda: convert_checkpoint(
                src,
                dst,
                template=template,
                reference=reference,
                model=live,
                exact=exact,
                force=force,
                timeout=timeout,
            )
        )
        from .render import render_conversion

        emit(result, lambda: render_conversion(result), as_json)
        return

    from .batch import TARGETS, convert_batch, write_batch_report
    from .batch_view import BatchProgressView, render_batch

    if to is not None and to not in TARGETS:
        raise UsageError(f"expected --to {' or '.join(TARGETS)}; found --to {to}")

    live = build_template(model)
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
                model=live,
                progress=view,
                timeout=timeout,
                to=to,
            )
        if report_file is not None:
            write_batch_report(batch, report_file)
    except CkptfixError as exc:
        fail(exc)
    except KeyboardInterrupt:
        say("Interrupted; finished outputs are kept: rerun the same command to go on.", err)
        raise typer.Exit(130) from None
    report_name = None if report_file is None else str(report_file)
    emit(batch, lambda: render_batch(batch, report_name), as_json)
    if not batch.ok:
        raise typer.Exit(int(ExitCode.FAILED))


# --- verify ---------------------------------------------------------------------------------


@app.command(cls=usage("SRC DST"))
def verify(
    src: Path = typer.Argument(..., metavar="SRC", help="The parallel checkpoint."),
    dst: Path = typer.Argument(..., metavar="DST", help="The converted single-model checkpoint."),
    template: TemplateOption = None,
    as_json: JsonOption = False,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Compare the template inside SRC with DST, tensor by tensor.

    Every stored byte of both files is read (the optimizer's tensors too, counted apart).
    Exit 0 when they match, 7 with the list of mismatches, 5 when DST is missing or
    unreadable.

    \b
    Examples:
      ckptfix verify parallel.h5 single.h5
      ckptfix verify parallel.h5 single.h5 --json | jq .ok
    """
    from .convert import verify_conversion
    from .render import render_verification

    result = run_library(lambda: verify_conversion(src, dst, template=template, timeout=timeout))
    emit(result, lambda: render_verification(result), as_json)
    if not result.ok:
        raise typer.Exit(int(ExitCode.VERIFY))


# --- train ----------------------------------------------------------------------------------


@app.command(
    "train", cls=usage("--model MODULE:FACTORY --data FILE --epochs N --batch-size N --out DIR")
)
def train_command(
    ctx: typer.Context,
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        metavar="MODULE:FACTORY",
        help="The function that builds (and may compile) the model: mymodels:build or "
        "path/to/models.py:build.",
    ),
    data: str = typer.Option(
        ..., "--data", metavar="FILE", help=".npz with x, y (optional val_x, val_y)."
    ),
    epochs: int = typer.Option(
        ..., "--epochs", min=1, metavar="N", help="Total epochs (a resumed run counts its own)."
    ),
    batch_size: int = typer.Option(
        ..., "--batch-size", min=1, metavar="N", help="Global batch size."
    ),
    out_dir: str = typer.Option(..., "--out", metavar="DIR", help="Checkpoint folder."),
    devices: int | None = typer.Option(
        None,
        "--devices",
        min=1,
        metavar="N",
        help="Replicas (GPUs, else logical CPUs). Default: all GPUs.",
    ),
    monitor: str = typer.Option(
        "val_loss", "--monitor", metavar="METRIC", help="Metric for --save-best-only."
    ),
    save_best_only: bool = typer.Option(
        False, "--save-best-only", help="Save only when the monitored metric improves."
    ),
    weights_only: bool = typer.Option(False, "--weights-only", help="Write .weights.h5 files."),
    loss: str | None = typer.Option(
        None, "--loss", metavar="NAME", help="Loss if the factory does not compile the model."
    ),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue the run in --out (default)."
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Replace another run's checkpoints found in --out."
    ),
    as_json: JsonOption = False,
) -> None:
    """Train data-parallel, saving checkpoints of the single model.

    Rerun the same command to continue an interrupted run (Ctrl-C keeps every finished
    epoch); a run that already reached --epochs trains nothing. Needs pip install
    'ckptfix[tf]'.

    \b
    Examples:
      ckptfix train --model mymodels.py:build --data data.npz --epochs 20 \\
          --batch-size 256 --out ckpt --save-best-only
      ckptfix train --model mymodels:build --data data.npz --epochs 5 --batch-size 64 \\
          --devices 2 --out ckpt --no-resume --force
    """
    quiet_tensorflow()
    import ckptfix.train as trainer  # TensorFlow itself is imported by train(), lazily

    from .render import render_epoch, render_interrupted, render_training

    factory = run_library(lambda: trainer.load_factory(model))
    arrays = run_library(lambda: trainer.load_arrays(data))
    val = (arrays["val_x"], arrays["val_y"]) if "val_x" in arrays else None

    def on_epoch(report: trainer.EpochReport) -> None:
        if not as_json:
            say(render_epoch(report), err)

    try:
        result = trainer.train(
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
            force=force,
            loss=loss,
            on_epoch_end=on_epoch,
        )
    except CkptfixError as exc:
        fail(exc)
    except KeyboardInterrupt:
        resume_command = command_line(ctx, drop=("resume", "force", "as_json"))
        state = trainer.training_state(out_dir)
        kept = trainer.checkpoint_files(out_dir)
        for line in render_interrupted(epochs, out_dir, state, kept, resume_command):
            say(line, err)
        raise typer.Exit(130) from None
    if as_json:
        print_json(result.summary())
        return
    for line in render_training(result):
        say(line)


def command_line(ctx: typer.Context, drop: Sequence[str] = ()) -> str:
    """The command being run, rebuilt from its parsed options (defaults left out), quoted for
    a POSIX shell; the parameters in ``drop`` are left out too."""
    parts = ["ckptfix", ctx.info_name or ""]
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if name in drop or value is None or value == param.default or not param.opts:
            continue
        flag = max(param.opts, key=len)  # the long form
        if getattr(param, "is_flag", False):
            negative = list(getattr(param, "secondary_opts", ()))
            parts.append(flag if value else max(negative or [flag], key=len))
            continue
        parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="ckptfix")
    except CkptfixError as exc:  # pragma: no cover - commands catch their own
        err.print(f"Error: {exc}")
        sys.exit(int(exc.exit_code))


__all__ = ["app", "main", "ExitCode"]
