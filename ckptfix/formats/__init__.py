"""One module per checkpoint format, in one registry.

:func:`sniff` tells which format a path holds (reading its first bytes and, for HDF5, its
top-level names once for every format); :func:`writer_for` picks the format that writes a
destination, by its name. Adding a format is one module plus one line in :func:`registry`.
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import h5py

from ..checkpoint import Checkpoint
from ..errors import NotACheckpointError, OutputError
from ..h5util import HDF5_SIGNATURE, damaged_file_errors, open_h5, require_file
from .base import Format, Probe

KERAS2_WEIGHTS = "keras2-h5-weights"
KERAS2_MODEL = "keras2-h5-model"
KERAS3_WEIGHTS = "keras3-weights"
KERAS3_ARCHIVE = "keras3-archive"
TF_CHECKPOINT = "tf-checkpoint"
TF_SAVEDMODEL = "tf-savedmodel"


@functools.cache
def registry() -> tuple[Format, ...]:
    """Every format, in sniffing order (Keras 2 HDF5 before Keras 3's, which is HDF5 too)."""
    from . import keras2_h5, keras3_archive, keras3_weights, savedmodel, tf_bundle

    return (
        keras2_h5.FORMAT,
        keras3_weights.FORMAT,
        keras3_archive.FORMAT,
        tf_bundle.FORMAT,
        savedmodel.FORMAT,
    )


def by_id(fmt: str) -> Format:
    """The format that reads the format id ``fmt``."""
    for f in registry():
        if fmt in f.ids:
            return f
    raise KeyError(fmt)


def sniff(path: str | Path) -> tuple[Format, str]:
    """Say which format ``path`` holds: (the format, its format id). Reads a few bytes.

    Raises:
        NotACheckpointError: anything that no format reads.
    """
    p = Path(path)
    if p.is_dir() or not p.exists():  # a SavedModel or checkpoint folder, a checkpoint prefix
        probe = Probe(p, b"")
        for fmt in registry():
            fid = fmt.sniff(probe)
            if fid is not None:
                return fmt, fid
    require_file(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise NotACheckpointError(
            f"expected a readable file; found {p} cannot be read ({exc.strerror}); "
            "check permissions"
        ) from exc
    probe = Probe(p, head)
    if head == HDF5_SIGNATURE and not _tf_part(p):
        with damaged_file_errors(p), open_h5(p) as f:
            keys = list(f.keys())
            probe.h5_keys = frozenset(keys)
            probe.h5_attrs = frozenset(f.attrs.keys())
            probe.h5_groups = frozenset(k for k in keys if f.get(k, getclass=True) is h5py.Group)
    for fmt in registry():
        fid = fmt.sniff(probe)
        if fid is not None:
            return fmt, fid
    if probe.h5_keys is not None:
        keys5 = sorted(probe.h5_keys)[:5]
        raise NotACheckpointError(
            f"expected a Keras checkpoint (layer_names, model_weights or layers/vars); found an "
            f"HDF5 file without them ({p.name}; top-level keys: {keys5 or 'none'}); "
            "this HDF5 file was not written by Keras"
        )
    raise NotACheckpointError(
        f"expected a Keras checkpoint (HDF5 .h5 or .keras zip); found a file of another kind "
        f"({p.name}, starts with {head[:8]!r}); check the path or the download"
    )


def is_zip(probe: Probe) -> bool:
    """True when the probed file is a zip archive."""
    return probe.head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(probe.path)


def writer_for(dst: str | Path, ck: Checkpoint) -> tuple[Format, str]:
    """The format that writes ``dst`` for ``ck`` (picked by the destination's name).

    Raises:
        OutputError: no format writes such a name for this checkpoint (Keras picks its
            loader by suffix, so the name decides what Keras will read).
    """
    d = Path(dst)
    named = [(f, fid) for f in registry() if (fid := f.writes(d, ck)) is not None]
    for f, fid in named:
        if f.accepts(ck):
            return f, fid
    own = by_id(ck.format)
    suggestion = own.suggest(Path(ck.path)).name
    if named:
        return _refuse_name(d, ck, suggestion, named[0][0].name)
    return _refuse_name(d, ck, suggestion, None)


def _refuse_name(d: Path, ck: Checkpoint, suggestion: str, other: str | None) -> tuple[Format, str]:
    if ck.family == "keras2":
        expected = "an output name ending in .h5 or .hdf5 (Keras 2), .keras or .weights.h5 "
        expected += "(Keras 3)"
    elif ck.format == KERAS3_WEIGHTS:
        expected = "a Keras 3 weights output name ending in .weights.h5"
    elif ck.format == KERAS3_ARCHIVE:
        expected = "a .keras output name for a Keras 3 archive"
    elif ck.format == TF_CHECKPOINT:
        expected = "a Keras 2 .h5 name, or a TensorFlow checkpoint prefix without a suffix"
    else:
        expected = "an output name of a format this checkpoint converts to"
    if other:
        found = f"{d.name!r}, a {other} name, a format this checkpoint cannot be written as"
    else:
        found = f"{d.name!r}, a name no Keras loader reads"
    raise OutputError(f"expected {expected}; found {found}; name it like {suggestion}")


def _tf_part(p: Path) -> bool:
    """True for a TF checkpoint's ``.index`` or ``.data-*`` file (raw bytes, never HDF5)."""
    return p.name.endswith(".index") or ".data-" in p.name
