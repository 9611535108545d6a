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
import contextlib
import errno
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from .checkpoint import BundleLocation, H5Location, TensorRef, WriteMode
from .deadline import tick
from .errors import CkptfixError
from .h5util import dtype_name, open_h5, open_h5_member, storage_options

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
    system offers one), falling back to a copy by blocks where it is unavailable. Either way
    progress is reported every few hundred MiB (:func:`ckptfix.deadline.tick`).
    """
    size = os.stat(src).st_size
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            copied = 0
            try:
                while copied < size:
                    step = min(size - copied, _COPY_STEP)
                    n = os.copy_file_range(fd_in, fd_out, step, copied, copied)
                    if n == 0:
                        break
                    copied += n
                    tick()  # progress: a huge file is not a stuck one
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno in _FATAL_ERRNOS:
                    raise
                copied = -1  # cross-device or unsupported: copy by blocks
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if copied < 0:
        copied = _copy_by_blocks(src, dst)
    return copied


def _copy_by_blocks(src: Path, dst: Path) -> int:
    """Copy through user space (another file system, no copy_file_range), reporting progress."""
    copied = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(_BLOCK_COPY):
            fout.write(block)
            copied += len(block)
            tick()
    return copied


#: Bytes per copy_file_range call, and per read of the fallback copy (between two progress
#: reports to the deadline, :func:`ckptfix.deadline.tick`).
_COPY_STEP = 256 << 20
_BLOCK_COPY = 16 << 20

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
    when the record was made, so a changed file makes the record useless, never wrong.
    A writer returns it in its :class:`~ckptfix.formats.base.Written`; nothing else keeps it.
    """

    source: Path
    copy: Path
    source_id: tuple[int, ...]
    copy_id: tuple[int, ...]
    copied: int
    written: tuple[tuple[int, int], ...]

    def untouched(self, start: int, end: int) -> bool:
        """True when ``[start, end)`` was copied and never written afterwards."""
        if start < 0 or end > self.copied:
            return False
        k = bisect.bisect_right(self.written, (start, float("inf")))
        if k > 0 and self.written[k - 1][1] > start:  # a range starting at or before start
            return False
        return not (k < len(self.written) and self.written[k][0] < end)

    def holds_for(self, source: Path | str, copy: Path | str) -> bool:
        """True when this record describes ``source`` and ``copy`` as they are now."""
        if os.path.abspath(source) != os.path.abspath(self.source):
            return False
        if os.path.abspath(copy) != os.path.abspath(self.copy):
            return False
        try:
            return (
                file_identity(Path(source)) == self.source_id
                and file_identity(Path(copy)) == self.copy_id
            )
        except OSError:
            return False


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
            tick()
            if n == BLOCK:
                if self._ba != self._bb:  # bytearray equality is one memcmp
                    return False
            elif not np.array_equal(
                np.frombuffer(self._ba, np.uint8, n), np.frombuffer(self._bb, np.uint8, n)
            ):
                return False
            done += n
        return True

    def same_bytes_crc(self, offset_a: int, offset_b: int, length: int) -> tuple[bool, int]:
        """Like :meth:`same_bytes`, and the crc32c of the bytes compared."""
        from .bundle import crc32c

        crc = 0
        done = 0
        while done < length:  # bytes objects: google-crc32c takes read-only buffers only
            n = min(BLOCK, length - done)
            a = os.pread(self._fa, n, offset_a + done)
            if len(a) != n or a != os.pread(self._fb, n, offset_b + done):
                return False, 0
            crc = crc32c(a, crc)
            done += n
        return True, crc

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


# --- the one verifier -------------------------------------------------------------------------
# Every conversion's output is checked here, tensor by tensor, against the stored tensor it
# came from: stored bytes and storage options where the writer moved or copied bytes, values
# where it wrote them anew; in constant memory for every HDF5 file (plain or inside a .keras).


@dataclass(frozen=True)
class OpenedH5:
    """An HDF5 file opened for verification, and where its bytes lie on disk."""

    file: h5py.File
    disk: Path  # the file whose bytes the dataset offsets refer to
    base: int  # where the HDF5 address space starts in ``disk`` (member offset + userblock)


class H5Files:
    """HDF5 files (plain, or members of a zip) opened once each, closed together."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._open: dict[tuple[str, str | None], OpenedH5] = {}

    def __enter__(self) -> H5Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get(self, file: str, member: str | None) -> OpenedH5:
        """The opened file holding datasets of ``file`` (its zip ``member``)."""
        key = (os.path.abspath(file), member)
        if key not in self._open:
            if member is None:
                f = self._stack.enter_context(open_h5(file))
                self._open[key] = OpenedH5(f, Path(file), f.userblock_size)
            else:
                f, disk, start = self._stack.enter_context(open_h5_member(Path(file), member))
                self._open[key] = OpenedH5(f, disk, start + f.userblock_size)
        return self._open[key]

    def dataset(self, loc: H5Location) -> tuple[h5py.h5d.DatasetID, OpenedH5]:
        """The low-level dataset at ``loc`` and the file it is in."""
        opened = self.get(loc.file, loc.member)
        return h5py.h5d.open(opened.file.id, loc.path.encode("utf-8")), opened


@dataclass(frozen=True)
class Derivation:
    """How a written tensor's values follow from stored tensors, or from nothing (a constant).

    A conversion across Keras versions writes some tensors that no source tensor holds as
    they are: a weight in another layout (``compute`` of its ``inputs``), an optimizer's
    learning rate from its config. The writer writes ``compute(inputs)``; the verifier reads
    the inputs again, computes anew and compares values. ``compute`` is numpy only and sees
    one tensor's inputs at a time.
    """

    inputs: tuple[TensorRef, ...]
    compute: Callable[[Sequence[np.ndarray]], np.ndarray]
    what: str  # for messages: "learning_rate 0.001 from the config", "transform cudnn_lstm"
    dtype: str | None  # what the result must be (None: whatever ``compute`` gives)
    shape: tuple[int, ...] | None

    @property
    def nbytes(self) -> int:
        """Bytes of the result (of its inputs when the result's shape is not declared)."""
        if self.dtype is None or self.shape is None:
            return sum(ref.nbytes for ref in self.inputs)
        n = int(np.dtype(self.dtype).itemsize)
        for s in self.shape:
            n *= s
        return n

    def value(self, files: H5Files | None = None) -> np.ndarray:
        """The result, read from the inputs where they are stored (checked dtype and shape).

        Raises:
            ValueError: the result is not of the declared dtype and shape.
        """
        with contextlib.ExitStack() as stack:
            if files is None:
                files = stack.enter_context(H5Files())
            arrays = [read_tensor(ref, files) for ref in self.inputs]
            out = np.asarray(self.compute(arrays))
        declared = (self.dtype or out.dtype.name, self.shape or tuple(out.shape))
        if declared != (out.dtype.name, tuple(out.shape)):
            raise ValueError(
                f"{self.what}: computed {out.dtype.name}{list(out.shape)}, "
                f"declared {declared[0]}{list(declared[1])}"
            )
        return out


def read_tensor(ref: TensorRef, files: H5Files) -> np.ndarray:
    """One stored tensor's values (HDF5 dataset or TF bundle range), native byte order."""
    loc = ref.location
    if isinstance(loc, H5Location):
        dsid, _ = files.dataset(loc)
        return np.asarray(h5py.Dataset(dsid)[()])
    with open(loc.file, "rb") as fh:
        data = os.pread(fh.fileno(), loc.size, loc.offset)
    return np.frombuffer(data, dtype=np.dtype(ref.dtype)).reshape(ref.shape).copy()


@dataclass(frozen=True)
class TensorPair:
    """A tensor of a written file, the source tensor it must equal, and how it was written.

    A ``derived`` tensor has no source to equal (``source`` is None or its first input): its
    values must equal what the derivation computes.
    """

    label: str  # the name used in messages ("dense_1/kernel:0", "optimizer Adam/iter:0")
    source: TensorRef | None
    output: TensorRef
    how: WriteMode
    derived: Derivation | None = None


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_pairs` found: tensors and bytes checked, and every mismatch."""

    tensors: int
    bytes: int
    mismatches: tuple[str, ...]


def compare_pairs(pairs: Sequence[TensorPair], record: CopyRecord | None = None) -> Comparison:
    """Compare every output tensor with its source; constant memory, any size.

    ``moved`` and ``copied`` tensors must keep dtype, shape, storage options and stored bytes
    (a ``moved`` one that sits where the copy ``record`` proves untouched is checked at both
    ends only); ``encoded`` ones must hold the same dtype, shape and values. A file that cannot
    be read is reported as one mismatch, not raised.
    """
    problems: list[str] = []
    nbytes = 0
    if record is not None and not record.holds_for(record.source, record.copy):
        record = None  # either file changed since the copy: the record proves nothing
    with H5Files() as files:
        raw = _RawCache()
        try:
            for pair in pairs:
                try:
                    why = _compare(pair, files, raw, record)
                except (CkptfixError, KeyError, OSError, RuntimeError, ValueError) as exc:
                    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                    why = f"unreadable ({text})"
                if why:
                    problems.append(f"{pair.label}: {why}")
                nbytes += pair.output.nbytes
        finally:
            raw.close()
    return Comparison(len(pairs), nbytes, tuple(problems))


class _RawCache:
    """Raw readers for pairs of files on disk, opened once per pair."""

    def __init__(self) -> None:
        self._open: dict[tuple[Path, Path], RawFiles] = {}

    def get(self, a: Path, b: Path) -> RawFiles:
        key = (a, b)
        if key not in self._open:
            self._open[key] = RawFiles(a, b)
        return self._open[key]

    def close(self) -> None:
        for r in self._open.values():
            r.close()


def _compare(
    pair: TensorPair, files: H5Files, raw: _RawCache, record: CopyRecord | None
) -> str | None:
    if pair.derived is not None:
        return _compare_derived(pair.derived, pair.output, files)
    a, b = pair.source, pair.output
    if a is None:
        return "no source and no derivation to compare with"
    la, lb = a.location, b.location
    if isinstance(la, H5Location) and isinstance(lb, H5Location):
        ida, fa = files.dataset(la)
        idb, fb = files.dataset(lb)
        rec = record if pair.how == "moved" and _recorded(record, la, lb) else None
        return compare_dataset_ids(
            ida, idb, raw.get(fa.disk, fb.disk), fa.base, fb.base, rec, pair.how != "encoded"
        )
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    if isinstance(la, BundleLocation) and isinstance(lb, BundleLocation):
        if la.size != lb.size:
            return f"size {la.size} != {lb.size}"
        if la.crc32c != lb.crc32c:
            return "crc32c in the index differs from the source's"
        ok, crc = raw.get(Path(la.file), Path(lb.file)).same_bytes_crc(
            la.offset, lb.offset, la.size
        )
        if not ok:
            return "bytes differ"
        return _crc_problem(lb, crc)
    if isinstance(la, BundleLocation) and isinstance(lb, H5Location):
        idb, fb = files.dataset(lb)
        return _compare_bundle_h5(la, h5py.Dataset(idb))
    if isinstance(la, H5Location) and isinstance(lb, BundleLocation):
        ida, fa = files.dataset(la)
        return _compare_bundle_h5(lb, h5py.Dataset(ida))
    return "no way to compare these storages"


def _compare_derived(derived: Derivation, out: TensorRef, files: H5Files) -> str | None:
    """A derived tensor holds exactly the values its derivation computes (dtype and shape too)."""
    want = derived.value(files)
    if out.dtype != dtype_name(want.dtype):
        return f"dtype {dtype_name(want.dtype)} != {out.dtype}"
    if out.shape != tuple(want.shape):
        return f"shape {tuple(want.shape)} != {out.shape}"
    got = read_tensor(out, files)
    if want.tobytes() != np.ascontiguousarray(got).tobytes():
        return f"values differ from {derived.what}"
    return None


def _recorded(record: CopyRecord | None, a: H5Location, b: H5Location) -> bool:
    """True when ``record`` is about the files of ``a`` (source) and ``b`` (its copy)."""
    return (
        record is not None
        and a.member is None
        and b.member is None
        and os.path.abspath(a.file) == os.path.abspath(record.source)
        and os.path.abspath(b.file) == os.path.abspath(record.copy)
    )


def compare_dataset_ids(
    a: h5py.h5d.DatasetID,
    b: h5py.h5d.DatasetID,
    raw: RawFiles | None,
    base_a: int,
    base_b: int,
    record: CopyRecord | None,
    same_storage: bool,
) -> str | None:
    """None when two datasets hold the same dtype, shape (storage options) and bytes.

    With ``raw`` (the two files' bytes on disk) stored bytes are compared at each dataset's
    own offsets; equal values stored differently are then decided by decoding.
    """
    # Low-level ids: h5py's high-level Dataset costs more per tensor than reading a small one.
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    pa, pb = a.get_create_plist(), b.get_create_plist()
    if same_storage and storage_options(a, pa) != storage_options(b, pb):
        return "storage options differ"
    if a.shape is None or 0 in a.shape:
        return None
    if raw is not None:
        ea = storage_extents(a, base_a, pa)
        eb = storage_extents(b, base_b, pb)
        if ea is not None and eb is not None:
            if (
                record is not None
                and ea == eb
                and all(record.untouched(x.offset, x.offset + x.length) for x in ea)
                and raw.sampled(ea)
            ):
                return None  # the same copied bytes, never written since
            if raw.same_extents(ea, eb):
                return None
            # stored bytes differ: decode, since equal values may be stored differently
    return _compare_values(h5py.Dataset(a), h5py.Dataset(b))


def compare_datasets(a: h5py.Dataset, b: h5py.Dataset) -> str | None:
    """None when two datasets hold the same dtype, shape, storage options and bytes."""
    fa, fb = a.file, b.file
    if fa.driver != "sec2" or fb.driver != "sec2":
        return compare_dataset_ids(a.id, b.id, None, 0, 0, None, True)
    with RawFiles(fa.filename, fb.filename) as raw:
        return compare_dataset_ids(
            a.id, b.id, raw, fa.userblock_size, fb.userblock_size, None, True
        )


def _rows(shape: tuple[int, ...], itemsize: int) -> int:
    row = itemsize
    for s in shape[1:]:
        row *= s
    return max(1, BLOCK // max(1, row))


def _compare_values(a: h5py.Dataset, b: h5py.Dataset) -> str | None:
    """Compare decoded values, block by block, in two reused buffers."""
    if a.ndim == 0:
        return None if a[()].tobytes() == b[()].tobytes() else "bytes differ"
    rows = _rows(a.shape, a.dtype.itemsize)
    buf_a = np.empty((min(rows, a.shape[0]),) + a.shape[1:], a.dtype)
    buf_b = np.empty_like(buf_a)
    for start in range(0, a.shape[0], rows):
        stop = min(a.shape[0], start + rows)
        n = stop - start
        a.read_direct(buf_a, np.s_[start:stop], np.s_[0:n])
        b.read_direct(buf_b, np.s_[start:stop], np.s_[0:n])
        tick()
        if not np.array_equal(buf_a[:n].view(np.uint8), buf_b[:n].view(np.uint8)):
            return f"bytes differ in rows {start}:{stop}"
    return None


#: The mismatch of a tensor whose bytes (the source's, copied unchanged) fail their crc32c.
SOURCE_CRC_FAILED = (
    "bytes fail the crc32c recorded in the checkpoint index (the data shard is damaged)"
)


def _crc_problem(loc: BundleLocation, crc: int) -> str | None:
    """A mismatch between a bundle tensor's bytes (their crc32c) and its index entry."""
    from .bundle import mask

    if loc.crc32c is not None and mask(crc) != loc.crc32c:
        return SOURCE_CRC_FAILED
    return None


def _compare_bundle_h5(loc: BundleLocation, ds: h5py.Dataset) -> str | None:
    """Compare a bundle tensor's raw bytes with an HDF5 dataset's values (native order).

    The bundle's bytes are also checked against the crc32c its index records.
    """
    from .bundle import crc32c

    want = ds.dtype.itemsize * int(np.prod(ds.shape, dtype=np.int64))
    if loc.size != want:
        return f"size {loc.size} != {want}"
    if ds.ndim == 0:
        with open(loc.file, "rb") as fh:
            data = os.pread(fh.fileno(), loc.size, loc.offset)
        if data != ds[()].tobytes():
            return "bytes differ"
        return _crc_problem(loc, crc32c(data))
    rows = _rows(ds.shape, ds.dtype.itemsize)
    buf = np.empty((min(rows, ds.shape[0]),) + ds.shape[1:], ds.dtype)
    row_bytes = buf[:1].nbytes
    crc = 0
    with open(loc.file, "rb") as fh:
        for start in range(0, ds.shape[0], rows):
            stop = min(ds.shape[0], start + rows)
            n = stop - start
            ds.read_direct(buf, np.s_[start:stop], np.s_[0:n])
            data = os.pread(fh.fileno(), n * row_bytes, loc.offset + start * row_bytes)
            tick()
            if data != buf[:n].tobytes():
                return f"bytes differ in rows {start}:{stop}"
            crc = crc32c(data, crc)
    return _crc_problem(loc, crc)


def stray_entries(prefix: Path, expected: set[str]) -> list[str]:
    """Tensors of a written TensorFlow checkpoint that no written tensor accounts for."""
    from .bundle import GRAPH_KEY, read_index

    return [k for k in read_index(prefix).entries if k not in expected and k != GRAPH_KEY]


def stray_datasets(loc_file: str, member: str | None, expected: set[str]) -> list[str]:
    """Datasets of a written HDF5 file that no written tensor accounts for."""
    found: list[str] = []
    with H5Files() as files:
        f = files.get(loc_file, member).file
        names: list[bytes] = []
        f.id.links.visit(
            lambda raw, info: names.append(raw) if info.type == h5py.h5l.TYPE_HARD else None,
            info=True,
        )
        for raw_name in names:
            oid = h5py.h5o.open(f.id, raw_name)
            if isinstance(oid, h5py.h5d.DatasetID):
                path = "/" + raw_name.decode("utf-8", "replace")
                if path not in expected:
                    found.append(path)
    return found
