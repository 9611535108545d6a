"""HDF5 quirks in one place: chunked attributes, bytes vs str, opening files safely."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .checkpoint import H5Location, StorageOptions, TensorRef
from .deadline import tick
from .errors import CkptfixError, CorruptCheckpointError, NotACheckpointError

# Keras splits a string-list attribute into name0, name1, ... past this many bytes.
HDF5_OBJECT_HEADER_LIMIT = 64512
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def decode(value: Any) -> str:
    """Return ``value`` as ``str`` (HDF5 attributes come back as bytes, np.bytes_ or str)."""
    if isinstance(value, bytes | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptCheckpointError(
                "expected UTF-8 text in an attribute; found undecodable bytes "
                f"{bytes(value)[:40]!r}; "
                "the file is damaged or not a Keras checkpoint"
            ) from exc
    if isinstance(value, str):
        return value
    if isinstance(value, np.str_):
        return str(value)
    raise CorruptCheckpointError(
        f"expected a text attribute; found {type(value).__name__}; "
        "the file is damaged or not a Keras checkpoint"
    )


def has_attr_list(obj: h5py.HLObject, name: str) -> bool:
    """True when ``name`` or its chunked form ``name0`` is an attribute of ``obj``."""
    return name in obj.attrs or f"{name}0" in obj.attrs


def read_attr_list(obj: h5py.HLObject, name: str) -> list[str]:
    """Read a string-list attribute written by Keras, chunked (``name0..N``) or not.

    An absent attribute reads as an empty list; empty lists are stored by Keras as an
    empty float array, which also reads as ``[]``.
    """
    chunks: list[Any] = []
    try:
        if name in obj.attrs:
            chunks.append(obj.attrs[name])
        else:
            k = 0
            while f"{name}{k}" in obj.attrs:
                chunks.append(obj.attrs[f"{name}{k}"])
                k += 1
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"expected a readable attribute {name!r} on {obj.name}; found an error ({exc}); "
            "the file is damaged"
        ) from exc
    out: list[str] = []
    for chunk in chunks:
        arr = np.asarray(chunk)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size == 0:
            continue
        if arr.dtype.kind in "fiu":
            raise CorruptCheckpointError(
                f"expected a list of names in attribute {name!r} of {obj.name}; found numbers; "
                "the file is damaged or not a Keras checkpoint"
            )
        out.extend(decode(v) for v in arr.ravel())
    return out


def write_attr_list(obj: h5py.HLObject, name: str, values: Sequence[str]) -> None:
    """Write a string-list attribute the way Keras does (bytes, chunked past 64,512 bytes)."""
    for key in [k for k in obj.attrs if k == name or _is_chunk_key(k, name)]:
        del obj.attrs[key]
    data = np.asarray([v.encode("utf-8") for v in values]) if values else np.zeros((0,), "f8")
    if data.nbytes <= HDF5_OBJECT_HEADER_LIMIT:
        obj.attrs[name] = data
        return
    num_chunks = 1
    chunked = np.array_split(data, num_chunks)
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in chunked):
        num_chunks += 1
        chunked = np.array_split(data, num_chunks)
    for k, chunk in enumerate(chunked):
        obj.attrs[f"{name}{k}"] = chunk


def _is_chunk_key(key: str, name: str) -> bool:
    return key.startswith(name) and key[len(name) :].isdigit()


def read_text_attr(obj: h5py.HLObject, name: str) -> str | None:
    """Read a scalar text attribute (``model_config``, ``keras_version``…) or None."""
    if name not in obj.attrs:
        return None
    try:
        value = obj.attrs[name]
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"expected a readable attribute {name!r}; found an error ({exc}); the file is damaged"
        ) from exc
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise CorruptCheckpointError(
                f"expected one text value in attribute {name!r}; found an array of {value.size}; "
                "the file is damaged"
            )
        value = value.ravel()[0]
    return decode(value)


def read_json_attr(obj: h5py.HLObject, name: str) -> Any | None:
    """Read a JSON attribute as data (never code) or None when absent."""
    text = read_text_attr(obj, name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"expected JSON in attribute {name!r}; found text that does not parse ({exc}); "
            "the file is damaged"
        ) from exc


def is_hdf5(path: Path) -> bool:
    """True when the file starts with the HDF5 signature (at offset 0; userblocks aside)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head == HDF5_SIGNATURE or h5py.is_hdf5(str(path))


def require_file(p: Path) -> None:
    """Refuse a path that is missing or a folder, with the one-line message users see.

    Raises:
        NotACheckpointError: nothing at ``p``, or a folder.
    """
    if not p.exists():
        raise NotACheckpointError(
            f"expected a checkpoint file; found nothing at {p}; check the path"
        )
    if p.is_dir():
        raise NotACheckpointError(
            f"expected a checkpoint file; found a folder {p} (not a SavedModel either); pass a file"
        )


class ZipMember(io.RawIOBase):
    """A read-only window onto one stored (uncompressed) zip member: no copy in memory.

    Keras writes ``.keras`` archives without compression, so ``model.weights.h5`` can be
    opened by HDF5 in place, at its offset inside the archive.
    """

    def __init__(self, path: Path, offset: int, size: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self.offset, self.size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self._pos, self.size)[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n = max(0, min(len(view), self.size - self._pos))
        if n == 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self.offset + self._pos)
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def member_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts in the archive (after its local header).

    Raises:
        CorruptCheckpointError: the local header is missing or lies about its size.
    """
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise CorruptCheckpointError(
            f"expected a zip entry header for {info.filename} in {path.name}; found none at "
            f"byte {info.header_offset}; the archive is damaged"
        )
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little")
    start += int.from_bytes(head[28:30], "little")
    if start + info.compress_size > path.stat().st_size:
        raise CorruptCheckpointError(
            f"expected {info.filename} of {path.name} to lie inside the archive; found it runs "
            "past the end; the archive is truncated"
        )
    return start


#: Name prefix of the temporary files that hold compressed zip members while HDF5 reads them.
MEMBER_TEMP_PREFIX = ".ckptfix-member-"


@contextmanager
def open_h5_member(path: Path, member: str) -> Iterator[tuple[h5py.File, Path, int]]:
    """Open the HDF5 ``member`` of the zip ``path``: (file, file on disk, where it starts).

    A stored member is read in place (:class:`ZipMember`); a compressed one is streamed into
    a temporary file first. Either way memory stays constant, and the member's global heaps
    are checked before HDF5 reads them.

    Raises:
        CorruptCheckpointError: the member is missing, damaged, or not HDF5.
    """
    with zipfile.ZipFile(path) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError as exc:
            raise CorruptCheckpointError(
                f"expected {member} in the archive {path.name}; found no such member; "
                "the archive is damaged"
            ) from exc
        tmp: Path | None = None
        if info.compress_type == zipfile.ZIP_STORED:
            disk, start = path, member_offset(path, info)
            size = info.file_size
        else:
            # named after this process, so that a worker killed at its deadline can be cleaned up
            prefix = f"{MEMBER_TEMP_PREFIX}{os.getpid()}-"
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".h5")
            tmp = disk = Path(name)
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    tick()
            start, size = 0, info.file_size
    try:
        with open(disk, "rb") as fh:
            for lo, hi in ((start, start + size),):
                _scan_region(fh.fileno(), lo, hi, start + size, f"{member} of {path.name}")
        window = ZipMember(disk, start, size)
        try:
            f = h5py.File(window, "r")
        except OSError as exc:
            window.close()
            raise CorruptCheckpointError(
                f"expected an HDF5 {member} in {path.name}; found one HDF5 cannot open "
                f"({str(exc).splitlines()[0][:120]}); the archive is damaged"
            ) from exc
        try:
            yield f, disk, start
        finally:
            f.close()
            window.close()
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextmanager
def open_h5(path: str | Path, mode: str = "r") -> Iterator[h5py.File]:
    """Open an HDF5 file, turning h5py's low-level failures into one clear error."""
    p = Path(path)
    if mode == "r":
        require_file(p)
        check_global_heaps_file(p)
    try:
        f = h5py.File(p, mode)
    except OSError as exc:
        if mode == "r" and not is_hdf5(p):
            raise NotACheckpointError(
                f"expected an HDF5 Keras checkpoint; found a file that is not HDF5 ({p.name}); "
                "check the path or the download"
            ) from exc
        raise CorruptCheckpointError(
            f"expected a readable HDF5 file; found one HDF5 cannot open ({p.name}: "
            f"{str(exc).splitlines()[0][:120]}); the file is truncated or damaged"
        ) from exc
    try:
        yield f
    finally:
        f.close()


def dataset_info(ds: h5py.Dataset) -> tuple[tuple[int, ...], str, int]:
    """(shape, dtype name, nbytes) of a dataset, from metadata only.

    Raises:
        CorruptCheckpointError: ``ds`` is not a dataset, or it declares more bytes than it
            stores without compression (an absurd shape that would take forever to read).
    """
    ref = tensor_ref(ds, "", None)
    return ref.shape, ref.dtype, ref.nbytes


def tensor_ref(
    ds: h5py.Dataset, file: str, member: str | None, path: str | None = None
) -> TensorRef:
    """A handle to the dataset ``ds`` of ``file`` (a zip ``member`` of it): metadata only.

    ``path`` is where the dataset was found (``ds.name`` names its first link, which for a
    dataset reached through a link to another file is a path in that file).

    Raises:
        CorruptCheckpointError: ``ds`` is not a dataset, or it declares more bytes than it
            stores without compression (an absurd shape that would take forever to read).
    """
    if not isinstance(ds, h5py.Dataset):
        raise CorruptCheckpointError(
            f"expected a tensor dataset at {getattr(ds, 'name', ds)}; found "
            f"{type(ds).__name__}; the file is damaged"
        )
    shape = tuple(int(s) for s in ds.shape) if ds.shape is not None else ()
    dtype = ds.dtype
    n = 1
    for s in shape:
        n *= s
    nbytes = n * dtype.itemsize
    # Keras writes every tensor in full; an unfiltered dataset storing fewer bytes than its
    # shape declares is truncated or forged (reading it would yield fill values, or take hours).
    dsid = ds.id
    dcpl = dsid.get_create_plist()
    if nbytes and dcpl.get_nfilters() == 0 and dcpl.get_external_count() == 0:
        stored = dsid.get_storage_size()
        if stored < nbytes:
            raise CorruptCheckpointError(
                f"expected {ds.name} to store its {nbytes:,} bytes (shape {shape}); found "
                f"{stored:,} bytes stored; the file is truncated or damaged"
            )
    return TensorRef(
        location=H5Location(file, path if path is not None else str(ds.name), member),
        dtype=dtype_name(dtype),
        shape=shape,
        nbytes=nbytes,
        storage=storage_options(dsid, dcpl),
    )


_LAYOUT_KINDS = {
    h5py.h5d.COMPACT: "compact",
    h5py.h5d.CONTIGUOUS: "contiguous",
    h5py.h5d.CHUNKED: "chunked",
}


def storage_options(dsid: h5py.h5d.DatasetID, dcpl: Any = None) -> StorageOptions:
    """Everything besides the stored bytes that decides what a dataset reads as.

    Layout, chunk shape, the filter pipeline (id, flags, parameters) and, for chunked data
    (where missing chunks read as it), the fill value.
    """
    dcpl = dcpl or dsid.get_create_plist()
    layout = dcpl.get_layout()
    kind = _LAYOUT_KINDS.get(layout, "virtual")
    if dcpl.get_external_count() > 0:
        kind = "external"
    if layout != h5py.h5d.CHUNKED:
        return StorageOptions(kind)
    filters = tuple(
        (int(fid), int(flags), *(int(v) for v in values))
        for fid, flags, values in (dcpl.get_filter(i)[:3] for i in range(dcpl.get_nfilters()))
    )
    fill = np.zeros((1,), dsid.dtype)
    dcpl.get_fill_value(fill)
    return StorageOptions(kind, tuple(int(c) for c in dcpl.get_chunk()), filters, fill.tobytes())


def dtype_name(dtype: np.dtype) -> str:
    """A short dtype name (``float32``; ``bfloat16`` style names kept as HDF5 gives them).

    A byte order other than the machine's is kept in the name (``>f4``): the same values
    stored the other way round are other bytes.
    """
    if dtype.names is not None:
        return str(dtype)
    if dtype.byteorder not in ("=", "|") and dtype.byteorder != _NATIVE:
        return str(dtype.str)
    return str(dtype.name)


_NATIVE = "<" if np.little_endian else ">"


# Exceptions that h5py, zipfile and zlib raise on damaged bytes (HDF5 C errors surface as
# RuntimeError/OSError/KeyError/ValueError/TypeError; a damaged deflate stream as zlib.error).
_LOW_LEVEL = (RuntimeError, OSError, KeyError, ValueError, TypeError, EOFError, NotImplementedError)
_LOW_LEVEL_MODULES = ("h5py", "zipfile", "zlib", "_compression", "json")


@contextmanager
def damaged_file_errors(path: str | Path) -> Iterator[None]:
    """Turn an error raised *inside* h5py/zipfile while reading ``path`` into one clear error.

    Only exceptions whose innermost frame lies in those libraries are translated, so a bug in
    ckptfix itself still surfaces as itself; OS errors with an errno (disk full, permissions)
    pass through for the caller to report.
    """
    import zlib

    try:
        yield
    except CkptfixError:
        raise
    except (*_LOW_LEVEL, zlib.error) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = tb.tb_frame.f_code.co_filename if tb is not None else ""
        if not isinstance(exc, zlib.error) and not any(
            f"{m}/" in where or f"{m}.py" in where or f"{m}.pyx" in where
            for m in _LOW_LEVEL_MODULES
        ):
            raise
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CorruptCheckpointError(
            f"expected a readable Keras checkpoint; found {Path(path).name} cannot be read "
            f"({type(exc).__name__}: {first}); the file is truncated or damaged"
        ) from exc


# --- global heaps: the one damage HDF5 cannot survive -------------------------------------
# Variable-length strings (layer_names, weight_names, vars "name" attrs) live in global heap
# collections: "GCOL", version 1, 3 reserved bytes, 8-byte collection size, then objects of
# (2-byte index, 2-byte refcount, 4 reserved, 8-byte size, data padded to 8). HDF5 1.14 walks
# the objects with ``p = begin + need``; an object with index 0 and size 0 (zeroed bytes)
# makes ``need`` 0 and the walk never ends, inside C code that nothing can interrupt.
_GCOL = b"GCOL\x01\x00\x00\x00"
_GCOL_MIN = 4096  # H5HG_MINSIZE
_heaps_checked: dict[tuple[str, int, int, int], None] = {}


def check_global_heaps(data: Any, name: str, base: int = 0) -> None:
    """Refuse HDF5 bytes whose global heap would make HDF5 loop forever.

    Raises:
        CorruptCheckpointError: a global heap collection has an empty object header.
    """
    end = len(data)
    pos = data.find(_GCOL)
    while pos != -1:
        size = int.from_bytes(data[pos + 8 : pos + 16], "little")
        if _GCOL_MIN <= size <= end - pos:
            p = 16
            while p + 16 <= size:
                idx = int.from_bytes(data[pos + p : pos + p + 2], "little")
                obj = int.from_bytes(data[pos + p + 8 : pos + p + 16], "little")
                need = 16 + ((obj + 7) & ~7) if idx else obj
                if need == 0:
                    raise CorruptCheckpointError(
                        f"expected readable name lists in {name}; found a damaged global heap "
                        f"at byte {base + pos + p:,}; the file is damaged (HDF5 would never finish "
                        "reading it)"
                    )
                p += need
        pos = data.find(_GCOL, pos + 8)


def check_global_heaps_file(path: Path) -> None:
    """:func:`check_global_heaps` on a file, once per file version, in constant memory.

    Only the bytes that are not tensor storage are read: the extents of contiguous and
    chunked datasets are taken from the file's structure (no attribute is decoded, so nothing
    touches a global heap), and every other byte range is scanned with ``pread`` in 4 MiB
    windows. A file whose structure cannot be listed is scanned whole.
    """
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _heaps_checked or st.st_size == 0:
            return
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return  # unreadable: h5py says so with its own error next
    with fh:
        for start, end in _metadata_regions(path, st.st_size):
            _scan_region(fh.fileno(), start, end, st.st_size, path.name)
    _heaps_checked[key] = None


def mark_heaps_checked(path: Path) -> None:
    """Skip the global-heap scan for ``path``: a file HDF5 wrote here from a checked source.

    Its tensor ranges are the source's, already checked, and every byte HDF5 added is
    HDF5's own well-formed metadata.
    """
    try:
        st = path.stat()
    except OSError:
        return
    _heaps_checked[(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)] = None


_SCAN_WINDOW = 4 << 20
_MAX_CHUNKS_LISTED = 4096


def _metadata_regions(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges of ``path`` that hold no dataset storage (all of it when unsure)."""
    extents: list[tuple[int, int]] = []
    try:
        with h5py.File(path, "r") as f:
            names: list[bytes] = []
            f.id.links.visit(
                lambda raw, info: names.append(raw) if info.type == h5py.h5l.TYPE_HARD else None,
                info=True,
            )
            for raw in names:
                oid = h5py.h5o.open(f.id, raw)
                if isinstance(oid, h5py.h5d.DatasetID):
                    extents.extend(_dataset_extents(oid))
    except Exception:  # noqa: BLE001 - any doubt: scan every byte
        return [(0, size)]
    regions: list[tuple[int, int]] = []
    pos = 0
    for lo, hi in sorted(extents):
        if lo > pos:
            regions.append((pos, min(lo, size)))
        pos = max(pos, hi)
    if pos < size:
        regions.append((pos, size))
    return regions


def _dataset_extents(oid: Any) -> list[tuple[int, int]]:
    layout = oid.get_create_plist().get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        off = oid.get_offset()
        return [] if off is None else [(off, off + oid.get_storage_size())]
    if layout == h5py.h5d.CHUNKED:
        n = oid.get_num_chunks()
        if n > _MAX_CHUNKS_LISTED:
            return []
        out = []
        for i in range(n):
            info = oid.get_chunk_info(i)
            if info.byte_offset is not None:
                out.append((info.byte_offset, info.byte_offset + info.size))
        return out
    return []  # compact data lives in the object header: metadata, scanned


def _scan_region(fd: int, start: int, end: int, file_size: int, name: str) -> None:
    """Find global heap collections in ``[start, end)`` and check each one."""
    overlap = len(_GCOL) - 1
    pos = start
    while pos < end:
        window = os.pread(fd, min(_SCAN_WINDOW, end - pos) + overlap, pos)
        if not window:
            return
        hit = window.find(_GCOL)
        while hit != -1:
            at = pos + hit
            if at < end:
                head = os.pread(fd, 16, at)
                csize = int.from_bytes(head[8:16], "little")
                if _GCOL_MIN <= csize <= file_size - at:
                    data = os.pread(fd, csize, at)
                    check_global_heaps(data, name, base=at)
            hit = window.find(_GCOL, hit + 1)
        pos += _SCAN_WINDOW
        tick()
