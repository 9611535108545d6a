"""Progress and summary of ``ckptfix convert SRC... --out-dir DIR`` (used by the CLI only).

A rich progress bar (files and bytes) when stderr is a terminal, one plain line per finished
file otherwise; a summary table at the end. The library's :func:`ckptfix.convert_batch` knows
nothing of this: it only calls the progress callback.
"""

from __future__ import annotations

import os
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .batch import BatchEntry, BatchProgress, BatchReport
from .errors import cli_wording
from .render import human_bytes, plural

STATUS_STYLE = {"converted": "green", "skipped": "yellow", "failed": "red"}
MAX_LISTED = 50  # summary rows of skipped/failed files; the --report file has them all


def display_path(path: str) -> str:
    """A path relative to the working folder when it is under it, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


#: Short reasons, by error class, for one cell or one progress line (the summary and the
#: --report file give the whole message).
SHORT_REASONS = {
    "NothingToConvertError": "already a single model",
    "NotACheckpointError": "not a Keras checkpoint",
    "CorruptCheckpointError": "damaged or truncated",
    "UnsupportedFormatError": "unsupported format",
    "AmbiguousTemplateError": "several nested models: --template",
    "TemplateNotFoundError": "no such --template",
    "LayoutError": "layout unknowable: --reference",
    "LayoutUnknownError": "layout only inferred (--exact)",
    "ReferenceMismatchError": "reference does not match",
    "UnsupportedConversionError": "the output format cannot hold it",
    "OptionNotSupportedError": "option not supported for this format",
    "OutputError": "output problem",
    "VerificationError": "verification failed",
}


def short_reason(entry: BatchEntry) -> str:
    """A few words for why an input was skipped or failed (or a note on a converted one)."""
    if entry.status == "skipped" and entry.error is None:
        return "output exists and matches; kept"
    if entry.status == "converted":
        return "replaced the existing output" if entry.reason else ""
    if entry.error == "OutputError" and entry.destination:
        return "existing output does not match"
    return SHORT_REASONS.get(entry.error or "", entry.error or "failed")


def full_reason(entry: BatchEntry) -> str:
    """The whole reason, in the command line's words; a skipped single model in short."""
    if entry.status == "skipped":
        return short_reason(entry)
    return cli_wording(entry.reason or "")


def entry_line(entry: BatchEntry) -> str:
    """One plain line for a finished file: status, path, and a few words on why."""
    src = display_path(entry.source)
    if entry.status == "converted":
        dst = display_path(entry.destination or "")
        note = f" ({short_reason(entry)})" if entry.reason else ""
        return f"converted {src} -> {dst}{note}"
    return f"{entry.status} {src} ({short_reason(entry)})"


class BatchProgressView:
    """The progress callback of a batch, as a context manager around the run."""

    def __init__(self, console: Console, *, plain: bool | None = None) -> None:
        self.console = console
        self.plain = not console.is_terminal if plain is None else plain
        self.bar = Progress(
            TextColumn("[bold]converting"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=self.plain,
            transient=True,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> BatchProgressView:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def __call__(self, p: BatchProgress) -> None:
        files = f"{p.files_done}/{p.files_total}"
        if self.plain:
            if p.entry is None:
                self.console.print(
                    f"converting {p.files_total} files ({human_bytes(p.bytes_total)})",
                    markup=False,
                    highlight=False,
                )
            else:
                self.console.print(
                    f"[{files}] {entry_line(p.entry)}", markup=False, highlight=False
                )
            return
        if self.task is None:
            self.task = self.bar.add_task("batch", total=p.bytes_total or 1, files=files)
        self.bar.update(self.task, completed=p.bytes_done, files=files)
        if p.entry is not None and p.entry.status == "failed":
            self.bar.console.print(
                Text(entry_line(p.entry), style=STATUS_STYLE["failed"]),
                highlight=False,
                soft_wrap=True,
            )


def render_batch(report: BatchReport, report_file: str | None = None) -> RenderableType:
    """The summary: counts per status, one line per skipped or failed file (each reason once,
    here: progress lines carry only a few words), and one closing line."""
    totals = Table.grid(padding=(0, 2))
    for _ in range(4):
        totals.add_column()
    for status in ("converted", "skipped", "failed"):
        group = [e for e in report.entries if e.status == status]
        converted = status == "converted"
        totals.add_row(
            Text(status, style=STATUS_STYLE[status]),
            plural(len(group), "file"),
            plural(sum(e.tensors for e in group), "tensor") if converted else "",
            human_bytes(sum(e.bytes for e in group)) if converted else "",
        )
    parts: list[RenderableType] = [Text(f"ckptfix convert: {plural(report.files, 'file')}"), totals]
    others = [e for e in report.entries if e.status != "converted"]
    others.sort(key=lambda e: e.status != "failed")  # failures first, input order kept
    for e in others[:MAX_LISTED]:
        line = Text(f"{e.status:<8} ", style=STATUS_STYLE[e.status])
        line.append(f"{display_path(e.source)}: {full_reason(e)}", style="default")
        parts.append(line)
    if len(others) > MAX_LISTED:
        more = len(others) - MAX_LISTED
        hint = f" (all in {report_file})" if report_file else " (see --report FILE)"
        parts.append(Text(f"… {more} more skipped or failed{hint}"))
    style = "green" if report.ok else "red"
    parts.append(
        Text(
            f"{report.converted} converted, {report.skipped} skipped, {report.failed} failed "
            f"in {report.seconds:.2f} s with {report.jobs} job(s); outputs in "
            f"{display_path(str(report.out_dir))}",
            style=style,
        )
    )
    if report_file:
        parts.append(Text(f"report: {report_file}"))
    return Group(*parts)
