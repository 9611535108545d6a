"""What every format module provides: the :class:`Format` protocol, options and ``Written``.

A format reads files into a :class:`~ckptfix.checkpoint.Checkpoint` and/or writes one out. It
declares the options it understands; an option given to a format that does not understand it
is a usage error (:class:`~ckptfix.errors.OptionNotSupportedError`), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..checkpoint import Checkpoint, Family, TensorRef, WriteMode
from ..errors import OptionNotSupportedError
from ..storage import CopyRecord, Derivation

#: ``progress(done_bytes, total_bytes)``, called while tensors are written.
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class LiveModel(Protocol):
    """A live Keras model (tf_keras or Keras 3): what ``model=`` needs of it."""

    @property
    def layers(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may be told about the file (each format declares which it supports)."""

    template: str | None = None  # the nested model to lift out, by name
    reference: str | Path | None = None  # a layout reference (Keras 2 weights-only files)
    model: LiveModel | None = None  # a live template model, for an exact layout
    exact: bool = False  # refuse a layout that is only inferred from weight names

    def given(self) -> frozenset[str]:
        """Names of the options set to something other than their default."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) not in (None, False))


@dataclass(frozen=True)
class WriteOptions:
    """What a writer may be told."""

    progress: ProgressCallback | None = None


@dataclass(frozen=True)
class WrittenTensor:
    """One tensor of a written file and the stored tensor it came from.

    ``how``: ``moved`` (the output is a kernel copy of the source and the tensor's bytes sit
    at the same offsets, never written since: proven from the write log), ``copied`` (HDF5
    copied the dataset: same dtype, shape, storage options and stored bytes), ``encoded``
    (the writer wrote the values anew: same dtype, shape and values, storage may differ; or,
    with ``derived``, the values that derivation computes from its inputs).
    """

    path: str  # the dataset path in the written HDF5 file (or the key in a TF bundle)
    source: TensorRef | None  # None only for a derived tensor without inputs (a constant)
    how: WriteMode
    name: str  # the weight's name, for messages ("dense_1/kernel:0", "optimizer Adam/iter:0")
    #: for ``encoded`` tensors whose values are computed (another layout, a config value)
    derived: Derivation | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the written tensor."""
        if self.derived is not None:
            return self.derived.nbytes
        assert self.source is not None
        return self.source.nbytes


#: (model tensors in load order, optimizer tensors): what a writer would write, and from where.
Planned = tuple[tuple[WrittenTensor, ...], tuple[WrittenTensor, ...]]


@dataclass(frozen=True)
class Written:
    """What a writer did: the file, every tensor it holds and where each came from.

    ``tensors`` are the model's weights in load order, ``optimizer`` the optimizer tensors in
    stored order; the verifier checks every one against its source and that the file holds
    nothing else. ``copy_record`` carries the write log of a kernel copy (``moved`` tensors).
    """

    path: Path
    format: str
    tensors: tuple[WrittenTensor, ...]
    optimizer: tuple[WrittenTensor, ...] = ()
    member: str | None = None  # the zip member holding the HDF5 weights (.keras)
    full_model: bool = False
    copy_record: CopyRecord | None = None
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was translated, for the record (not a problem)


@dataclass
class Probe:
    """What sniffing needs of a path, read once and shared by every format's ``sniff``."""

    path: Path
    head: bytes  # the first 8 bytes ("" for a folder)
    h5_keys: frozenset[str] | None = None  # an HDF5 file's top-level members
    h5_attrs: frozenset[str] | None = None  # and its root attributes
    h5_groups: frozenset[str] | None = None  # the top-level members that are groups


class Format(Protocol):
    """A checkpoint format: sniff, read into a Checkpoint, write one out.

    ``ids`` are the format ids it reads (``Checkpoint.format``; empty when it only writes);
    ``read_options`` and ``write_options`` the options it supports.
    """

    name: str
    family: Family
    ids: tuple[str, ...]
    read_options: frozenset[str]
    write_options: frozenset[str]

    def sniff(self, probe: Probe) -> str | None:
        """The format id the probed path holds when this format reads it, else None."""
        ...

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        """Read ``path`` (metadata only) into a Checkpoint; resolve template and layout."""
        ...

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        """The format id this format writes at ``dst`` for ``ck`` (by its name), else None."""
        ...

    def accepts(self, ck: Checkpoint) -> bool:
        """True when this format can write ``ck``'s subject faithfully."""
        ...

    def plan(self, ck: Checkpoint) -> Planned:
        """Where every tensor of ``ck.subject`` (and its optimizer) goes in the output."""
        ...

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        """Write ``ck.subject`` into the new file ``tmp``; say exactly what was written."""
        ...

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        """Problems of a written file besides its tensors (configs, names, optimizer)."""
        ...

    def suggest(self, path: Path) -> Path:
        """The default output path for converting ``path`` within this format."""
        ...


def check_options(
    fmt_name: str, supported: frozenset[str], given: frozenset[str], why: str
) -> None:
    """Refuse options a format does not support (a usage error, never silently ignored).

    Raises:
        OptionNotSupportedError: one of ``given`` is not in ``supported``.
    """
    extra = sorted(given - supported)
    if extra:
        names = ", ".join(f"{o}=" for o in extra)
        raise OptionNotSupportedError(
            f"expected only options that {fmt_name} supports "
            f"({', '.join(sorted(supported)) or 'none'}); found {names}; drop it ({why})",
            options=tuple(extra),
        )
