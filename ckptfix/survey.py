"""Inspect many checkpoints at once (``ckptfix inspect runs/*.h5``, or a folder).

:func:`inspect_checkpoints` describes every input with :func:`ckptfix.inspect_checkpoint` and
never stops at a bad one: each input gets one :class:`InspectEntry`, holding either its report
or the one-line reason it could not be described, in the order given (a folder's checkpoints
sorted by path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .batch import CHECKPOINT_SUFFIXES
from .deadline import DEFAULT_TIMEOUT
from .errors import CkptfixError, NotACheckpointError
from .layout import as_shapes
from .output import TEMP_MARK
from .report import JSON_SCHEMA_VERSION, CheckpointReport, inspect_checkpoint, to_json

if TYPE_CHECKING:
    from .formats.base import LiveModel


@dataclass(frozen=True)
class InspectEntry:
    """One input of :func:`inspect_checkpoints`: its report, or why it has none.

    ``error`` is the error's class name, ``reason`` its one-line message and ``exit_code``
    what ``ckptfix inspect`` of that file alone would have returned.
    """

    path: str
    report: CheckpointReport | None
    error: str | None = None
    reason: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        """True when the input was described."""
        return self.report is not None

    def to_json(self) -> dict[str, Any]:
        """The ``inspect --json`` object of the file, or ``schema``, ``path``, ``error``,
        ``reason`` and ``exit_code`` for an input that could not be described."""
        if self.report is not None:
            data: dict[str, Any] = to_json(self.report)
            return data
        return {
            "schema": JSON_SCHEMA_VERSION,
            "path": self.path,
            "error": self.error,
            "reason": self.reason,
            "exit_code": self.exit_code,
        }


def find_inputs(paths: Sequence[str | Path]) -> list[Path | str]:
    """The inputs to describe: files as given (whatever their name, missing ones too, so that
    they are reported), and the checkpoints found in folders.

    Folders are searched recursively for :data:`ckptfix.batch.CHECKPOINT_SUFFIXES` (symlinked
    folders are not followed; ckptfix temporaries are left out); a folder that is one
    checkpoint (:func:`is_checkpoint_folder`) is one input. Each file is listed once, at its
    first mention. A folder holding no checkpoint is listed as itself (a ``str``), so that it
    is reported rather than silently dropped.
    """
    found: list[Path | str] = []
    seen: set[str] = set()
    for given in paths:
        p = Path(given)
        if not p.is_dir() or is_checkpoint_folder(p):
            files = [p]
        else:
            files = list(_expand(p))
            if not files:
                found.append(str(p))
        for f in files:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def inspect_checkpoints(
    paths: Sequence[str | Path],
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: LiveModel | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> tuple[InspectEntry, ...]:
    """Describe every checkpoint among ``paths`` (files and folders), one entry each.

    Args:
        paths: checkpoint files and folders (see :func:`find_inputs`).
        template, reference, model, timeout: as for :func:`ckptfix.inspect_checkpoint`, for
            every input (the deadline applies to each file: one that makes no progress is an
            entry saying so, and the others are still described).

    Returns:
        One :class:`InspectEntry` per input, in input order (a folder's checkpoints sorted by
        path); a folder with no checkpoint in it is one entry that says so.

    Example:
        >>> entries = ckptfix.inspect_checkpoints(["runs/"])  # doctest: +SKIP
        >>> [e.path for e in entries if e.ok and e.report.wrapped]  # doctest: +SKIP
        ['runs/exp1/epoch_03.h5']
    """
    model = as_shapes(model)  # once, not per file
    entries = []
    for item in find_inputs(paths):
        if isinstance(item, str):
            entries.append(
                InspectEntry(
                    item,
                    None,
                    "NotACheckpointError",
                    "expected .h5, .hdf5, .weights.h5 or .keras files; found none in "
                    f"{item}; check the path",
                    int(NotACheckpointError.exit_code),
                )
            )
            continue
        try:
            report = inspect_checkpoint(
                item, template=template, reference=reference, model=model, timeout=timeout
            )
        except CkptfixError as exc:
            entries.append(
                InspectEntry(str(item), None, type(exc).__name__, str(exc), int(exc.exit_code))
            )
        else:
            entries.append(InspectEntry(str(item), report))
    return tuple(entries)


def _expand(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        models = sorted(d for d in dirnames if is_checkpoint_folder(here / d))
        yield from (here / d for d in models)  # one input each, not searched inside
        dirnames[:] = sorted(d for d in dirnames if d not in models)
        for name in sorted(filenames):
            if TEMP_MARK not in name and name.lower().endswith(CHECKPOINT_SUFFIXES):
                yield here / name


def describes_one_file(paths: Sequence[str | Path]) -> bool:
    """True for one path that is not a folder to search (a file, a SavedModel, nothing)."""
    if len(paths) != 1:
        return False
    p = Path(paths[0])
    return not p.is_dir() or is_checkpoint_folder(p)


def is_checkpoint_folder(p: Path) -> bool:
    """A folder that is one checkpoint, not a folder of them: a SavedModel, or a TensorFlow
    checkpoint's folder (its ``checkpoint`` file names the prefix)."""
    return any((p / name).is_file() for name in ("saved_model.pb", "checkpoint"))


__all__ = [
    "InspectEntry",
    "describes_one_file",
    "find_inputs",
    "inspect_checkpoints",
    "is_checkpoint_folder",
]
