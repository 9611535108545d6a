"""Fuzz ckptfix's ``inspect`` and ``convert`` with corrupted real checkpoints.

    python bench/fuzz.py                      # 3000 cases, seed 0, 2 worker processes
    python bench/fuzz.py --cases 10000 --seed 7 --workers 4 --json summary.json

Every case is reproducible from its number: case ``n`` of seed ``s`` takes the fixture, the
mutation and its parameters from ``random.Random(f"{s}:{n}")``. The seed files are the real
parallel checkpoints in ``fixtures/`` (Keras 2 weights-only and full-model ``.h5`` written by
tf_keras, Keras 3 ``.weights.h5`` and ``.keras`` written by Keras 3). A case mutates one copy
at the byte level (truncate, flip bits, zero or scramble a block, break the superblock), at the
HDF5 level (attributes of the wrong type or missing, JSON configs broken, absurd shapes, link
cycles, external links, names with odd bytes, huge chunked attributes) or at the zip level
(members missing, broken, duplicated, traversing paths), then runs ``inspect`` and ``convert``
through the library and checks that each either succeeds or raises a
:class:`ckptfix.CkptfixError` with a documented exit code, within a time bound, without touching
the input and without leaving output behind after a failure. The calls run as users run them:
each file parsed in a worker process under ckptfix's deadline (``--deadline`` seconds, passed as
``timeout=``), so a file on which HDF5 loops forever is refused with exit 5
(``DeadlineExceededError``, counted as ``deadline_refusals``). A case whose fuzz worker dies or
stops answering beyond the harness's own bound is a *hang*, and a bug.

The summary counts outcomes per mutation and lists every bug (crash, hang, leftover output,
modified input) with the command that reproduces it (``--only N``). Exit status: 0 when no bug
was found, 1 otherwise. The in-suite test ``tests/test_fuzz.py`` runs a few hundred cases of the
same generator.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
#: Exit codes a CkptfixError may carry (README "Safety"); anything else is a bug.
DOCUMENTED_CODES = {1, 3, 4, 5, 6, 7}


# --- seed files -----------------------------------------------------------------------------


def seed_files(root: Path = FIXTURES, *, max_bytes: int = 1 << 20) -> list[Path]:
    """The real parallel checkpoints under ``root`` (files over ``max_bytes`` left out).

    TensorFlow-format seeds are a checkpoint prefix (``tf/*/parallel/ckpt``: its ``.index`` and
    ``.data-*`` files) and a SavedModel folder (``tf/*/savedmodel``), sized by their files.
    """
    found = sorted(root.glob("keras2/*/parallel_*.h5")) + sorted(root.glob("keras3/*/wrapper.*"))
    found += sorted(p.with_suffix("") for p in root.glob("tf/*/parallel/ckpt.index"))
    found += sorted(root.glob("tf/*/savedmodel"))
    return [p for p in found if _bytes(p) <= max_bytes]


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in tf_files(path)) if is_tf(path) else path.stat().st_size


def is_tf(path: Path) -> bool:
    """A TensorFlow checkpoint prefix or a SavedModel folder (not one file)."""
    return path.is_dir() or (not path.exists() and path.with_name(path.name + ".index").exists())


def tf_files(path: Path) -> list[Path]:
    """Every file of a TF checkpoint prefix or a SavedModel folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return sorted(
        p
        for p in path.parent.iterdir()
        if p.name.startswith(path.name + ".")
        and p.name[len(path.name) :][:6] in (".index", ".data-")
    )


def suffix_of(path: Path) -> str:
    if is_tf(path):  # a prefix converts to a prefix, a SavedModel to a Keras 2 .h5
        return ".h5" if path.is_dir() else ""
    name = path.name
    for suf in (".weights.h5", ".keras", ".h5", ".hdf5"):
        if name.endswith(suf):
            return suf
    return path.suffix


# --- byte-level mutations -------------------------------------------------------------------

Mutation = Callable[[random.Random, Path], str]


def _rw(path: Path, fn: Callable[[bytearray], str]) -> str:
    data = bytearray(path.read_bytes())
    what = fn(data)
    path.write_bytes(bytes(data))
    return what


def m_truncate(rng: random.Random, path: Path) -> str:
    size = path.stat().st_size
    cut = rng.choice([0, 1, 7, 8, 96, 512, 2048, rng.randrange(size), size - 1, size // 2])
    with open(path, "r+b") as fh:
        fh.truncate(max(0, min(cut, size - 1)))
    return f"truncate to {cut} bytes"


def m_flip_bits(rng: random.Random, path: Path) -> str:
    def go(d: bytearray) -> str:
        n = rng.choice([1, 2, 8, 64])
        offs = [rng.randrange(len(d)) for _ in range(n)]
        for o in offs:
            d[o] ^= 1 << rng.randrange(8)
        return f"flip {n} bits (first at {offs[0]})"

    return _rw(path, go)


def m_zero_block(rng: random.Random, path: Path) -> str:
    def go(d: bytearray) -> str:
        n = rng.choice([8, 64, 512, 4096])
        o = rng.randrange(len(d))
        d[o : o + n] = bytes(len(d[o : o + n]))
        return f"zero {n} bytes at {o}"

    return _rw(path, go)


def m_random_block(rng: random.Random, path: Path) -> str:
    def go(d: bytearray) -> str:
        n = rng.choice([4, 32, 256, 2048])
        o = rng.randrange(len(d))
        d[o : o + n] = rng.randbytes(len(d[o : o + n]))
        return f"scramble {n} bytes at {o}"

    return _rw(path, go)


def m_header(rng: random.Random, path: Path) -> str:
    def go(d: bytearray) -> str:
        o = rng.randrange(8, min(len(d), 128))
        d[o] = rng.randrange(256)
        return f"header byte {o} set"

    return _rw(path, go)


def m_splice(rng: random.Random, path: Path) -> str:
    def go(d: bytearray) -> str:
        n = rng.choice([16, 256, 4096])
        a, b = rng.randrange(len(d)), rng.randrange(len(d))
        chunk = d[a : a + n]
        d[b : b + len(chunk)] = chunk
        return f"copy {len(chunk)} bytes from {a} to {b}"

    return _rw(path, go)


BYTE_MUTATIONS: dict[str, Mutation] = {
    "truncate": m_truncate,
    "flip_bits": m_flip_bits,
    "zero_block": m_zero_block,
    "random_block": m_random_block,
    "header": m_header,
    "splice": m_splice,
}


# --- HDF5-level mutations -------------------------------------------------------------------


def _all_objects(f: h5py.File) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = [("/", f)]
    f.visititems(lambda name, obj: found.append((name, obj)))
    return found


def _groups(f: h5py.File) -> list[h5py.Group]:
    return [o for _, o in _all_objects(f) if isinstance(o, h5py.Group)]


def _datasets(f: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    return [(n, o) for n, o in _all_objects(f) if isinstance(o, h5py.Dataset)]


def _attr_holders(f: h5py.File) -> list[tuple[Any, str]]:
    out = []
    for _, obj in _all_objects(f):
        for key in obj.attrs:
            out.append((obj, key))
    return out


ODD_NAMES = [
    "",
    "/",
    ".",
    "..",
    "../../etc/passwd",
    "a/../b",
    "dense_1/kernel:0/",
    "x" * 5000,
    "ü☃ \t\n",
    "[/bold][red]markup",
    "\x1b[2J\x1b[31mterminal",
    "lambda_1",
    "model_weights",
]

BAD_VALUES: list[Any] = [
    7,
    3.5,
    np.arange(6, dtype="i4").reshape(2, 3),
    np.zeros((0,), "f8"),
    np.asarray([b"\xff\xfe\x00bad"]),
    b"\xff\xfe",
    "not json {",
    "[]",
    "null",
    '"a string"',
    "[" * 100000 + "]" * 100000,
    '{"class_name": 5, "config": {"layers": 7}}',
    '{"class_name": "Functional", "config": {"layers": [{"name": 3}, null, []]}}',
    '{"class_name": "Functional", "config": {"layers": [{"class_name": "Functional", '
    '"name": "model_1", "config": {"layers": "x"}}]}}',
    np.asarray([b"a", b"b"] * 20000),
]


def _set_attr(obj: Any, key: str, value: Any) -> None:
    if key in obj.attrs:
        del obj.attrs[key]
    obj.attrs[key] = value


def h_attr_wrong(rng: random.Random, f: h5py.File) -> str:
    holders = _attr_holders(f)
    obj, key = rng.choice(holders)
    value = rng.choice(BAD_VALUES)
    _set_attr(obj, key, value)
    return f"attr {obj.name}@{key} := {type(value).__name__}{getattr(value, 'shape', '')}"


def h_attr_delete(rng: random.Random, f: h5py.File) -> str:
    obj, key = rng.choice(_attr_holders(f))
    del obj.attrs[key]
    return f"attr {obj.name}@{key} deleted"


def h_odd_names(rng: random.Random, f: h5py.File) -> str:
    from ckptfix.h5util import read_attr_list

    holders = [(o, k) for o, k in _attr_holders(f) if k in ("layer_names", "weight_names")]
    if not holders:
        holders = [(o, k) for o, k in _attr_holders(f) if k == "name"]
        obj, key = rng.choice(holders)
        name = rng.choice(ODD_NAMES)
        _set_attr(obj, key, name)
        return f"attr {obj.name}@{key} := {name[:20]!r}"
    obj, key = rng.choice(holders)
    names = read_attr_list(obj, key) or ["x"]
    i = rng.randrange(len(names))
    odd = rng.choice(ODD_NAMES + [names[rng.randrange(len(names))]])
    names[i] = odd
    raw = np.asarray([n.encode("utf-8") for n in names])
    if rng.random() < 0.2:
        raw = np.asarray([n.encode("utf-8") for n in names] + [b"\xff\xfe"])
    _set_attr(obj, key, raw)
    return f"{obj.name}@{key}[{i}] := {odd[:20]!r}"


def h_huge_chunks(rng: random.Random, f: h5py.File) -> str:
    from ckptfix.h5util import read_attr_list

    holders = [(o, k) for o, k in _attr_holders(f) if k in ("layer_names", "weight_names")]
    if not holders:
        g = rng.choice(_groups(f))
        for k in range(2000):
            g.attrs[f"name{k}"] = f"junk{k}"
        return f"2000 junk attributes on {g.name}"
    obj, key = rng.choice(holders)
    names = read_attr_list(obj, key) or ["x"]
    del obj.attrs[key]
    n = rng.choice([500, 3000])
    for k in range(n):  # every name repeated, one chunk each
        obj.attrs[f"{key}{k}"] = np.asarray([names[k % len(names)].encode()])
    return f"{obj.name}@{key} split into {n} chunks"


def h_absurd_shape(rng: random.Random, f: h5py.File) -> str:
    dsets = _datasets(f)
    name, ds = rng.choice(dsets)
    parent, base = ds.parent, name.rsplit("/", 1)[-1]
    del parent[base]
    kind = rng.choice(["huge", "empty", "scalar", "string", "compound", "group"])
    if kind == "huge":
        parent.create_dataset(base, shape=(1 << 40, 1 << 10), dtype="f4", chunks=(1, 1024))
    elif kind == "empty":
        parent.create_dataset(base, shape=(0, 5), dtype="f4")
    elif kind == "scalar":
        parent.create_dataset(base, data=np.float32(1))
    elif kind == "string":
        parent.create_dataset(base, data=np.asarray([b"abc", b"de"]))
    elif kind == "compound":
        parent.create_dataset(base, data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
    else:
        parent.create_group(base)
    return f"dataset {name} replaced by {kind}"


def h_links(rng: random.Random, f: h5py.File) -> str:
    kind = rng.choice(
        ["hard_cycle", "soft_cycle", "soft_dangling", "external", "external_real", "external_data"]
    )
    groups = [g for g in _groups(f) if g.name != "/"] or [f]
    dsets = _datasets(f)
    if kind == "hard_cycle":
        g = rng.choice(groups)
        g["cycle"] = g
        return f"hard link cycle {g.name}/cycle -> {g.name}"
    name, ds = rng.choice(dsets)
    parent, base = ds.parent, name.rsplit("/", 1)[-1]
    del parent[base]
    if kind == "soft_cycle":
        parent[base] = h5py.SoftLink(f"/{name}")
    elif kind == "soft_dangling":
        parent[base] = h5py.SoftLink("/nowhere/at/all")
    elif kind == "external":
        parent[base] = h5py.ExternalLink("/etc/hostname", "/x")
    elif kind == "external_real":  # a real HDF5 file elsewhere on disk
        victim = FIXTURES / "keras2" / "dense_bn" / "parallel_weights.h5"
        parent[base] = h5py.ExternalLink(str(victim), "/model/dense/kernel:0")
    else:  # the tensor's bytes read from another file
        victim = FIXTURES / "keras2" / "dense_bn" / "parallel_weights.h5"
        n = max(1, int(np.prod(ds.shape or (1,)))) * ds.dtype.itemsize
        parent.create_dataset(base, ds.shape, ds.dtype, external=[(str(victim), 0, n)])
        return f"{kind}: dataset {name} stored in {victim.name}"
    return f"{kind}: dataset {name} replaced by a link"


def h_dup_layer(rng: random.Random, f: h5py.File) -> str:
    from ckptfix.h5util import read_attr_list, write_attr_list

    holders = [(o, k) for o, k in _attr_holders(f) if k in ("layer_names", "weight_names")]
    if not holders:
        g = rng.choice([g for g in _groups(f) if g.name != "/"])
        g.parent.move(g.name.rsplit("/", 1)[-1], "renamed_" + g.name.rsplit("/", 1)[-1])
        return f"group {g.name} renamed"
    obj, key = rng.choice(holders)
    names = read_attr_list(obj, key)
    if not names:
        names = ["ghost"]
    i = rng.randrange(len(names))
    op = rng.choice(["dup", "drop", "swap", "ghost"])
    if op == "dup":
        names.insert(i, names[i])
    elif op == "drop":
        names.pop(i)
    elif op == "swap":
        j = rng.randrange(len(names))
        names[i], names[j] = names[j], names[i]
    else:
        names.append("ghost_layer")
    write_attr_list(obj, key, names)
    return f"{obj.name}@{key}: {op} at {i}"


H5_MUTATIONS: dict[str, Callable[[random.Random, h5py.File], str]] = {
    "attr_wrong": h_attr_wrong,
    "attr_delete": h_attr_delete,
    "odd_names": h_odd_names,
    "huge_chunks": h_huge_chunks,
    "absurd_shape": h_absurd_shape,
    "links": h_links,
    "names_list": h_dup_layer,
}


def _h5_mutator(fn: Callable[[random.Random, h5py.File], str]) -> Mutation:
    def go(rng: random.Random, path: Path) -> str:
        with h5py.File(path, "r+") as f:
            return fn(rng, f)

    return go


# --- zip-level mutations (.keras) -----------------------------------------------------------


def _rezip(path: Path, edit: Callable[[dict[str, bytes]], list[tuple[str, bytes]]]) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    items = edit(members)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # duplicate member names are one of the mutations
        for name, data in items:
            zf.writestr(name, data)


def z_member(rng: random.Random, path: Path) -> str:
    op = rng.choice(
        ["drop", "config_garbage", "config_value", "weights_bytes", "dup", "traversal", "h5"]
    )
    what = [op]

    def edit(m: dict[str, bytes]) -> list[tuple[str, bytes]]:
        items = list(m.items())
        if op == "drop":
            victim = rng.choice(list(m))
            what.append(victim)
            return [(n, d) for n, d in items if n != victim]
        if op == "config_garbage":
            cfg = m.get("config.json", b"{}")
            cut = rng.randrange(len(cfg))
            return [(n, cfg[:cut] if n == "config.json" else d) for n, d in items]
        if op == "config_value":
            value = rng.choice([v for v in BAD_VALUES if isinstance(v, str)])
            return [(n, value.encode() if n == "config.json" else d) for n, d in items]
        if op == "weights_bytes":
            w = bytearray(m.get("model.weights.h5", b""))
            if w:
                o = rng.randrange(len(w))
                w[o : o + 64] = rng.randbytes(len(w[o : o + 64]))
            return [(n, bytes(w) if n == "model.weights.h5" else d) for n, d in items]
        if op == "dup":
            return items + [(n, d) for n, d in items if n == "config.json"]
        if op == "traversal":
            return items + [("../../escaped.txt", b"x"), ("/abs/path.txt", b"y")]
        # h5: a structural mutation of the inner weights file
        with tempfile.TemporaryDirectory() as tmp:
            inner = Path(tmp) / "w.h5"
            inner.write_bytes(m["model.weights.h5"])
            name = rng.choice(sorted(H5_MUTATIONS))
            what.append(name + ": " + _h5_mutator(H5_MUTATIONS[name])(rng, inner))
            data = inner.read_bytes()
        return [(n, data if n == "model.weights.h5" else d) for n, d in items]

    _rezip(path, edit)
    return " ".join(what)


# --- TensorFlow-format mutations (checkpoint prefixes, SavedModel folders) -----------------


def _bundle_of(path: Path) -> Path:
    """The tensor bundle prefix of a case: the prefix itself, or a SavedModel's variables."""
    return path / "variables" / "variables" if path.is_dir() else path


def _rewrite_entries(prefix: Path, edit: Callable[[list[tuple[bytes, bytes]]], str]) -> str:
    """Parse the index, let ``edit`` change its entries, write a valid table back."""
    from ckptfix import bundle

    index = bundle.index_file(prefix)
    items = bundle.read_table(index.read_bytes(), index.name)
    what = edit(items)
    index.write_bytes(bundle.write_table(items))
    return what


def t_truncate_index(rng: random.Random, path: Path) -> str:
    index = _bundle_of(path).with_name(_bundle_of(path).name + ".index")
    data = index.read_bytes()
    cut = rng.choice([0, 1, 47, 48, 49, rng.randrange(len(data)), len(data) - 1])
    index.write_bytes(data[:cut])
    return f"index truncated to {cut} of {len(data)} bytes"


def t_table_block(rng: random.Random, path: Path) -> str:
    """Corrupt a table block; half the time its checksum is fixed up so parsing meets it."""
    import struct

    from ckptfix import bundle

    index = _bundle_of(path).with_name(_bundle_of(path).name + ".index")
    data = bytearray(index.read_bytes())
    body = len(data) - bundle.FOOTER_SIZE
    # the first data block starts at 0; its trailer sits right before the metaindex block
    footer = bytes(data[body:])
    meta_off, _, _ = bundle._handle(footer)
    end = meta_off - bundle.TRAILER_SIZE  # the first block's contents end here
    n = rng.choice([1, 2, 8, 32])
    for _ in range(n):
        o = rng.randrange(max(end, 1))
        data[o] = rng.randrange(256)
    fixed = rng.random() < 0.5
    if fixed and end > 0:
        crc = bundle.mask(bundle.crc32c(bytes(data[: end + 1])))
        data[end + 1 : end + 5] = struct.pack("<I", crc)
    if rng.random() < 0.2:  # or the footer itself
        o = body + rng.randrange(bundle.FOOTER_SIZE)
        data[o] = rng.randrange(256)
    index.write_bytes(bytes(data))
    return f"{n} bytes of the first table block changed (crc {'fixed up' if fixed else 'stale'})"


def t_entry(rng: random.Random, path: Path) -> str:
    """One BundleEntryProto lies: offset, size, shard, dtype, shape (huge) or garbage bytes."""
    from ckptfix.protos import BundleEntryProto

    field = rng.choice(["offset", "size", "shard_id", "dtype", "huge_shape", "neg_dim", "bytes"])

    def edit(items: list[tuple[bytes, bytes]]) -> str:
        i = rng.randrange(1, len(items))
        key, value = items[i]
        e = BundleEntryProto()
        e.ParseFromString(value)
        if field == "offset":
            e.offset = rng.choice([-1, e.offset + 1, 1 << 40, 0])
        elif field == "size":
            e.size = rng.choice([0, e.size + 4, 1 << 50, -5])
        elif field == "shard_id":
            e.shard_id = rng.choice([1, 7, -1])
        elif field == "dtype":
            e.dtype = rng.choice([0, 7, 20, 21, 99, 9])
        elif field == "huge_shape":
            del e.shape.dim[:]
            for d in rng.choice([(1 << 40, 1 << 30), (1 << 62, 4), (3,) * 70]):
                e.shape.dim.add(size=d)
        elif field == "neg_dim":
            e.shape.dim.add(size=-3)
        else:
            items[i] = (key, rng.randbytes(len(value)))
            return f"entry {key.decode()!r}: random bytes"
        items[i] = (key, e.SerializeToString())
        return f"entry {key.decode()!r}: {field}"

    return _rewrite_entries(_bundle_of(path), edit)


def t_header(rng: random.Random, path: Path) -> str:
    from ckptfix.protos import BundleHeaderProto

    def edit(items: list[tuple[bytes, bytes]]) -> str:
        h = BundleHeaderProto()
        h.ParseFromString(items[0][1])
        op = rng.choice(["shards", "big", "version", "drop", "garbage"])
        if op == "shards":
            h.num_shards = rng.choice([0, 2, 1 << 30])
        elif op == "big":
            h.endianness = 1
        elif op == "version":
            h.version.min_consumer = 7
        elif op == "drop":
            items.pop(0)
            return "header entry removed"
        else:
            items[0] = (b"", rng.randbytes(12))
            return "header garbage"
        items[0] = (b"", h.SerializeToString())
        return f"header {op}"

    return _rewrite_entries(_bundle_of(path), edit)


def t_shard(rng: random.Random, path: Path) -> str:
    prefix = _bundle_of(path)
    shard = prefix.with_name(prefix.name + ".data-00000-of-00001")
    op = rng.choice(["missing", "truncate", "flip", "empty"])
    if op == "missing":
        shard.unlink()
    elif op == "truncate":
        data = shard.read_bytes()
        shard.write_bytes(data[: rng.randrange(len(data))])
    elif op == "empty":
        shard.write_bytes(b"")
    else:
        data = bytearray(shard.read_bytes())
        o = rng.randrange(len(data))
        data[o] ^= 1 << rng.randrange(8)
        shard.write_bytes(bytes(data))
    return f"data shard {op}"


def t_graph(rng: random.Random, path: Path) -> str:
    """Break the object graph (re-encoded with a valid checksum, so it is parsed)."""
    from ckptfix import bundle
    from ckptfix.protos import BundleEntryProto, TrackableObjectGraph

    prefix = _bundle_of(path)
    idx = bundle.read_index(prefix)
    entry = idx.entries[bundle.GRAPH_KEY]
    g = TrackableObjectGraph()
    g.ParseFromString(bundle.read_string_scalar(idx, entry))
    n = len(g.nodes)
    op = rng.choice(
        ["garbage", "child_out", "cycle", "drop_children", "bad_key", "slot_out", "empty"]
    )
    if op == "garbage":
        raw = rng.randbytes(rng.choice([1, 16, 300]))
    else:
        node = g.nodes[rng.randrange(n)]
        if op == "child_out":
            node.children.add(node_id=n + 5, local_name="layer-99")
        elif op == "cycle":
            g.nodes[0].children.add(node_id=0, local_name="layer_with_weights-0")
            for k in range(n):
                g.nodes[k].children.add(node_id=0, local_name="cell")
        elif op == "drop_children":
            del g.nodes[0].children[:]
        elif op == "bad_key":
            for k in range(n):
                for a in g.nodes[k].attributes:
                    a.checkpoint_key = "no/such/key"
                    break
        elif op == "slot_out":
            for k in range(n):
                g.nodes[k].slot_variables.add(
                    original_variable_node_id=-4, slot_name="m", slot_variable_node_id=n + 1
                )
                break
        else:
            del g.nodes[:]
        raw = g.SerializeToString()
    value, crc = bundle.encode_string_scalar(raw)
    shard = idx.shard_file(0)
    offset = shard.stat().st_size
    with open(shard, "ab") as fh:
        fh.write(value)

    def edit(items: list[tuple[bytes, bytes]]) -> str:
        for i, (key, v) in enumerate(items):
            if key == bundle.GRAPH_KEY.encode():
                e = BundleEntryProto()
                e.ParseFromString(v)
                e.offset, e.size, e.crc32c = offset, len(value), crc
                items[i] = (key, e.SerializeToString())
        return f"object graph: {op}"

    return _rewrite_entries(prefix, edit)


def t_savedmodel(rng: random.Random, path: Path) -> str:
    """A SavedModel's own files: metadata truncated, flipped, JSON broken, files missing."""
    from ckptfix.protos import SavedMetadata

    if not path.is_dir():
        return t_entry(rng, path)
    meta = path / "keras_metadata.pb"
    op = rng.choice(["truncate", "flip", "json", "no_metadata", "no_variables", "no_pb", "paths"])
    if op == "truncate":
        data = meta.read_bytes()
        meta.write_bytes(data[: rng.randrange(len(data))])
    elif op == "flip":
        data = bytearray(meta.read_bytes())
        for _ in range(8):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        meta.write_bytes(bytes(data))
    elif op in ("json", "paths"):
        md = SavedMetadata()
        md.ParseFromString(meta.read_bytes())
        node = md.nodes[rng.randrange(len(md.nodes))]
        if op == "json":
            node.metadata = rng.choice([v for v in BAD_VALUES if isinstance(v, str)])
        else:
            node.node_path = rng.choice(["root.layer-999", "nowhere", "root" + ".x" * 300, ""])
        meta.write_bytes(md.SerializeToString())
    elif op == "no_metadata":
        meta.unlink()
    elif op == "no_variables":
        shutil.rmtree(path / "variables")
    else:
        (path / "saved_model.pb").write_bytes(rng.randbytes(64))
    return f"SavedModel: {op}"


TF_MUTATIONS: dict[str, Mutation] = {
    "tf_truncate_index": t_truncate_index,
    "tf_table_block": t_table_block,
    "tf_entry": t_entry,
    "tf_header": t_header,
    "tf_shard": t_shard,
    "tf_graph": t_graph,
    "tf_savedmodel": t_savedmodel,
}


# --- one case -------------------------------------------------------------------------------


@dataclass
class Case:
    """A generated input: where it is, which seed file it came from, what was done to it."""

    number: int
    seed_file: str
    mutation: str
    detail: str
    path: Path


def mutations_for(path: Path) -> list[str]:
    if is_tf(path):
        names = list(TF_MUTATIONS)
        return names if path.is_dir() else [n for n in names if n != "tf_savedmodel"]
    names = list(BYTE_MUTATIONS)
    if suffix_of(path) == ".keras":
        names += ["zip"] * 4
    else:
        names += list(H5_MUTATIONS)
    return names


def make_case(seed: int, number: int, seeds: list[Path], workdir: Path) -> Case:
    """Write case ``number`` of ``seed`` into ``workdir`` (deterministic)."""
    rng = random.Random(f"{seed}:{number}")
    src = rng.choice(seeds)
    name = rng.choice(mutations_for(src))
    path = workdir / f"case{number}{suffix_of(src)}"
    if is_tf(src):
        path = workdir / (f"case{number}.savedmodel" if src.is_dir() else f"case{number}")
        if src.is_dir():
            shutil.copytree(src, path)
        else:
            for f in tf_files(src):
                shutil.copyfile(f, workdir / (path.name + f.name[len(src.name) :]))
    else:
        shutil.copyfile(src, path)
    if name in TF_MUTATIONS:
        detail = TF_MUTATIONS[name](rng, path)
    elif name in BYTE_MUTATIONS:
        detail = BYTE_MUTATIONS[name](rng, path)
    elif name == "zip":
        detail = z_member(rng, path)
    else:
        detail = _h5_mutator(H5_MUTATIONS[name])(rng, path)
    return Case(number, str(src.relative_to(ROOT)), name, detail, path)


@dataclass
class Outcome:
    """What ``inspect`` and ``convert`` did with one case."""

    number: int
    seed_file: str
    mutation: str
    detail: str
    inspect: str  # "ok", "exit N", "crash: Type: msg", "hang"
    convert: str
    seconds: float
    bugs: list[str]
    deadline: list[str] = field(default_factory=list)  # calls refused at ckptfix's deadline


class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def sha256(path: Path) -> str:
    """Hash of a file, or of every file (names and bytes) of a TF prefix or SavedModel folder."""
    if not is_tf(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in tf_files(path):
        h.update(str(f.relative_to(path if path.is_dir() else path.parent)).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def remove_case(path: Path) -> None:
    """Delete a generated case (a file, a TF prefix's files, or a folder)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif is_tf(path):
        for f in tf_files(path):
            f.unlink()
    else:
        path.unlink()


def _call(fn: Callable[[], Any], timeout: float) -> tuple[str, Any]:
    from ckptfix.errors import CkptfixError

    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return "ok", fn()
    except _Timeout:
        return "hang", None
    except CkptfixError as exc:
        msg = str(exc)
        if "\n" in msg or not msg:
            return f"crash: CkptfixError message not one line: {msg[:200]!r}", exc
        return f"exit {int(exc.exit_code)}", exc
    except Exception as exc:  # noqa: BLE001 - a crash is what we look for
        frames = [
            f"{Path(fr.filename).name}:{fr.lineno} {fr.name}"
            for fr in traceback.extract_tb(exc.__traceback__)
            if "ckptfix" in fr.filename and "fuzz" not in fr.filename
        ]
        where = " < ".join(reversed(frames[-3:]))
        return f"crash: {type(exc).__name__}: {str(exc)[:120]} @ {where}", exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def default_deadline(timeout: float) -> float:
    """ckptfix's deadline for a harness bound of ``timeout`` s per call (well inside it)."""
    return min(10.0, timeout / 2)


def run_case(
    case: Case, outdir: Path, timeout: float = 20.0, deadline: float | None = None
) -> Outcome:
    """Run inspect and convert on ``case`` as a user would (a worker process under ckptfix's
    deadline, ``timeout=deadline``); the harness bounds each call by ``timeout`` too."""
    from ckptfix import DeadlineExceededError, convert_checkpoint, inspect_checkpoint

    limit = default_deadline(timeout) if deadline is None else deadline
    start = time.perf_counter()
    before = sha256(case.path)
    bugs: list[str] = []
    ins, ins_exc = _call(lambda: inspect_checkpoint(case.path, timeout=limit), timeout)
    outdir.mkdir(parents=True, exist_ok=True)
    deadline_hits = ["inspect"] if isinstance(ins_exc, DeadlineExceededError) else []
    targets = [suffix_of(case.path)]
    if is_tf(case.path) and not case.path.is_dir():
        targets.append(".h5")  # a TF checkpoint converts to both its own format and .h5
    conv = "ok"
    for k, suffix in enumerate(targets):
        dst = outdir / f"out{k}{suffix}"
        # weights-only files go through layout inference (the default; deeper than a refusal).
        status, result = _call(
            lambda d=dst: convert_checkpoint(case.path, d, timeout=limit), timeout
        )
        if isinstance(result, DeadlineExceededError):
            deadline_hits.append(f"convert to {suffix}")
        written = sorted(p.name for p in outdir.iterdir() if _output_of(p, dst))
        left = sorted(p.name for p in outdir.iterdir() if not _output_of(p, dst))
        if status == "ok":
            if not written:
                bugs.append("convert returned but wrote no file")
            elif not getattr(result, "verified", False):
                bugs.append("convert returned an unverified result")
        elif written:
            bugs.append(f"output left behind after failure: {written}")
        if left:
            bugs.append(f"stray files in the output folder: {left}")
        for p in outdir.iterdir():
            p.unlink()
        if conv == "ok" or status.startswith(("crash", "hang")):
            conv = status
    for what, status in (("inspect", ins), ("convert", conv)):
        if status.startswith("crash") or status == "hang":
            bugs.append(f"{what}: {status}")
        elif status.startswith("exit ") and int(status[5:]) not in DOCUMENTED_CODES:
            bugs.append(f"{what}: undocumented {status}")
    if sha256(case.path) != before:
        bugs.append("input modified")
    return Outcome(
        case.number,
        case.seed_file,
        case.mutation,
        case.detail,
        ins,
        conv,
        time.perf_counter() - start,
        bugs,
        deadline_hits,
    )


def _output_of(p: Path, dst: Path) -> bool:
    """True for ``dst`` itself or, for a TF checkpoint prefix, one of its files."""
    return p == dst or (
        dst.suffix == ""
        and p.name[len(dst.name) :].startswith((".index", ".data-"))
        and p.name.startswith(dst.name)
    )


def run_numbers(
    seed: int,
    numbers: list[int],
    workdir: Path,
    timeout: float,
    max_bytes: int = 1 << 20,
    deadline: float | None = None,
) -> list[Outcome]:
    """Generate and run the given case numbers in this process."""
    seeds = seed_files(max_bytes=max_bytes)
    outs = []
    for n in numbers:
        case = make_case(seed, n, seeds, workdir)
        outs.append(run_case(case, workdir / "out", timeout, deadline))
        remove_case(case.path)
    return outs


# --- the large run: worker processes with a watchdog ----------------------------------------


def _worker(
    seed: int, numbers: list[int], timeout: float, max_bytes: int, deadline: float | None
) -> int:
    warnings.simplefilter("ignore")
    seeds = seed_files(max_bytes=max_bytes)
    with tempfile.TemporaryDirectory(prefix="ckptfix-fuzz-") as tmp:
        work = Path(tmp)
        for n in numbers:
            sys.stdout.write(f"BEGIN {n}\n")
            sys.stdout.flush()
            try:
                case = make_case(seed, n, seeds, work)
            except Exception as exc:  # noqa: BLE001 - a mutation h5py refused: not a case
                out = Outcome(n, "", "skipped", repr(exc)[:200], "skipped", "skipped", 0.0, [])
            else:
                out = run_case(case, work / "out", timeout, deadline)
                remove_case(case.path)
            sys.stdout.write("END " + json.dumps(asdict(out)) + "\n")
            sys.stdout.flush()
    return 0


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    queue: list[int]
    since: float  # when the current case began (or the last line came)
    current: int | None = None  # the case it is running
    buf: bytes = b""


def run_parallel(
    seed: int,
    numbers: list[int],
    workers: int,
    timeout: float,
    max_bytes: int = 1 << 20,
    deadline: float | None = None,
) -> list[Outcome]:
    """Run cases in ``workers`` child processes; a child silent for 3×timeout is a hang.

    A worker prints ``BEGIN n`` before case ``n`` and ``END {json}`` after it; one that dies
    or stops answering inside a case is recorded against that case and replaced by a fresh
    worker that goes on with the next case of its queue.
    """
    results: list[Outcome] = []
    live: dict[int, _Worker] = {}

    def start(queue: list[int]) -> None:
        if not queue:
            return
        cmd = [sys.executable, __file__, "--worker", "--seed", str(seed), "--timeout"]
        cmd += [str(timeout), "--max-bytes", str(max_bytes), "--numbers"]
        if deadline is not None:
            cmd[-1:-1] = ["--deadline", str(deadline)]
        cmd.append(",".join(map(str, queue)))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert p.stdout is not None
        live[p.stdout.fileno()] = _Worker(p, queue, time.monotonic())

    def lost(fd: int, why: str) -> None:
        w = live.pop(fd)
        if w.proc.poll() is None:
            os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.wait()
        assert w.proc.stdout is not None
        w.proc.stdout.close()
        if w.current is not None:
            results.append(_dead(seed, w.current, max_bytes, why.format(rc=w.proc.returncode)))
            start(w.queue[w.queue.index(w.current) + 1 :])

    for k in range(workers):
        start(numbers[k::workers])
    done = 0
    while live:
        ready, _, _ = select.select(list(live), [], [], 1.0)
        now = time.monotonic()
        for fd in ready:
            w = live[fd]
            chunk = os.read(fd, 1 << 16)  # raw reads: no line hides in a Python buffer
            if not chunk:
                lost(fd, "process died (rc {rc})")
                continue
            w.buf += chunk
            *lines, w.buf = w.buf.split(b"\n")
            for raw in lines:
                line = raw.decode()
                if line.startswith("BEGIN "):
                    w.current, w.since = int(line.split()[1]), now
                elif line.startswith("END "):
                    results.append(Outcome(**json.loads(line[4:])))
                    w.current, w.since = None, now
                    done += 1
                    if done % 250 == 0:
                        sys.stderr.write(f"  {done}/{len(numbers)} cases\n")
        for fd, w in list(live.items()):
            if w.current is not None and now - w.since > 3 * timeout:
                lost(fd, "hang (no answer in 3x the time bound, killed)")
    return sorted(results, key=lambda o: o.number)


def _dead(seed: int, number: int, max_bytes: int, why: str) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        case = make_case(seed, number, seed_files(max_bytes=max_bytes), Path(tmp))
    return Outcome(number, case.seed_file, case.mutation, case.detail, why, why, 0.0, [why])


def summarize(outcomes: list[Outcome], seed: int, seconds: float) -> dict[str, Any]:
    """Counts per mutation and outcome, and the list of bugs."""
    per: dict[str, Counter[str]] = {}
    for o in outcomes:
        c = per.setdefault(o.mutation, Counter())
        c["cases"] += 1
        c[f"inspect {o.inspect.split(':')[0]}"] += 1
        c[f"convert {o.convert.split(':')[0]}"] += 1
    bugs = [
        {
            "case": o.number,
            "seed_file": o.seed_file,
            "mutation": f"{o.mutation}: {o.detail}",
            "bugs": o.bugs,
            "repro": f"python bench/fuzz.py --seed {seed} --only {o.number}",
        }
        for o in outcomes
        if o.bugs
    ]
    return {
        "seed": seed,
        "cases": len(outcomes),
        "seconds": round(seconds, 1),
        "slowest_case_s": round(max((o.seconds for o in outcomes), default=0.0), 2),
        "hangs": sum(any("hang" in b for b in o.bugs) for o in outcomes),
        "deadline_refusals": {
            "cases": sum(bool(o.deadline) for o in outcomes),
            "list": [
                {
                    "case": o.number,
                    "mutation": f"{o.mutation}: {o.detail}",
                    "calls": o.deadline,
                    "repro": f"python bench/fuzz.py --seed {seed} --only {o.number}",
                }
                for o in outcomes
                if o.deadline
            ],
        },
        "converted": sum(o.convert == "ok" for o in outcomes),
        "refused_with_code": dict(
            Counter(o.convert for o in outcomes if o.convert.startswith("exit"))
        ),
        "per_mutation": {k: dict(v) for k, v in sorted(per.items())},
        "bug_cases": len(bugs),
        "bugs": bugs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--timeout", type=float, default=20.0, help="the harness's bound, seconds per call"
    )
    ap.add_argument(
        "--deadline",
        type=float,
        help="ckptfix's timeout= per call (default: min(10, --timeout / 2))",
    )
    ap.add_argument("--only", type=int, help="run one case, print its outcome")
    ap.add_argument("--max-bytes", type=int, default=1 << 20, help="largest seed file used")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--numbers", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        numbers = [int(n) for n in args.numbers.split(",")]
        return _worker(args.seed, numbers, args.timeout, args.max_bytes, args.deadline)
    if args.only is not None:
        with tempfile.TemporaryDirectory() as tmp:
            (o,) = run_numbers(
                args.seed, [args.only], Path(tmp), args.timeout, args.max_bytes, args.deadline
            )
        print(json.dumps(asdict(o), indent=2))
        return 1 if o.bugs else 0
    start = time.perf_counter()
    numbers = list(range(args.cases))
    outcomes = run_parallel(
        args.seed, numbers, args.workers, args.timeout, args.max_bytes, args.deadline
    )
    summary = summarize(outcomes, args.seed, time.perf_counter() - start)
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 1 if summary["bugs"] else 0


if __name__ == "__main__":
    sys.exit(main())
