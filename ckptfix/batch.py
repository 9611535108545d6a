"""Batch migration: convert every checkpoint under some files and folders in one call.

:func:`convert_batch` finds the checkpoints (``.h5``, ``.hdf5``, ``.weights.h5``, ``.keras``,
TensorFlow checkpoints by their ``.index``, SavedModel folders;
searched recursively in folders), maps each to the same relative path under an output folder,
and runs :func:`ckptfix.convert_checkpoint` on each in worker processes (:mod:`ckptfix.deadline`:
forked from this process where that is safe, so a worker costs milliseconds, not an interpreter
start), each file under the deadline, or on any :class:`concurrent.futures.Executor` given.
Every input gets one :class:`BatchEntry`: *converted*, *skipped* (already a single model, or
its output already exists and matches it) or *failed* (with the one-line reason, a file that
hit the deadline included); the batch always goes on. Entries come back in input order
whatever order the workers finish in, and the files written are byte-identical to a serial
run's.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .deadline import DEFAULT_TIMEOUT, Task, resolve_timeout, run_isolated, run_tasks
from .errors import (
    CkptfixError,
    DeadlineExceededError,
    NotACheckpointError,
    NothingToConvertError,
    OutputError,
)
from .layout import ModelShapes, as_shapes
from .output import TEMP_MARK, discard_temps_of, same_file

if TYPE_CHECKING:
    from concurrent.futures import Executor

#: File name endings searched for in folders (``.weights.h5`` ends with ``.h5``).
CHECKPOINT_SUFFIXES = (".h5", ".hdf5", ".keras")

BatchStatus = Literal["converted", "skipped", "failed"]


@dataclass(frozen=True)
class BatchItem:
    """One planned conversion: an input file and where its output goes."""

    source: str
    destination: str
    file_bytes: int  # size of the input file on disk


@dataclass(frozen=True)
class BatchEntry:
    """What happened to one input of a batch.

    ``destination`` is the output file when there is one (converted, or an existing output
    kept); ``reason`` says why an input was skipped or failed (the library's one-line message),
    or notes a replaced output; ``exit_code`` is what ``ckptfix convert`` alone would have
    returned for this file; ``error`` is the error's class name.
    """

    source: str
    status: BatchStatus
    reason: str | None
    destination: str | None
    template: str | None = None
    replicas: int | None = None
    tensors: int = 0
    bytes: int = 0  # tensor bytes written (or checked, for a kept output)
    file_bytes: int = 0
    seconds: float = 0.0
    format: str | None = None
    layout: str | None = None
    error: str | None = None
    exit_code: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchReport:
    """The outcome of :func:`convert_batch`: one entry per input, in input order, and totals."""

    out_dir: str
    jobs: int
    entries: tuple[BatchEntry, ...]
    files: int
    converted: int
    skipped: int
    failed: int
    tensors: int
    bytes: int
    file_bytes: int
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no input failed (skipped inputs are fine)."""
        return self.failed == 0

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form: ``ok``, ``totals`` and one object per input."""
        from .report import to_json

        return {
            "out_dir": self.out_dir,
            "jobs": self.jobs,
            "ok": self.ok,
            "totals": {
                "files": self.files,
                "converted": self.converted,
                "skipped": self.skipped,
                "failed": self.failed,
                "tensors": self.tensors,
                "bytes": self.bytes,
                "file_bytes": self.file_bytes,
                "seconds": self.seconds,
            },
            "entries": to_json(self.entries),
        }


@dataclass(frozen=True)
class BatchProgress:
    """Passed to the progress callback: once before any work (``entry`` None), then per file."""

    entry: BatchEntry | None
    files_done: int
    files_total: int
    bytes_done: int  # input file bytes of the finished files
    bytes_total: int


BatchProgressCallback = Callable[[BatchProgress], None]


@dataclass(frozen=True)
class BatchOptions:
    """The options every file of a batch is converted with (plain data: it crosses processes)."""

    template: str | None = None
    reference: str | None = None
    exact: bool = False
    force: bool = False
    timeout: float | None = DEFAULT_TIMEOUT  # seconds without progress; None: no deadline
    model: ModelShapes | None = None  # a live model as plain data, for the workers


#: ``to=`` values: the target format family of a batch (None: each input keeps its format).
TARGETS = ("keras3",)


def target_name(path: Path, to: str | None) -> str:
    """The output file name of ``path`` for the target ``to``.

    ``to="keras3"``: a Keras 2 full model becomes ``x.keras``, Keras 2 weights ``x.weights.h5``;
    Keras 3 files (and files that are not Keras 2) keep their name.
    """
    if to is None:
        return path.name
    from .formats import KERAS2_MODEL, KERAS2_WEIGHTS, sniff

    try:
        _, fid = sniff(path)
    except CkptfixError:
        return path.name  # converting it fails later, with the reason
    stem = path.name
    for suffix in (".hdf5", ".h5"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if fid == KERAS2_MODEL:
        return stem + ".keras"
    if fid == KERAS2_WEIGHTS:
        return stem + ".weights.h5"
    return path.name


def find_checkpoints(
    sources: Sequence[str | Path], out_dir: str | Path, to: str | None = None
) -> tuple[BatchItem, ...]:
    """List the checkpoints under ``sources`` and the output path of each under ``out_dir``.

    Folders are searched recursively for :data:`CHECKPOINT_SUFFIXES`, TensorFlow checkpoints
    (each ``prefix.index`` gives the input ``prefix``, converted to a checkpoint ``prefix`` of
    the template) and SavedModel folders (each converted to ``folder.h5``, a Keras 2 full model);
    symlinked folders are not followed; ckptfix temporaries and anything inside ``out_dir`` are
    left out. Files, prefixes and SavedModel folders named directly are taken as they are.
    Outputs keep each input's path relative to the deepest folder that holds every source, so
    the input tree is mirrored and two inputs never share an output. The order is sorted by
    that relative path; duplicates are dropped.

    Raises:
        NotACheckpointError: a source does not exist, or no checkpoint was found at all.
        OutputError: an output would be its own input (``out_dir`` is a source folder).
    """
    out = Path(out_dir).absolute()
    found: dict[str, tuple[Path, bool]] = {}  # realpath -> (absolute path, under a folder)
    roots: list[Path] = []
    for s in sources:
        p = Path(s).absolute()
        if _is_tf_source(p):  # a SavedModel folder or a TF checkpoint prefix: one input
            roots.append(p.parent)
            found.setdefault(os.path.realpath(p), (p, False))
        elif p.is_dir():
            if same_file(p, out):
                raise OutputError(
                    f"expected out_dir= apart from the inputs; found {s} is both a source "
                    "folder and the output folder; choose another output folder"
                )
            roots.append(p)
            for f in _walk(p, out):
                found.setdefault(os.path.realpath(f), (f, True))
        elif p.exists():
            roots.append(p.parent)
            found.setdefault(os.path.realpath(p), (p, False))
        else:
            raise NotACheckpointError(
                f"expected a checkpoint file or a folder of them; found nothing at {s}; "
                "check the path"
            )
    if not found:
        raise NotACheckpointError(
            "expected .h5, .hdf5, .weights.h5 or .keras files; found none in "
            f"{', '.join(str(s) for s in sources)}; check the paths"
        )
    base = Path(os.path.commonpath([str(r) for r in roots]))
    items = []
    for path, _ in found.values():
        rel = path.relative_to(base)
        dst = out / rel.parent / target_name(path, to)
        if same_file(path, dst):
            raise OutputError(
                f"expected out_dir= apart from the inputs; found {dst} would overwrite its "
                "own input; choose another output folder"
            )
        if (path / "saved_model.pb").is_file():  # a SavedModel becomes a Keras 2 full model
            dst = dst.with_name(dst.name + ".h5")
        items.append(BatchItem(str(path), str(dst), _size(path)))
    items.sort(key=lambda it: Path(it.source).relative_to(base).parts)
    return tuple(items)


def convert_batch(
    sources: Sequence[str | Path] | str | Path,
    out_dir: str | Path,
    *,
    jobs: int | None = None,
    force: bool = False,
    reference: str | Path | None = None,
    template: str | None = None,
    exact: bool = False,
    infer: bool | None = None,
    model: Any = None,
    progress: BatchProgressCallback | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    executor: Executor | None = None,
    to: str | None = None,
) -> BatchReport:
    """Convert every checkpoint under ``sources`` into the same tree under ``out_dir``.

    Args:
        sources: checkpoint files and folders (searched recursively, see
            :func:`find_checkpoints`). Never modified.
        out_dir: the output folder (created when missing); each output keeps its input's
            relative path and file name.
        jobs: conversions at once, each in a worker process (default: :func:`auto_jobs`, the
            CPUs this process may use, at most one per file). Workers are forked from this
            process (Linux) or started with ``python -c`` (macOS, Windows): they never
            re-import your ``__main__``. ``jobs=1`` with ``timeout=None`` runs in this process.
        force: replace outputs that already exist. Without it an existing output is kept: it is
            verified against its input and the entry is *skipped* (or *failed* if it differs).
        reference: a layout reference for Keras 2 weights-only files, used for every input.
        template: the nested model to lift out, for every input.
        exact: refuse layouts only inferred from weight names (Keras 2 weights-only inputs
            without a reference; see :func:`ckptfix.convert_checkpoint`). By default they are
            inferred, checked, and reported with ``layout="inferred"``.
        infer: deprecated: inference is the default; ``infer=False`` means ``exact=True``.
        model: a live Keras model built like the template, for every input's exact layout
            (workers get its :class:`~ckptfix.layout.ModelShapes`).
        progress: called with a :class:`BatchProgress` before the work and after each file.
        timeout: seconds a file may go without progress before it is refused and marked
            *failed* (``DeadlineExceededError``, exit code 5) while the batch goes on; copying
            and comparing tensor bytes is progress. None or 0: no deadline.
        executor: run the conversions on this :class:`concurrent.futures.Executor` instead
            of local workers (a Dask ``Client.get_executor()``, a process pool of your own):
            each file is one ``executor.submit(run_item, item, options)`` of picklable data,
            answered by a picklable :class:`BatchEntry`; ``jobs`` is then not used (the report
            says ``jobs=0``). Where the executor's workers can fork, each file still runs
            under the deadline in a child of the worker.
        to: the target format: ``"keras3"`` writes each Keras 2 input as a Keras 3 file
            (``.keras`` for a full model, ``.weights.h5`` for weights), single models included
            (a migration); None keeps each input's format.

    Returns:
        A :class:`BatchReport`: one :class:`BatchEntry` per input, in input order, and totals.
        ``report.ok`` is False when any input failed.

    Raises:
        NotACheckpointError: a source is missing or no checkpoint was found.
        OutputError: ``out_dir`` cannot be created or would overwrite the inputs.
        ValueError: ``jobs`` below 1, or a negative ``timeout``.

    Example:
        >>> import ckptfix
        >>> report = ckptfix.convert_batch(["runs/"], "fixed/", jobs=4)  # doctest: +SKIP
        >>> report.converted, report.skipped, report.failed  # doctest: +SKIP
        (118, 2, 0)
    """
    start = time.perf_counter()
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    limit = resolve_timeout(timeout)
    if to is not None and to not in TARGETS:
        raise ValueError(f"to must be one of {', '.join(TARGETS)} or None, got {to!r}")
    if isinstance(sources, str | Path):
        sources = [sources]
    items = find_checkpoints(sources, out_dir, to)
    out = Path(out_dir).absolute()
    created = _make_folders(out, items)
    exact = exact or infer is False
    ref = None if reference is None else str(reference)
    shapes = as_shapes(model)
    opts = BatchOptions(template, ref, exact, force, limit, shapes)
    n = 0 if executor is not None else min(jobs or auto_jobs(items), len(items))
    total_bytes = sum(it.file_bytes for it in items)
    done = [0, 0]

    def report_progress(entry: BatchEntry | None, item: BatchItem | None) -> None:
        if item is not None:
            done[0] += 1
            done[1] += item.file_bytes
        if progress is not None:
            progress(BatchProgress(entry, done[0], len(items), done[1], total_bytes))

    report_progress(None, None)
    entries: list[BatchEntry | None] = [None] * len(items)
    try:
        if executor is not None:
            _run_executor(executor, items, opts, entries, report_progress)
        elif n <= 1 and limit is None:
            for i, item in enumerate(items):
                entries[i] = convert_one(item, opts)
                report_progress(entries[i], item)
        else:
            _run_workers(items, opts, n, entries, report_progress)
    finally:
        _remove_empty(created)
    final = tuple(e for e in entries if e is not None)
    return BatchReport(
        out_dir=str(out_dir),
        jobs=n,
        entries=final,
        files=len(final),
        converted=sum(e.status == "converted" for e in final),
        skipped=sum(e.status == "skipped" for e in final),
        failed=sum(e.status == "failed" for e in final),
        tensors=sum(e.tensors for e in final if e.status == "converted"),
        bytes=sum(e.bytes for e in final if e.status == "converted"),
        file_bytes=total_bytes,
        seconds=time.perf_counter() - start,
    )


def batch_report_json(report: BatchReport) -> dict[str, Any]:
    """The documented JSON form of a report (:func:`ckptfix.report.to_json` of it)."""
    return report.to_json()


def write_batch_report(report: BatchReport, path: str | Path) -> Path:
    """Write :func:`batch_report_json` to ``path`` (atomically, replacing an older report).

    Raises:
        OutputError: the file cannot be written.
    """
    dst = Path(path)
    tmp = dst.with_name(f".{dst.name}{TEMP_MARK}{os.getpid()}")
    try:
        tmp.write_text(json.dumps(batch_report_json(report), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, dst)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"expected to write the report {dst}; found an OS error ({exc.strerror or exc}); "
            "check the folder and permissions"
        ) from exc
    return dst


def convert_one(item: BatchItem, opts: BatchOptions) -> BatchEntry:
    """Convert one item; never raises for a bad input (it becomes a *failed* entry).

    Runs in the worker processes, so it takes and returns only picklable data. In a worker
    the library calls below run in place, under the worker's deadline; called anywhere else
    they run under their own (see :func:`run_item`).
    """
    from .convert import convert_checkpoint, verify_conversion

    start = time.perf_counter()
    src, dst = item.source, item.destination
    existed = os.path.lexists(dst) or os.path.lexists(dst + ".index")  # (a TF checkpoint)
    try:
        if existed and not opts.force:
            check = verify_conversion(src, dst, template=opts.template, timeout=opts.timeout)
            if not check.ok:
                return BatchEntry(
                    source=src,
                    file_bytes=item.file_bytes,
                    status="failed",
                    reason=f"expected the existing output to match its input; found "
                    f"{len(check.mismatches)} mismatching tensors (first: {check.mismatches[0]}); "
                    "pass force=True to replace it",
                    destination=dst,
                    tensors=check.tensors,
                    error="OutputError",
                    exit_code=int(OutputError.exit_code),
                    seconds=time.perf_counter() - start,
                )
            return BatchEntry(
                source=src,
                file_bytes=item.file_bytes,
                status="skipped",
                reason="output exists and matches the input; kept (pass force=True to replace it)",
                destination=dst,
                tensors=check.tensors,
                bytes=check.bytes,
                seconds=time.perf_counter() - start,
            )
        r = convert_checkpoint(
            src,
            dst,
            template=opts.template,
            reference=opts.reference,
            exact=opts.exact,
            force=opts.force,
            model=opts.model,
            timeout=opts.timeout,
        )
    except NothingToConvertError as exc:
        return _error_entry(item, "skipped", exc, start)
    except CkptfixError as exc:
        return _error_entry(item, "failed", exc, start)
    except Exception as exc:  # a bug must not stop the other files of the batch
        return BatchEntry(
            source=src,
            file_bytes=item.file_bytes,
            status="failed",
            reason=f"expected to convert {Path(src).name}; found an unexpected "
            f"{type(exc).__name__}: {exc}; please report this with the file's `ckptfix inspect`",
            destination=None,
            error=type(exc).__name__,
            exit_code=1,
            seconds=time.perf_counter() - start,
        )
    return BatchEntry(
        source=src,
        file_bytes=item.file_bytes,
        status="converted",
        reason="replaced the existing output (force=True)" if existed else None,
        destination=r.destination,
        template=r.template,
        replicas=r.replicas,
        tensors=r.tensors,
        bytes=r.bytes,
        seconds=time.perf_counter() - start,
        format=r.format,
        layout=r.layout,
        warnings=r.warnings,
    )


def _error_entry(
    item: BatchItem, status: BatchStatus, exc: CkptfixError, start: float
) -> BatchEntry:
    return BatchEntry(
        source=item.source,
        status=status,
        reason=str(exc),
        destination=None,
        file_bytes=item.file_bytes,
        seconds=time.perf_counter() - start,
        error=type(exc).__name__,
        exit_code=int(exc.exit_code),
    )


def run_item(item: BatchItem, opts: BatchOptions) -> BatchEntry:
    """Convert one item under the deadline, in a worker process of wherever this runs.

    What :func:`convert_batch` submits to an ``executor=``: a module-level function of picklable
    arguments returning a picklable :class:`BatchEntry`. A file that hits the deadline (or
    crashes its worker) becomes a *failed* entry; nothing raises for a bad input.
    """
    start = time.perf_counter()
    try:
        return run_isolated(
            convert_one,
            (item, opts),
            timeout=opts.timeout,
            subject=item.source,
            cleanup=functools.partial(discard_temps_of, Path(item.destination).parent),
        )
    except CkptfixError as exc:
        return _error_entry(item, "failed", exc, start)


def auto_jobs(items: Sequence[BatchItem]) -> int:
    """The default ``jobs``: the CPUs this process may use, at most one per file.

    Workers are forked (or, on macOS and Windows, started once per batch), so even a batch
    of two small files gains from a second one; more workers than CPUs only share them.
    """
    return max(1, min(_cpu_count(), len(items)))


def _run_workers(
    items: Sequence[BatchItem],
    opts: BatchOptions,
    n: int,
    entries: list[BatchEntry | None],
    report_progress: Callable[[BatchEntry | None, BatchItem | None], None],
) -> None:
    """``n`` local worker processes, each converting file after file under the deadline."""
    tasks = [
        Task(
            convert_one,
            (item, opts),
            subject=item.source,
            cleanup=functools.partial(discard_temps_of, Path(item.destination).parent),
        )
        for item in items
    ]
    for i, entry, error in run_tasks(tasks, max(n, 1), opts.timeout):
        if error is not None:
            seconds = opts.timeout if isinstance(error, DeadlineExceededError) else None
            entry = _failed_entry(items[i], error, seconds or 0.0)
        entries[i] = entry
        report_progress(entry, items[i])


def _run_executor(
    executor: Executor,
    items: Sequence[BatchItem],
    opts: BatchOptions,
    entries: list[BatchEntry | None],
    report_progress: Callable[[BatchEntry | None, BatchItem | None], None],
) -> None:
    """Every file as one ``executor.submit(run_item, ...)``; entries kept in input order."""
    import concurrent.futures as cf

    futures = {executor.submit(run_item, item, opts): i for i, item in enumerate(items)}
    try:
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                entry = fut.result()
            except Exception as exc:  # the worker died (killed, out of memory, crash)
                entry = _failed_entry(items[i], exc, 0.0)
            entries[i] = entry
            report_progress(entry, items[i])
    except BaseException:
        for fut in futures:
            fut.cancel()
        raise


def _failed_entry(item: BatchItem, exc: BaseException, seconds: float) -> BatchEntry:
    """The entry of a file whose worker gave no entry: a deadline, a crash, a lost worker."""
    if isinstance(exc, CkptfixError):
        return replace(_error_entry(item, "failed", exc, time.perf_counter()), seconds=seconds)
    return BatchEntry(
        source=item.source,
        status="failed",
        reason=f"expected a result for {Path(item.source).name}; found its worker process "
        f"stopped ({type(exc).__name__}: {exc}); rerun the batch (finished outputs are kept) "
        "or use jobs=1",
        destination=None,
        file_bytes=item.file_bytes,
        error=type(exc).__name__,
        exit_code=1,
        seconds=seconds,
    )


def _walk(folder: Path, out: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if "saved_model.pb" in filenames and here != folder:
            dirnames[:] = []  # a SavedModel folder is one input (its variables/ are not)
            yield here
            continue
        # never pick up our own outputs (an --out-dir inside a source folder)
        dirnames[:] = sorted(d for d in dirnames if not same_file(here / d, out))
        for name in sorted(filenames):  # sorted: which of two links to one file wins is fixed
            if TEMP_MARK in name:
                continue
            if name.endswith(".index"):  # a TensorFlow checkpoint: its prefix is the input
                yield here / name[: -len(".index")]
            elif name.lower().endswith(CHECKPOINT_SUFFIXES):
                yield here / name


def _is_tf_source(p: Path) -> bool:
    """A SavedModel folder, or a TensorFlow checkpoint prefix (``p.index`` exists)."""
    if p.is_dir():
        return (p / "saved_model.pb").is_file()
    return not p.exists() and p.with_name(p.name + ".index").is_file()


def _make_folders(out: Path, items: Iterable[BatchItem]) -> list[Path]:
    """Create every output folder up front (no races between workers); return the new ones."""
    created: list[Path] = []
    for folder in sorted({Path(it.destination).parent for it in items} | {out}):
        missing = []
        p = folder
        while not p.exists():
            missing.append(p)
            p = p.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"expected to create the output folder {folder}; found an OS error "
                f"({exc.strerror or exc}); check permissions or choose another out_dir="
            ) from exc
        created += [m for m in missing if m != out]
    return created


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders this batch created that stayed empty (inputs skipped or failed)."""
    for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: it holds outputs


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _size(path: Path) -> int:
    """Bytes of an input: a file, a SavedModel folder's files, a TF checkpoint's files."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if not path.exists():
            parts = path.parent.glob(glob.escape(path.name) + ".*")
            return sum(
                p.stat().st_size
                for p in parts
                if p.name[len(path.name) :].startswith((".index", ".data-"))
            )
        return path.stat().st_size
    except OSError:
        return 0


__all__ = [
    "BatchEntry",
    "BatchItem",
    "BatchOptions",
    "BatchProgress",
    "BatchReport",
    "batch_report_json",
    "write_batch_report",
    "CHECKPOINT_SUFFIXES",
    "auto_jobs",
    "convert_batch",
    "convert_one",
    "find_checkpoints",
    "run_item",
]
