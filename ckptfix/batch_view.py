"""Progress and summary of ``ckptfix convert SRC... --out-dir DIR`` (used by the CLI only).

A rich progress bar (files and bytes) when stderr is a terminal, one plain line per finished
file otherwise; a summary table at the end. The library's :func:`ckptfix.convert_batch` knows
nothing of this: it only calls the progress callback.
"""

from __future__ import annotations

import os
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.markup import escape
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
from .render import human_bytes

STATUS_STYLE = {"converted": "green", "skipped": "yellow", "failed": "red"}
MAX_LISTED = 50  # summary rows of skipped/failed files; the --report file has them all


def display_path(path: str) -> str:
    """A path relative to the working folder when it is under it, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def entry_line(entry: BatchEntry) -> str:
    """One plain line for a finished file."""
    src = display_path(entry.source)
    if entry.status == "converted":
        dst = display_path(entry.destination or "")
        note = f" ({cli_wording(entry.reason)})" if entry.reason else ""
        return f"converted {src} -> {dst}{note}"
    return f"{entry.status} {src}: {cli_wording(entry.reason or '')}"


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
        if p.entry is not None and p.entry.status != "converted":
            style = STATUS_STYLE[p.entry.status]
            self.bar.console.print(
                Text(entry_line(p.entry), style=style), highlight=False, soft_wrap=True
            )


def render_batch(report: BatchReport, report_file: str | None = None) -> RenderableType:
    """The summary: counts per status, the skipped and failed files, and one closing line."""
    totals = Table(title=f"ckptfix convert: {report.files} files", title_justify="left")
    totals.add_column("status")
    totals.add_column("files", justify="right")
    totals.add_column("tensors", justify="right")
    totals.add_column("data", justify="right")
    for status in ("converted", "skipped", "failed"):
        group = [e for e in report.entries if e.status == status]
        totals.add_row(
            Text(status, style=STATUS_STYLE[status]),
            str(len(group)),
            str(sum(e.tensors for e in group)) if status == "converted" else "",
            human_bytes(sum(e.bytes for e in group)) if status == "converted" else "",
        )
    parts: list[RenderableType] = [totals]
    others = [e for e in report.entries if e.status != "converted"]
    others.sort(key=lambda e: e.status != "failed")  # failures first, input order kept
    if others:
        listed = Table(show_header=True, expand=False)
        listed.add_column("status")
        listed.add_column("file", overflow="fold")
        listed.add_column("reason", overflow="fold")
        for e in others[:MAX_LISTED]:
            listed.add_row(
                Text(e.status, style=STATUS_STYLE[e.status]),
                escape(display_path(e.source)),
                escape(cli_wording(e.reason or "")),
            )
        parts.append(listed)
        if len(others) > MAX_LISTED:
            more = len(others) - MAX_LISTED
            hint = f" (all in {report_file})" if report_file else " (see --report FILE)"
            parts.append(Text(f"… {more} more skipped or failed{hint}"))
    style = "green" if report.ok else "red"
    parts.append(
        Text(
            f"{report.converted} converted, {report.skipped} skipped, {report.failed} failed "
            f"in {report.seconds:.2f} s with {report.jobs} job(s); outputs in {report.out_dir}",
            style=style,
        )
    )
    if report_file:
        parts.append(Text(f"report: {report_file}"))
    return Group(*parts)
