"""Tensor bytes without decoding them: kernel copies, write logs and raw storage comparison.

A conversion copies the source with the kernel and then lets HDF5 rewrite the copy's metadata.
Two facts then prove that every tensor of the copy holds the source's bytes without reading
them back: the copy was complete, and none of the writes HDF5 made afterwards (each one logged
by :class:`WriteLog`) touched the byte range where a tensor is stored. :class:`CopyRecord`
carries that evidence from the writer to the verifier. When it is missing (a file written
elsewhere, or changed since), :class:`RawFiles` compares the stored bytes of both files at
each dataset's own offsets, block by block, in constant memory.
"""

from __future__ import annotations

import bisect
import errno
import io
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

#: Size of each read when comparing stored bytes (two buffers of this size are reused).
BLOCK = 4 << 20
#: Bytes compared at each end of a tensor whose storage is proven untouched.
SAMPLE = 4096
#: Ranges up to this size are compared with one plain read each.
SMALL = 64 << 10


class Extent(NamedTuple):
    """One piece of a dataset's storage: where it lies in the file and how to decode it."""

    offset: int  # absolute file offset (userblock included)
    length: int
    filter_mask: int  # chunks only: filters skipped for this chunk
    position: tuple[int, ...]  # chunks only: the chunk's logical offset; () when contiguous


# --- copying --------------------------------------------------------------------------------


def copy_file(src: Path, dst: Path) -> int:
    """Copy ``src`` to a new file ``dst`` in the kernel; return the number of bytes copied.

    Uses ``copy_file_range`` (no byte passes through user space; a reflink where the file
    system offers one), falling back to :func:`shutil.copyfile` where it is unavailable.
    """
    size = os.stat(src).st_size
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            copied = 0
            try:
                while copied < size:
                    n = os.copy_file_range(fd_in, fd_out, size - copied, copied, copied)
                    if n == 0:
                        break
                    copied += n
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS:
                    raise
                copied = -1  # cross-device or unsupported: let shutil pick its way
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if copied < 0:
        shutil.copyfile(src, dst)
        copied = os.stat(dst).st_size
    return copied


# Out of space or a failing disk: a fallback would fail the same way.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO}


class WriteLog(io.FileIO):
    """A file opened read-write for HDF5 (h5py's ``fileobj`` driver) that logs every change.

    Each ``write`` adds its byte range; a ``truncate`` that shrinks the file adds the range it
    cut. :meth:`ranges` returns them merged and sorted. The first OS error (a full disk) is
    kept in :attr:`error`: h5py's driver reports it back only as an unrelated error.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, "r+")
        self._ranges: list[tuple[int, int]] = []
        self.error: OSError | None = None

    def write(self, b: Any, /) -> int:
        pos = self.tell()
        view = memoryview(b).cast("B")
        n = 0
        try:
            while n < len(view):  # h5py's driver ignores short writes: finish them here
                k = super().write(view[n:])
                if not k:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                n += k
        except OSError as exc:
            self.error = self.error or exc
            raise
        finally:
            if n:
                self._ranges.append((pos, pos + n))
        return n

    def truncate(self, size: int | None = None, /) -> int:
        old = os.fstat(self.fileno()).st_size
        try:
            new = super().truncate(size)
        except OSError as exc:
            self.error = self.error or exc
            raise
        if new < old:
            self._ranges.append((new, old))
        return new

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The changed byte ranges, merged and sorted."""
        merged: list[tuple[int, int]] = []
        for start, end in sorted(self._ranges):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return tuple(merged)


def file_identity(path: Path) -> tuple[int, ...]:
    """What changes when a file is replaced or written: device, inode, size, times."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class CopyRecord:
    """Evidence that ``copy`` is ``source`` byte for byte outside the ``written`` ranges.

    ``copied`` bytes were copied from the start of the source; afterwards only ``written``
    (merged, sorted) ranges of the copy changed. The identities pin both files as they were
    when the record was made, so a changed file makes the record useless, never wrong; the
    same holds for ``note``, whatever the writer parsed from the unchanged source.
    """

    source: Path
    copy: Path
    source_id: tuple[int, ...]
    copy_id: tuple[int, ...]
    copied: int
    written: tuple[tuple[int, int], ...]
    note: Any = field(default=None, compare=False)  # what the writer read from the source

    def untouched(self, start: int, end: int) -> bool:
        """True when ``[start, end)`` was copied and never written afterwards."""
        if start < 0 or end > self.copied:
            return False
        k = bisect.bisect_right(self.written, (start, float("inf")))
        if k > 0 and self.written[k - 1][1] > start:  # a range starting at or before start
            return False
        return not (k < len(self.written) and self.written[k][0] < end)

    def holds_for(self, source: Path, copy: Path) -> bool:
        """True when this record describes ``source`` and ``copy`` as they are now."""
        try:
            return file_identity(source) == self.source_id and file_identity(copy) == self.copy_id
        except OSError:
            return False


_records: dict[Path, CopyRecord] = {}
_records_lock = threading.Lock()


def keep_record(record: CopyRecord) -> None:
    """Keep ``record`` for the verifier of ``record.copy`` (see :func:`take_record`)."""
    with _records_lock:
        for p in [p for p in _records if not p.exists()]:
            del _records[p]  # temporaries that were discarded
        _records[Path(os.path.abspath(record.copy))] = record


def take_record(source: Path, copy: Path) -> CopyRecord | None:
    """The record made when ``copy`` was written from ``source``, if both are unchanged since.

    A record is used once: a second verification of the same file reads every byte.
    """
    with _records_lock:
        record = _records.pop(Path(os.path.abspath(copy)), None)
    if record is None or not record.holds_for(source, copy):
        return None
    if os.path.abspath(record.source) != os.path.abspath(source):
        return None
    return record


# --- where tensors are stored ---------------------------------------------------------------


def storage_extents(
    dsid: h5py.h5d.DatasetID, base: int = 0, dcpl: Any = None
) -> tuple[Extent, ...] | None:
    """Where a dataset keeps its bytes in its file, or None when not as plain extents.

    Contiguous datasets give one extent, chunked ones one per allocated chunk. Compact,
    external and virtual storage, and contiguous storage not yet allocated, give None.
    ``base`` is the file's userblock size (HDF5 offsets start after it); ``dcpl``, the
    dataset's creation property list when the caller has it already.
    """
    dcpl = dcpl or dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        if dcpl.get_external_count() > 0:
            return None
        offset = dsid.get_offset()
        if offset is None:
            return None
        return (Extent(base + offset, dsid.get_storage_size(), 0, ()),)
    if layout == h5py.h5d.CHUNKED:
        found: list[Extent] = []

        def add(info: Any) -> None:
            found.append(
                Extent(
                    base + info.byte_offset,
                    info.size,
                    info.filter_mask,
                    tuple(info.chunk_offset),
                )
            )

        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(add)
        else:  # HDF5 < 1.14
            for i in range(dsid.get_num_chunks()):
                add(dsid.get_chunk_info(i))
        return tuple(found)
    return None


def storage_options(dsid: h5py.h5d.DatasetID, dcpl: Any = None) -> tuple[Any, ...]:
    """Everything besides the stored bytes that decides what a dataset reads as.

    Layout, chunk shape, the filter pipeline (id, flags, parameters) and, for chunked data
    (where missing chunks read as it), the fill value.
    """
    dcpl = dcpl or dsid.get_create_plist()
    layout = dcpl.get_layout()
    if layout != h5py.h5d.CHUNKED:
        return (layout,)
    filters = tuple(dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters()))
    fill = np.zeros((1,), dsid.dtype)
    dcpl.get_fill_value(fill)
    return (layout, dcpl.get_chunk(), filters, fill.tobytes())


class RawFiles:
    """Two files opened for raw reads, compared block by block in two reused buffers."""

    def __init__(self, a: Path | str, b: Path | str) -> None:
        self._fa = os.open(a, os.O_RDONLY)
        try:
            self._fb = os.open(b, os.O_RDONLY)
        except OSError:
            os.close(self._fa)
            raise
        self._ba = bytearray(BLOCK)
        self._bb = bytearray(BLOCK)
        self._va = memoryview(self._ba)
        self._vb = memoryview(self._bb)

    def close(self) -> None:
        """Close both files."""
        self._va.release()
        self._vb.release()
        os.close(self._fa)
        os.close(self._fb)

    def __enter__(self) -> RawFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def same_bytes(self, offset_a: int, offset_b: int, length: int) -> bool:
        """True when ``length`` bytes at ``offset_a`` in ``a`` equal those at ``offset_b``."""
        if length <= SMALL:  # one read each, compared as bytes
            x = os.pread(self._fa, length, offset_a)
            return len(x) == length and x == os.pread(self._fb, length, offset_b)
        done = 0
        while done < length:
            n = min(BLOCK, length - done)
            ra = os.preadv(self._fa, [self._va[:n]], offset_a + done)
            rb = os.preadv(self._fb, [self._vb[:n]], offset_b + done)
            if ra != n or rb != n:
                return False  # a file ends inside the range
            if n == BLOCK:
                if self._ba != self._bb:  # bytearray equality is one memcmp
                    return False
            elif not np.array_equal(
                np.frombuffer(self._ba, np.uint8, n), np.frombuffer(self._bb, np.uint8, n)
            ):
                return False
            done += n
        return True

    def same_extents(self, ea: Sequence[Extent], eb: Sequence[Extent]) -> bool:
        """True when both extent lists store the same bytes the same way."""
        if len(ea) != len(eb):
            return False
        for x, y in zip(ea, eb, strict=True):
            if (x.length, x.filter_mask, x.position) != (y.length, y.filter_mask, y.position):
                return False
            if not self.same_bytes(x.offset, y.offset, x.length):
                return False
        return True

    def sampled(self, extents: Sequence[Extent]) -> bool:
        """Compare the first and last :data:`SAMPLE` bytes of each extent at the same offset."""
        for x in extents:
            head = min(SAMPLE, x.length)
            if not self.same_bytes(x.offset, x.offset, head):
                return False
            tail = min(SAMPLE, x.length - head)
            end = x.offset + x.length
            if tail and not self.same_bytes(end - tail, end - tail, tail):
                return False
        return True
