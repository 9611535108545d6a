"""TensorFlow tensor bundles (``prefix.index`` + ``prefix.data-NNNNN-of-NNNNN``), no TensorFlow.

Every quirk of the format lives here, as HDF5's live in :mod:`ckptfix.h5util`. Read from
TensorFlow's sources (``tensorflow/core/lib/io/format.cc``, ``table_builder.cc`` at commit
``1d03228d52b11ff62c415117fd02376eed4370e0``; ``tensorflow/core/util/tensor_bundle/
tensor_bundle.cc`` at ``00f0938ae85c7dd68b44b4d80a873f42b1dca16a``) and checked against the
files tf_keras 2.21 writes:

- The **index** is a LevelDB-style table: data blocks, an empty metaindex block, an index
  block, and a 48-byte footer (two varint64 block handles, zero padding to 40 bytes, the magic
  ``0xdb4775248b80fb57`` as two little-endian uint32). Every block is followed by a 5-byte
  trailer: the compression type (0 none, 1 snappy: TensorFlow writes bundles uncompressed
  since 1.2; snappy is refused here with a clear message) and the *masked* crc32c of the block
  plus that type byte. A block holds entries ``varint32 shared, varint32 non_shared, varint32
  value_length, key suffix, value`` (keys prefix-compressed against the previous key; a
  *restart point* every 16 entries stores a key whole), then the restart offsets (uint32 each)
  and their count (uint32). Index-block values are block handles (varint64 offset, size).
- The first entry has the empty key: a ``BundleHeaderProto`` (``num_shards``, ``endianness``,
  ``version``). Every other key maps to a ``BundleEntryProto``: ``dtype``, ``shape``,
  ``shard_id``, ``offset``, ``size`` and the masked crc32c of the tensor's bytes; ``slices``
  marks a partitioned tensor (refused here).
- **Data shards** hold raw little-endian tensor bytes at ``offset``. A ``DT_STRING`` tensor is
  stored as the varint64 length of each element, the masked crc32c of those lengths (each as
  uint32), then the bytes; its entry's crc32c covers the lengths (as uint32), the length
  checksum and the bytes. ``DT_VARIANT`` and resource tensors are refused.

crc32c is the ``google-crc32c`` library's (C, about 10 GB/s); protobuf parsing is the
``protobuf`` runtime's, on the messages of :mod:`ckptfix.protos`.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from .errors import CorruptCheckpointError, UnsupportedFormatError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
BLOCK_SIZE = 262144  # table::Options::block_size
RESTART_INTERVAL = 16  # table::Options::block_restart_interval
GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
#: Largest index file read into memory (real ones are KBs to tens of MB).
MAX_INDEX = 1 << 30
#: Largest string tensor read into memory (the object graph: KBs to a few MB).
MAX_STRING = 256 << 20
_MASK_DELTA = 0xA282EAD8
_DATA = re.compile(r"^(?P<prefix>.*)\.data-(?P<shard>\d{5})-of-(?P<num>\d{5})$")

#: TensorFlow ``DataType`` -> (numpy dtype name, bytes per element); 0 for variable-size strings.
DTYPES: dict[int, tuple[str, int]] = {
    1: ("float32", 4),
    2: ("float64", 8),
    3: ("int32", 4),
    4: ("uint8", 1),
    5: ("int16", 2),
    6: ("int8", 1),
    7: ("string", 0),
    8: ("complex64", 8),
    9: ("int64", 8),
    10: ("bool", 1),
    14: ("bfloat16", 2),
    17: ("uint16", 2),
    18: ("complex128", 16),
    19: ("float16", 2),
    22: ("uint32", 4),
    23: ("uint64", 8),
}
#: numpy dtype name -> TensorFlow ``DataType``.
DATA_TYPE_OF = {name: dt for dt, (name, _) in DTYPES.items()}


# --- crc32c -------------------------------------------------------------------------------


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """crc32c of ``data``, extending ``crc``."""
    return int(google_crc32c.extend(crc, data if isinstance(data, bytes) else bytes(data)))


def mask(crc: int) -> int:
    """TensorFlow's (LevelDB's) masked crc, as stored in files."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """The crc a masked value stands for."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- names --------------------------------------------------------------------------------


def index_file(prefix: Path) -> Path:
    """``prefix.index``."""
    return prefix.with_name(prefix.name + ".index")


def data_file(prefix: Path, shard: int, num_shards: int) -> Path:
    """``prefix.data-00000-of-00001``."""
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


def prefix_of(path: Path) -> Path | None:
    """The checkpoint prefix a path names (``x.index``, ``x.data-…``, or ``x`` itself)."""
    name = path.name
    if name.endswith(".index"):
        return path.with_name(name[: -len(".index")])
    m = _DATA.match(name)
    if m is not None:
        return path.with_name(m.group("prefix"))
    if index_file(path).is_file():
        return path
    return None


def prefix_from_state(folder: Path) -> Path | None:
    """The latest checkpoint named by a folder's ``checkpoint`` file (``ModelCheckpoint``'s).

    The file is a text ``CheckpointState``: ``model_checkpoint_path: "ckpt"`` and earlier
    ``all_model_checkpoint_paths``; a relative path is relative to the folder.
    """
    state = folder / "checkpoint"
    try:
        if state.stat().st_size > 1 << 20:
            return None
        text = state.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r'^model_checkpoint_path:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if m is None:
        return None
    name = m.group(1).encode("latin-1", "replace").decode("unicode_escape", "replace")
    p = Path(name)
    return p if p.is_absolute() else folder / p


# --- the table file -----------------------------------------------------------------------


class TableError(ValueError):
    """The table file is damaged (the reader turns it into a CorruptCheckpointError)."""


def _varint(data: bytes, pos: int, end: int, limit: int = 64) -> tuple[int, int]:
    result = shift = 0
    while pos < end and shift < limit:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
    raise TableError("bad varint")


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _block(data: bytes, offset: int, size: int, what: str) -> bytes:
    """One block's contents, after its checksum and compression type are checked."""
    end = offset + size
    if offset < 0 or size < 0 or end + TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise TableError(f"{what} at {offset}+{size} lies beyond the end of the file")
    kind = data[end]
    stored = struct.unpack_from("<I", data, end + 1)[0]
    actual = crc32c(data[end : end + 1], crc32c(data[offset:end]))
    if unmask(stored) != actual:
        raise TableError(f"{what} at {offset} fails its checksum")
    if kind == 1:
        raise UnsupportedFormatError(
            "expected an uncompressed checkpoint index (TensorFlow has written them so since "
            "1.2); found a snappy-compressed block; re-save it with TensorFlow >= 1.2 "
            "(tf.train.load_checkpoint + tf.train.Checkpoint)"
        )
    if kind != 0:
        raise TableError(f"{what} at {offset} has unknown block type {kind}")
    return data[offset:end]


def _entries(block: bytes, what: str) -> Iterable[tuple[bytes, bytes]]:
    """The (key, value) entries of one block, keys decoded from their prefix compression."""
    if len(block) < 4:
        raise TableError(f"{what} is too short")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * restarts
    if restarts == 0 or limit < 0:
        raise TableError(f"{what} has a bad restart count ({restarts})")
    offsets = struct.unpack_from(f"<{restarts}I", block, limit)
    if offsets[0] != 0 or any(o >= max(limit, 1) for o in offsets[1:]):
        raise TableError(f"{what} has restart points outside its entries")
    restart_set = set(offsets)
    pos = 0
    key = b""
    while pos < limit:
        start = pos
        shared, pos = _varint(block, pos, limit, 35)
        non_shared, pos = _varint(block, pos, limit, 35)
        value_len, pos = _varint(block, pos, limit, 35)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise TableError(f"{what} has an entry that runs past its end")
        if start in restart_set and shared != 0:
            raise TableError(f"{what} has a restart point with a shared key prefix")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        yield key, block[pos : pos + value_len]
        pos += value_len


def read_table(data: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a table file, in key order, every block checked.

    Raises:
        CorruptCheckpointError: a damaged table (bad magic, checksum, handle or entry).
        UnsupportedFormatError: a compressed table.
    """
    try:
        return _read_table(data)
    except TableError as exc:
        raise CorruptCheckpointError(
            f"expected a TensorFlow checkpoint index; found {name} damaged ({exc}); "
            "the file is truncated or corrupt"
        ) from exc


def _handle(value: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(value, pos, len(value))
    size, pos = _varint(value, pos, len(value))
    return offset, size, pos


def _read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < FOOTER_SIZE:
        raise TableError(f"{len(data)} bytes, shorter than a table footer")
    footer = data[-FOOTER_SIZE:]
    lo, hi = struct.unpack_from("<II", footer, FOOTER_SIZE - 8)
    if (hi << 32) | lo != MAGIC:
        raise TableError("bad magic number: not a table file")
    _meta_off, _meta_size, pos = _handle(footer)
    index_off, index_size, _ = _handle(footer, pos)
    body = len(data) - FOOTER_SIZE
    if index_off + index_size + TRAILER_SIZE > body:
        raise TableError("the index block lies beyond the end of the file")
    out: list[tuple[bytes, bytes]] = []
    last: bytes | None = None
    for sep, handle in _entries(_block(data, index_off, index_size, "index block"), "index block"):
        off, size, _ = _handle(handle)
        if off + size + TRAILER_SIZE > index_off:
            raise TableError(f"a data block handle ({off}+{size}) points past the data blocks")
        for key, value in _entries(_block(data, off, size, "data block"), f"data block at {off}"):
            if last is not None and key <= last:
                raise TableError("keys are not in increasing order")
            if key > sep:
                raise TableError("a key lies beyond its block's index separator")
            out.append((key, value))
            last = key
    return out


class _BlockBuilder:
    """TensorFlow's ``BlockBuilder``: prefix-compressed keys, a restart point every N entries."""

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.buf = bytearray()
        self.restarts = [0]
        self.counter = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            n = min(len(self.last), len(key))
            while shared < n and self.last[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.counter = 0
        _put_varint(self.buf, shared)
        _put_varint(self.buf, len(key) - shared)
        _put_varint(self.buf, len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last = key
        self.counter += 1

    def size(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def empty(self) -> bool:
        return not self.buf

    def finish(self) -> bytes:
        out = bytes(self.buf) + struct.pack(f"<{len(self.restarts)}I", *self.restarts)
        return out + struct.pack("<I", len(self.restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def write_table(items: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A table file holding ``items`` (sorted by key), built as TensorFlow's ``TableBuilder``."""
    out = bytearray()
    index = _BlockBuilder(1)
    data = _BlockBuilder(RESTART_INTERVAL)
    pending: tuple[int, int] | None = None
    last = b""

    def write_block(contents: bytes) -> tuple[int, int]:
        offset = len(out)
        out.extend(contents)
        out.append(0)  # kNoCompression
        out.extend(struct.pack("<I", mask(crc32c(b"\x00", crc32c(contents)))))
        return offset, len(contents)

    def handle(h: tuple[int, int]) -> bytes:
        b = bytearray()
        _put_varint(b, h[0])
        _put_varint(b, h[1])
        return bytes(b)

    for key, value in items:
        if pending is not None:
            index.add(_shortest_separator(last, key), handle(pending))
            pending = None
        data.add(key, value)
        last = key
        if data.size() >= BLOCK_SIZE:
            pending = write_block(data.finish())
            data = _BlockBuilder(RESTART_INTERVAL)
    if not data.empty():
        pending = write_block(data.finish())
    meta = write_block(_BlockBuilder(RESTART_INTERVAL).finish())
    if pending is not None:
        index.add(_short_successor(last), handle(pending))
    idx = write_block(index.finish())
    footer = bytearray(handle(meta) + handle(idx))
    footer.extend(bytes(40 - len(footer)))
    footer.extend(struct.pack("<II", MAGIC & 0xFFFFFFFF, MAGIC >> 32))
    return bytes(out + footer)


# --- the bundle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tensor of a bundle, from its ``BundleEntryProto``."""

    key: str
    dtype: str  # numpy dtype name, or "string"
    data_type: int  # TensorFlow DataType
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # masked, as stored


@dataclass(frozen=True)
class Index:
    """A bundle's index: header and every entry, in key order."""

    prefix: Path
    num_shards: int
    entries: dict[str, Entry]
    version: tuple[int, int]  # (producer, min_consumer)

    def shard_file(self, shard: int) -> Path:
        return data_file(self.prefix, shard, self.num_shards)


def _bad(name: str, what: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"expected a TensorFlow checkpoint index; found {name} {what}; "
        "the file is truncated or corrupt"
    )


def read_capped(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a metadata file that is read whole, refused above ``limit`` bytes.

    Raises:
        CorruptCheckpointError: the file is larger than ``limit`` (damaged or forged).
        OSError: it cannot be read (the caller says what that means for its format).
    """
    size = path.stat().st_size
    if size > limit:
        raise CorruptCheckpointError(
            f"expected a {what} of at most {limit >> 20} MiB; found {path.name} of {size:,} "
            "bytes; refusing (a damaged or forged file)"
        )
    return path.read_bytes()


def read_index(prefix: Path) -> Index:
    """Read and check a bundle's index (metadata only; no tensor byte is read).

    Checks the table, the header (little-endian, a version this reader knows), every entry
    (known dtype, valid shape, size matching dtype and shape, a shard that exists, bytes within
    it) and refuses partitioned tensors.

    Raises:
        NotACheckpointError, CorruptCheckpointError, UnsupportedFormatError: as the message says.
    """
    from .protos import BundleEntryProto, BundleHeaderProto

    ipath = index_file(prefix)
    name = ipath.name
    try:
        data = read_capped(ipath, MAX_INDEX, "checkpoint index")
    except IsADirectoryError as exc:
        raise _bad(name, "is a folder") from exc
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(
            f"expected the checkpoint index {ipath}; found nothing there; copy the .index file "
            "next to its .data-* files"
        ) from exc
    items = read_table(data, name)
    if not items or items[0][0] != b"":
        raise _bad(name, "without its header entry (the empty key)")
    header = BundleHeaderProto()
    _parse(header, items[0][1], name, "the header")
    if header.endianness != 0:
        raise UnsupportedFormatError(
            f"expected a little-endian checkpoint; found {name} written on a big-endian machine; "
            "restore it with TensorFlow on that machine and save it again"
        )
    v = header.version
    if v.min_consumer > 1 or 1 in list(v.bad_consumers) or v.producer < 0:
        raise UnsupportedFormatError(
            f"expected a tensor bundle of version 1; found {name} needs a reader of version "
            f"{v.min_consumer} (producer {v.producer}); it was written by a newer TensorFlow "
            "than ckptfix knows"
        )
    if not 1 <= header.num_shards <= 1 << 20:
        raise _bad(name, f"with {header.num_shards} data shards in its header")
    num = int(header.num_shards)
    shard_sizes: dict[int, int] = {}
    entries: dict[str, Entry] = {}
    for raw_key, value in items[1:]:
        try:
            key = raw_key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(name, f"with a key that is not UTF-8 ({raw_key[:40]!r})") from exc
        e = BundleEntryProto()
        _parse(e, value, name, f"entry {key!r}")
        entries[key] = _entry(e, key, prefix, num, shard_sizes, name)
    return Index(prefix, num, entries, (int(v.producer), int(v.min_consumer)))


def _parse(msg: object, value: bytes, name: str, what: str) -> None:
    from google.protobuf.message import DecodeError

    try:
        msg.ParseFromString(value)  # type: ignore[attr-defined]
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _bad(name, f"with {what} unparseable ({exc})") from exc


def _entry(e: object, key: str, prefix: Path, num: int, sizes: dict[int, int], name: str) -> Entry:
    p: object = e
    dt = int(p.dtype)  # type: ignore[attr-defined]
    if list(p.slices):  # type: ignore[attr-defined]
        raise UnsupportedFormatError(
            f"expected whole tensors; found {key!r} in {name} stored as slices (a partitioned "
            "variable); ckptfix does not convert partitioned checkpoints"
        )
    if dt not in DTYPES:
        from .protos import DATA_TYPES

        dname = next((k for k, v in DATA_TYPES.items() if v == dt % 100), f"DataType {dt}")
        raise UnsupportedFormatError(
            f"expected numeric or string tensors; found {key!r} in {name} of dtype {dname}; "
            "ckptfix does not read that dtype (variants, resources, quantized and 8-bit float "
            "tensors are not Keras weights)"
        )
    shape_pb = p.shape  # type: ignore[attr-defined]
    dims = tuple(int(d.size) for d in shape_pb.dim)
    if shape_pb.unknown_rank or any(d < 0 for d in dims) or len(dims) > 64:
        raise _bad(name, f"with an invalid shape {dims} for {key!r}")
    dtype, itemsize = DTYPES[dt]
    shard, offset, size = int(p.shard_id), int(p.offset), int(p.size)  # type: ignore[attr-defined]
    count = 1
    for d in dims:
        count *= d
    if itemsize and size != count * itemsize:
        raise _bad(
            name,
            f"with {key!r} of shape {dims} ({dtype}) claiming {size:,} bytes, not "
            f"{count * itemsize:,}",
        )
    if not 0 <= shard < num:
        raise _bad(name, f"with {key!r} in shard {shard} of {num}")
    if shard not in sizes:
        data = data_file(prefix, shard, num)
        try:
            sizes[shard] = data.stat().st_size
        except OSError as exc:
            raise CorruptCheckpointError(
                f"expected the data shard {data.name} next to {name}; found none; copy every "
                f".data-* file of the checkpoint"
            ) from exc
    if offset < 0 or size < 0 or offset + size > sizes[shard]:
        raise CorruptCheckpointError(
            f"expected {key!r} within its data shard ({offset:,}+{size:,} bytes); found "
            f"{data_file(prefix, shard, num).name} holds {sizes[shard]:,} bytes; the shard is "
            "truncated or the index is corrupt"
        )
    crc = int(p.crc32c)  # type: ignore[attr-defined]
    return Entry(key, dtype, dt, dims, shard, offset, size, crc)


# --- string tensors -----------------------------------------------------------------------


def read_string_scalar(index: Index, entry: Entry) -> bytes:
    """The value of a scalar ``DT_STRING`` tensor (the object graph), its checksums checked.

    Raises:
        CorruptCheckpointError: not a scalar string, or bytes that fail their checksums.
    """
    shard = index.shard_file(entry.shard)
    if entry.dtype != "string" or entry.shape != ():
        raise CorruptCheckpointError(
            f"expected {entry.key} to be a scalar string in {index_file(index.prefix).name}; "
            f"found {entry.dtype} of shape {entry.shape}; the checkpoint is corrupt"
        )
    if entry.size > MAX_STRING:
        raise CorruptCheckpointError(
            f"expected {entry.key} of at most {MAX_STRING >> 20} MiB; found {entry.size:,} "
            "bytes; refusing (a damaged or forged checkpoint)"
        )
    with open(shard, "rb") as fh:
        raw = os.pread(fh.fileno(), entry.size, entry.offset)
    try:
        length, pos = _varint(raw, 0, len(raw))
    except TableError as exc:
        raise _bad_string(entry, shard) from exc
    if length > MAX_STRING or pos + 4 + length != len(raw):
        raise _bad_string(entry, shard)
    lens = struct.pack("<I", length) if length <= 0xFFFFFFFF else struct.pack("<Q", length)
    crc = crc32c(lens)
    stored = raw[pos : pos + 4]
    if unmask(struct.unpack("<I", stored)[0]) != crc:
        raise _bad_string(entry, shard)
    value = raw[pos + 4 :]
    if mask(crc32c(value, crc32c(stored, crc))) != entry.crc32c:
        raise _bad_string(entry, shard)
    return value


def _bad_string(entry: Entry, shard: Path) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"expected {entry.key} in {shard.name} to match its checksum; found other bytes; the "
        "data shard is corrupt"
    )


def encode_string_scalar(value: bytes) -> tuple[bytes, int]:
    """The on-disk bytes of a scalar ``DT_STRING`` tensor and its entry's masked crc32c."""
    head = bytearray()
    _put_varint(head, len(value))
    crc = crc32c(struct.pack("<I", len(value)))
    stored = struct.pack("<I", mask(crc))
    return bytes(head) + stored + value, mask(crc32c(value, crc32c(stored, crc)))


def entry_bytes(
    data_type: int, shape: Sequence[int], shard: int, offset: int, size: int, crc: int
) -> bytes:
    """A serialized ``BundleEntryProto``."""
    from .protos import BundleEntryProto

    e = BundleEntryProto(dtype=data_type, shard_id=shard, offset=offset, size=size, crc32c=crc)
    for d in shape:
        e.shape.dim.add(size=d)
    return bytes(e.SerializeToString())


def index_bytes(num_shards: int, entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A whole ``.index`` file: the header, then ``entries`` (key, serialized entry) sorted."""
    from .protos import BundleHeaderProto

    header = BundleHeaderProto(num_shards=num_shards, endianness=0)
    header.version.producer = 1
    items = [(b"", bytes(header.SerializeToString()))]
    items += sorted((k.encode("utf-8"), v) for k, v in entries)
    return write_table(items)
