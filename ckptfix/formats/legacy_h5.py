"""Keras 2 legacy HDF5: weights-only (``save_weights``) and full-model (``save``) files.

Reading is metadata only. Converting copies the source file with the kernel (no tensor passes
through Python), then rewrites the copy's metadata in place: the nested template's datasets are
*moved* (HDF5 link moves) under one group per template layer, the slice and merge groups are
deleted, and ``layer_names`` / ``weight_names`` / ``model_config`` are rewritten. Every tensor
keeps its bytes, dtype, shape, chunking and compression because it is the same dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import formats
from ..detect import ConfigLayer, Pattern, config_layers, find_pattern, model_name
from ..errors import (
    AmbiguousTemplateError,
    CorruptCheckpointError,
    LayoutError,
    LayoutUnknownError,
    NotACheckpointError,
    NothingToConvertError,
    ReferenceMismatchError,
)
from ..h5util import (
    dataset_info,
    has_attr_list,
    mark_heaps_checked,
    open_h5,
    read_attr_list,
    read_json_attr,
    read_text_attr,
    write_attr_list,
)
from ..layout import (
    MAKE_EXACT,
    TemplateLayout,
    from_config,
    from_model,
    from_weight_lists,
    infer_from_names,
    load_reference,
)
from ..report import (
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    OptimizerState,
    TensorEntry,
    VerificationResult,
)
from ..storage import (
    CopyRecord,
    RawFiles,
    WriteLog,
    copy_file,
    file_identity,
    keep_record,
    storage_extents,
    storage_options,
    take_record,
)

_MOVED = "__ckptfix_template__"
_VERIFY_BLOCK = 4 << 20  # decoded comparison: two buffers of this size


def sniff_hdf5(path: Path) -> str:
    """Tell the Keras format of an HDF5 file from its root (metadata only)."""
    with open_h5(path) as f:
        if "model_weights" in f and isinstance(f["model_weights"], h5py.Group):
            return formats.KERAS2_MODEL
        if has_attr_list(f, "layer_names"):
            return formats.KERAS2_WEIGHTS
        if any(k in f for k in ("layers", "vars", "optimizer", "_layer_checkpoint_dependencies")):
            return formats.KERAS3_WEIGHTS
        keys = list(f.keys())[:5]
        raise NotACheckpointError(
            f"expected a Keras checkpoint (layer_names, model_weights or layers/vars); found an "
            f"HDF5 file without them ({path.name}; top-level keys: {keys or 'none'}); "
            "this HDF5 file was not written by Keras"
        )


@dataclass
class LegacyCheckpoint:
    """Everything ckptfix needs from a Keras 2 file, read from metadata only."""

    path: Path
    format: str
    root: str  # "/" or "/model_weights"
    layer_names: list[str]
    weights: dict[str, list[str]]  # layer -> weight names, in stored order
    tensors: dict[str, list[TensorEntry]]  # layer -> tensors, same order
    keras_version: str | None
    backend: str | None
    model_config: Any | None
    training_config: Any | None
    optimizer_names: list[str] = field(default_factory=list)
    optimizer_tensors: list[TensorEntry] = field(default_factory=list)
    optimizer_iterations: int | None = None

    @property
    def cfg_layers(self) -> list[ConfigLayer]:
        return config_layers(self.model_config) if self.model_config is not None else []


def read_checkpoint(path: str | Path) -> LegacyCheckpoint:
    """Read a Keras 2 ``.h5`` file's structure (no tensor data).

    Raises:
        NotACheckpointError: not HDF5, or HDF5 without Keras structure.
        CorruptCheckpointError: Keras structure that is inconsistent or unreadable.
    """
    p = Path(path)
    fmt = formats.detect_format(p)
    if fmt not in (formats.KERAS2_WEIGHTS, formats.KERAS2_MODEL):
        raise NotACheckpointError(
            f"expected a Keras 2 .h5 checkpoint; found {fmt} ({p.name}); "
            "use the Keras 3 converter (ckptfix convert handles it)"
        )
    with open_h5(p) as f:
        try:
            return _read_open(p, f, fmt)
        except (KeyError, OSError, RuntimeError, TypeError, ValueError) as exc:
            if isinstance(exc, CorruptCheckpointError | NotACheckpointError):
                raise
            raise CorruptCheckpointError(
                f"expected a readable Keras 2 checkpoint; found broken structure in {p.name} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}); "
                "the file is truncated or damaged"
            ) from exc


def _read_open(p: Path, f: h5py.File, fmt: str) -> LegacyCheckpoint:
    root_name = "/model_weights" if fmt == formats.KERAS2_MODEL else "/"
    root = f[root_name]
    if not isinstance(root, h5py.Group):
        raise CorruptCheckpointError(
            f"expected a group at {root_name}; found a dataset in {p.name}; the file is damaged"
        )
    layer_names = read_attr_list(root, "layer_names")
    if not has_attr_list(root, "layer_names"):
        raise CorruptCheckpointError(
            f"expected a layer_names attribute on {root_name}; found none in {p.name}; "
            "the file is damaged or not a Keras 2 checkpoint"
        )
    if len(set(layer_names)) != len(layer_names):  # Keras names layers uniquely
        from collections import Counter

        twice = next(n for n, k in Counter(layer_names).items() if k > 1)
        raise CorruptCheckpointError(
            f"expected each layer once in layer_names; found {twice!r} listed twice in "
            f"{p.name}; the file is damaged"
        )
    weights: dict[str, list[str]] = {}
    tensors: dict[str, list[TensorEntry]] = {}
    for name in layer_names:
        g = root.get(name)
        if g is None:
            raise CorruptCheckpointError(
                f"expected a group for layer {name!r} listed in layer_names; found none in "
                f"{p.name}; the file is truncated or damaged"
            )
        if not isinstance(g, h5py.Group):
            raise CorruptCheckpointError(
                f"expected layer {name!r} to be a group; found a dataset in {p.name}; "
                "the file is damaged"
            )
        wn = read_attr_list(g, "weight_names")
        entries = []
        for w in wn:
            ds = g.get(w)
            if not isinstance(ds, h5py.Dataset):
                raise CorruptCheckpointError(
                    f"expected a dataset {name}/{w} listed in weight_names; found "
                    f"{'nothing' if ds is None else 'a group'} in {p.name}; "
                    "the file is truncated or damaged"
                )
            shape, dtype, nbytes = dataset_info(ds)
            entries.append(TensorEntry(name=w, shape=shape, dtype=dtype, nbytes=nbytes))
        weights[name] = wn
        tensors[name] = entries
    model_config = read_json_attr(f, "model_config")
    training_config = read_json_attr(f, "training_config")
    if model_config is not None and not isinstance(model_config, dict):
        raise CorruptCheckpointError(
            f"expected model_config to be a JSON object; found {type(model_config).__name__} in "
            f"{p.name}; the file is damaged"
        )
    ck = LegacyCheckpoint(
        path=p,
        format=fmt,
        root=root_name,
        layer_names=layer_names,
        weights=weights,
        tensors=tensors,
        keras_version=read_text_attr(f, "keras_version") or read_text_attr(root, "keras_version"),
        backend=read_text_attr(f, "backend") or read_text_attr(root, "backend"),
        model_config=model_config,
        training_config=training_config,
    )
    og = f.get("optimizer_weights")
    if isinstance(og, h5py.Group):
        onames = read_attr_list(og, "weight_names")
        for w in onames:
            ds = og.get(w)
            if not isinstance(ds, h5py.Dataset):
                raise CorruptCheckpointError(
                    f"expected optimizer dataset {w!r}; found none in {p.name}; "
                    "the file is truncated or damaged"
                )
            shape, dtype, nbytes = dataset_info(ds)
            ck.optimizer_tensors.append(TensorEntry(w, shape, dtype, nbytes))
            if ck.optimizer_iterations is None and _is_iteration_name(w) and shape in ((), (1,)):
                try:
                    ck.optimizer_iterations = int(np.asarray(ds[()]).ravel()[0])
                except (ValueError, TypeError, OSError, IndexError):
                    ck.optimizer_iterations = None
        ck.optimizer_names = onames
    return ck


def _is_iteration_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("iteration") or base.startswith("iter:") or base == "iter"


# --- template and layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What to write: the template's layers with (source dataset, weight name) per weight."""

    ck: LegacyCheckpoint
    pattern: Pattern
    layout: TemplateLayout
    nested: tuple[str, ...]  # the template group's weight names, in stored order
    nested_tensors: tuple[TensorEntry, ...]

    @property
    def tensors(self) -> int:
        return len(self.nested)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.nested_tensors)


def plan_conversion(
    ck: LegacyCheckpoint,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: Any = None,
    infer: bool = False,
) -> Plan:
    """Find the template and establish its layout (live model > reference > config > names).

    Inference from names runs only when ``infer`` is True; otherwise a weights-only file
    without a reference is refused with a message saying how to make the layout exact.

    Raises:
        NothingToConvertError, AmbiguousTemplateError, LayoutError, ReferenceMismatchError.
    """
    cfg = ck.cfg_layers
    pattern = find_pattern(ck.layer_names, ck.weights, cfg, template, ck.path.name)
    nested = tuple(ck.weights[pattern.template])
    nested_t = tuple(ck.tensors[pattern.template])
    tpl_cfg = next((c for c in cfg if c.name == pattern.template), None)
    if model is not None:
        lay = from_model(model, nested, [t.shape for t in nested_t])
        if tpl_cfg is not None:
            lay = _with_config(lay, tpl_cfg)
    elif reference is not None:
        lay = _layout_from_reference(reference, nested, pattern.template)
        if lay.config is None and tpl_cfg is not None:
            lay = _with_config(lay, tpl_cfg)
    elif tpl_cfg is not None:
        lay = from_config(tpl_cfg, nested, "config")
    elif infer:
        lay = infer_from_names(nested, pattern.template)
    else:
        raise LayoutUnknownError(
            f"expected a known layout for the weights-only file {ck.path.name}; found none: it "
            f"does not record the layers of {pattern.template!r} ({len(nested)} weights nested "
            f"in one group); {MAKE_EXACT}, or pass --infer to rebuild the order from weight "
            "names (checked; models nested inside the template cannot be seen)"
        )
    return Plan(ck=ck, pattern=pattern, layout=lay, nested=nested, nested_tensors=nested_t)


def _with_config(lay: TemplateLayout, tpl_cfg: ConfigLayer) -> TemplateLayout:
    return replace(lay, config={"class_name": tpl_cfg.class_name, "config": tpl_cfg.config})


def _layout_from_reference(
    reference: str | Path, nested: Sequence[str], template: str
) -> TemplateLayout:
    kind, data = load_reference(reference)
    if kind == "json":
        name = model_name(data) or template
        tpl = ConfigLayer(
            name=name,
            class_name=str(data.get("class_name", "Functional")),
            config=data.get("config"),
            inbound_count=0,
            trainable=None,
        )
        return from_config(tpl, nested, "reference")
    ref = read_checkpoint(data)
    try:
        ref_pattern = find_pattern(
            ref.layer_names, ref.weights, ref.cfg_layers, None, ref.path.name
        )
    except (NothingToConvertError, AmbiguousTemplateError):
        ref_pattern = None  # a single model, possibly with nested models of its own
    if ref_pattern is not None and ref_pattern.parallel:
        raise ReferenceMismatchError(
            f"expected --reference to be a single-model file saved from the template; found "
            f"{ref.path.name} is itself a parallel checkpoint; pass "
            "template.save_weights(...) output or model.to_json()"
        )
    lay = from_weight_lists(
        [(n, ref.weights[n]) for n in ref.layer_names], ref.layer_names, nested, str(data)
    )
    if ref.model_config is not None:
        cfg = ref.model_config
        lay = replace(
            lay, config={"class_name": cfg.get("class_name"), "config": cfg.get("config")}
        )
    return lay


# --- writing ------------------------------------------------------------------------------


def write_conversion(src: Path, tmp: Path, fmt: str, opts: Any) -> ConversionResult:
    """Write the single-model file for ``src`` into ``tmp`` (the dispatcher verifies/renames)."""
    ck = read_checkpoint(src)
    plan = plan_conversion(
        ck,
        template=opts.template,
        reference=opts.reference,
        model=opts.model,
        infer=getattr(opts, "infer", False),
    )
    write_plan(plan, tmp, progress=opts.progress)
    warnings: tuple[str, ...] = ()
    if plan.layout.layout == "inferred" and plan.layout.note:
        warnings = (plan.layout.note,)
    if plan.pattern.outer_weighted:
        warnings += (
            "dropped the weights of layers outside the template: "
            + ", ".join(plan.pattern.outer_weighted),
        )
    full = ck.format == formats.KERAS2_MODEL
    return ConversionResult(
        source=str(src),
        destination=str(tmp),
        format=ck.format,
        template=plan.pattern.template,
        replicas=plan.pattern.replicas,
        layers=len(plan.layout.layers),
        tensors=plan.tensors,
        bytes=plan.nbytes,
        layout=plan.layout.layout,
        layout_source=plan.layout.source,
        verified=False,
        optimizer_kept=full and bool(ck.optimizer_names),
        full_model=full,
        seconds=0.0,
        warnings=warnings,
    )


def write_plan(plan: Plan, tmp: Path, progress: Any = None) -> None:
    """Copy the source with the kernel, then rewrite the copy's metadata in place.

    HDF5 writes to the copy through a :class:`~ckptfix.storage.WriteLog`, so the verifier
    can prove from the logged ranges that no tensor's bytes were touched (see
    :func:`verify_conversion`) instead of reading every byte of both files again.
    """
    ck = plan.ck
    source_id = file_identity(ck.path)
    total = source_id[2]
    if progress is not None:
        progress(0, total)
    copied = copy_file(ck.path, tmp)
    os.chmod(tmp, 0o644)
    if copied != total:
        raise CorruptCheckpointError(
            f"expected to copy all {total} bytes of {ck.path.name}; found {copied} copied "
            "(the file changed or the disk failed while copying); nothing was written; retry"
        )
    log = WriteLog(tmp)
    try:
        with log:
            with h5py.File(log, "r+") as f:
                _rewrite(f, plan)
            written = log.ranges()
    except Exception as exc:
        if log.error is not None:  # the file system failed (disk full…): say that, not HDF5's echo
            raise log.error from exc
        if isinstance(exc, LayoutError) or (isinstance(exc, OSError) and exc.errno is not None):
            raise
        if not isinstance(exc, (OSError, RuntimeError, KeyError, ValueError, AttributeError)):
            raise
        raise CorruptCheckpointError(
            f"expected to rewrite the copy of {ck.path.name}; found HDF5 refused "
            f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
            "the file is damaged"
        ) from exc
    mark_heaps_checked(tmp)
    if file_identity(ck.path) == source_id:  # else: no record, verification reads every byte
        keep_record(
            CopyRecord(ck.path, tmp, source_id, file_identity(tmp), copied, written, note=ck)
        )
    if progress is not None:
        progress(total, total)


def _rewrite(f: h5py.File, plan: Plan) -> None:
    ck, lay = plan.ck, plan.layout
    root = f[ck.root]
    tpl = plan.pattern.template
    root.move(tpl, _MOVED)
    for name in ck.layer_names:
        if name != tpl and name in root:
            del root[name]
    moved = root[_MOVED]
    for layer in lay.layers:
        g = root.create_group(layer.name)
        names = [plan.nested[i] for i in layer.indices]
        write_attr_list(g, "weight_names", names)
        for w in names:
            root.move(f"{_MOVED}/{w}", f"{layer.name}/{w}")
    del moved
    del root[_MOVED]
    weighted = {layer.name for layer in lay.layers}
    names = list(lay.layer_names)
    for n in weighted:  # every weighted layer must be listed, in load order
        if n not in names:
            names = [layer.name for layer in lay.layers]
            break
    for n in names:
        if n not in root:
            g = root.create_group(n)
            write_attr_list(g, "weight_names", [])
    write_attr_list(root, "layer_names", names)
    if ck.format == formats.KERAS2_MODEL:
        if lay.config is None:
            raise LayoutError(
                f"expected the template's config to write a full model; found none for "
                f"{tpl!r}; pass --reference with its JSON config"
            )
        f.attrs["model_config"] = json.dumps(lay.config).encode("utf-8")


# --- verification -------------------------------------------------------------------------


def verify_conversion(src: Path, dst: Path, *, template: str | None = None) -> VerificationResult:
    """Compare every tensor of the template in ``src`` with ``dst``, byte for byte.

    ``dst`` must hold exactly the template's tensors, each under a layer group, with the same
    weight name, dtype, shape, storage options and bytes; a full-model ``dst`` must keep the
    optimizer tensors and hold no Lambda layer in its config.

    Bytes are compared as stored, at each dataset's file offsets, in constant memory. Right
    after :func:`write_plan` wrote ``dst`` from ``src``, and while neither file has changed
    since, a tensor that ``dst`` keeps at the very offsets the source uses, in a byte range
    that was copied and that no HDF5 write touched afterwards, is proven equal without being
    read back (its first and last 4 KiB are still compared); every other tensor is read in
    full.
    """
    record = take_record(src, dst)
    ck = record.note if record is not None else None
    if not isinstance(ck, LegacyCheckpoint):
        ck = read_checkpoint(src)
    pattern = find_pattern(ck.layer_names, ck.weights, ck.cfg_layers, template, ck.path.name)
    nested = ck.weights[pattern.template]
    mismatches: list[str] = []
    nbytes = 0
    try:
        with open_h5(dst) as fd:
            out_root, out_weights = _read_weight_names(fd)
            found: dict[str, str] = {}  # weight name -> output layer
            for layer, names in out_weights:
                for w in names:
                    if w in found:
                        mismatches.append(f"{w}: stored twice ({found[w]}, {layer})")
                    found[w] = layer
            extra = set(found) - set(nested)
            mismatches += [f"{w}: missing from output" for w in nested if w not in found]
            mismatches += [f"{w}: not in the template" for w in sorted(extra)]
            with open_h5(src) as fs, RawFiles(src, dst) as raw:
                pair = _FilePair(raw, fs.userblock_size, fd.userblock_size, record)
                sgroup = fs[ck.root][pattern.template].id
                droot = fd[out_root].id
                for w in nested:
                    if w not in found:
                        continue
                    a = h5py.h5d.open(sgroup, w.encode("utf-8"))
                    b = h5py.h5d.open(droot, f"{found[w]}/{w}".encode())
                    why = _compare_ids(a, b, pair)
                    if why:
                        mismatches.append(f"{w}: {why}")
                    nbytes += a.get_storage_size()
                if ck.format == formats.KERAS2_MODEL:
                    mismatches += _verify_model_extras(fs, fd, pair)
    except (NotACheckpointError, CorruptCheckpointError, KeyError, OSError) as exc:
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        mismatches.append(f"unreadable output: {why}")
    return VerificationResult(
        source=str(src),
        destination=str(dst),
        tensors=len(nested),
        bytes=nbytes,
        ok=not mismatches,
        mismatches=tuple(mismatches),
    )


def _read_weight_names(f: h5py.File) -> tuple[str, list[tuple[str, list[str]]]]:
    """The root of a written file and its (layer, weight names) in ``layer_names`` order."""
    root = "/model_weights" if "model_weights" in f else "/"
    g = f[root]
    if not has_attr_list(g, "layer_names"):
        raise CorruptCheckpointError(
            "expected layer_names on the written file; found none; please report this"
        )
    return root, [
        (n, read_attr_list(g[n], "weight_names")) for n in read_attr_list(g, "layer_names")
    ]


def _verify_model_extras(fs: h5py.File, fd: h5py.File, pair: _FilePair) -> list[str]:
    bad: list[str] = []
    cfg = read_json_attr(fd, "model_config")
    if not isinstance(cfg, dict) or "Lambda" in json.dumps(cfg):
        bad.append("model_config: missing or still holds a Lambda layer")
    if read_text_attr(fs, "training_config") != read_text_attr(fd, "training_config"):
        bad.append("training_config: changed")
    if "optimizer_weights" in fs:
        if "optimizer_weights" not in fd:
            bad.append("optimizer_weights: missing")
        else:
            so, do = fs["optimizer_weights"], fd["optimizer_weights"]
            if read_attr_list(so, "weight_names") != read_attr_list(do, "weight_names"):
                bad.append("optimizer_weights: names changed")
            else:
                for w in read_attr_list(so, "weight_names"):
                    key = w.encode("utf-8")
                    why = _compare_ids(h5py.h5d.open(so.id, key), h5py.h5d.open(do.id, key), pair)
                    if why:
                        bad.append(f"optimizer {w}: {why}")
    return bad


@dataclass(frozen=True)
class _FilePair:
    """The two files of a verification: raw readers, userblock sizes, the writer's record."""

    raw: RawFiles
    base_a: int
    base_b: int
    record: CopyRecord | None


def compare_datasets(a: h5py.Dataset, b: h5py.Dataset) -> str | None:
    """None when two datasets hold the same dtype, shape, storage options and bytes.

    Bytes are compared as stored when both are plain file extents, else as decoded values.
    """
    fa, fb = a.file, b.file
    if fa.driver != "sec2" or fb.driver != "sec2":
        return _compare_ids(a.id, b.id, None)
    with RawFiles(fa.filename, fb.filename) as raw:
        return _compare_ids(a.id, b.id, _FilePair(raw, fa.userblock_size, fb.userblock_size, None))


def _compare_ids(
    a: h5py.h5d.DatasetID, b: h5py.h5d.DatasetID, files: _FilePair | None
) -> str | None:
    # Low-level ids: h5py's high-level Dataset costs more per tensor than reading a small one.
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    pa, pb = a.get_create_plist(), b.get_create_plist()
    if storage_options(a, pa) != storage_options(b, pb):
        return "storage options differ"
    if a.shape is None or 0 in a.shape:
        return None
    if files is not None:
        ea = storage_extents(a, files.base_a, pa)
        eb = storage_extents(b, files.base_b, pb)
        if ea is not None and eb is not None:
            rec = files.record
            if (
                rec is not None
                and ea == eb
                and all(rec.untouched(x.offset, x.offset + x.length) for x in ea)
                and files.raw.sampled(ea)
            ):
                return None  # the same copied bytes, never written since
            if files.raw.same_extents(ea, eb):
                return None
            # stored bytes differ: decode, since equal values may be stored differently
    return _compare_values(h5py.Dataset(a), h5py.Dataset(b))


def _compare_values(a: h5py.Dataset, b: h5py.Dataset) -> str | None:
    """Compare decoded values, block by block, in two reused buffers."""
    if a.ndim == 0:
        return None if a[()].tobytes() == b[()].tobytes() else "bytes differ"
    row = a.dtype.itemsize * (a.size // max(1, a.shape[0]))
    rows = max(1, _VERIFY_BLOCK // max(1, row))
    buf_a = np.empty((min(rows, a.shape[0]),) + a.shape[1:], a.dtype)
    buf_b = np.empty_like(buf_a)
    for start in range(0, a.shape[0], rows):
        stop = min(a.shape[0], start + rows)
        n = stop - start
        a.read_direct(buf_a, np.s_[start:stop], np.s_[0:n])
        b.read_direct(buf_b, np.s_[start:stop], np.s_[0:n])
        if not np.array_equal(buf_a[:n].view(np.uint8), buf_b[:n].view(np.uint8)):
            return f"bytes differ in rows {start}:{stop}"
    return None


# --- inspection ---------------------------------------------------------------------------


def inspect_checkpoint(path: Path, fmt: str, opts: Any = None) -> CheckpointReport:
    """Describe a Keras 2 file: pattern, template layers, counts, optimizer, layout.

    Never raises for a readable file whose structure is merely unusual: a single model, a
    model containing models, several candidate templates and an unknowable layout are all
    described (with what to do), not refused.
    """
    ck = read_checkpoint(path)
    template: str | None = getattr(opts, "template", None)
    reference = getattr(opts, "reference", None)
    candidates = _candidates(ck)
    optimizer = _optimizer_state(ck)
    notes: list[str] = []
    pat: Pattern | None = None
    try:
        pat = find_pattern(ck.layer_names, ck.weights, ck.cfg_layers, template, path.name)
    except (NothingToConvertError, AmbiguousTemplateError):
        pat = None
        if len(candidates) > 1:
            notes.append(
                f"{len(candidates)} nested models hold weights ({', '.join(candidates)}): "
                "choose the template with --template NAME"
            )
        elif candidates:
            outer = [n for n in ck.layer_names if ck.weights[n] and n not in candidates]
            notes.append(
                f"an ordinary model that contains the model {candidates[0]!r} beside other "
                f"layers with weights ({_short_list(outer)}): load it directly; to extract "
                f"{candidates[0]!r} alone run: "
                + _convert_command(path, template=candidates[0], reference=reference)
            )
    layout = None
    layout_source = None
    layout_note = None
    cmd = None
    if pat is not None:
        try:
            plan = plan_conversion(ck, template=template, reference=reference, infer=True)
        except LayoutError as exc:
            layout_note = str(exc)
            layers = _prefix_layers(ck.tensors[pat.template])
            cmd = _convert_command(path, template=template, reference="TEMPLATE.json")
            notes.append(
                "the template's layers below are grouped by weight name, in stored order; "
                "their load order is unknown"
            )
        else:
            layers = _report_layers(plan)
            layout = plan.layout.layout
            layout_source = plan.layout.source
            layout_note = plan.layout.note
            cmd = _convert_command(
                path,
                template=template,
                reference=reference,
                infer=plan.layout.layout == "inferred",
            )
        tensors = tuple(ck.tensors[pat.template])
    else:
        layers = tuple(_file_layer(ck, n) for n in ck.layer_names if ck.tensors[n])
        tensors = tuple(t for n in ck.layer_names for t in ck.tensors[n])
        if len(candidates) > 1:
            cmd = _convert_command(path, template="NAME", reference=reference)
    dtypes: dict[str, int] = {}
    for t in tensors:
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
    return CheckpointReport(
        path=str(path),
        format=ck.format,
        keras_version=ck.keras_version,
        backend=ck.backend,
        parallel=bool(pat and pat.parallel),
        wrapped=pat is not None,
        template=pat.template if pat else None,
        replicas=pat.replicas if pat else None,
        slices=pat.slices if pat else (),
        merges=pat.merges if pat else (),
        candidates=tuple(candidates),
        layers=layers,
        tensors=len(tensors),
        parameters=sum(t.size for t in tensors),
        bytes=sum(t.nbytes for t in tensors),
        dtypes=dtypes,
        optimizer=optimizer,
        layout=layout,
        layout_source=layout_source,
        layout_note=layout_note,
        convert_command=cmd,
        notes=tuple(notes),
    )


def _short_list(names: Sequence[str], limit: int = 5) -> str:
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _convert_command(
    path: Path, *, template: str | None, reference: str | Path | None, infer: bool = False
) -> str:
    """The ``ckptfix convert`` command line for ``path``, quoted for a POSIX shell."""
    import shlex

    parts = ["ckptfix", "convert", str(path), _suggest_out(path)]
    if template:
        parts += ["--template", template]
    if reference is not None:
        parts += ["--reference", str(reference)]
    elif infer:
        parts += ["--infer"]
    return " ".join(shlex.quote(p) for p in parts)


def _candidates(ck: LegacyCheckpoint) -> list[str]:
    from ..detect import find_candidates

    return find_candidates(ck.layer_names, ck.weights, ck.cfg_layers)


def _config_layer(ck: LegacyCheckpoint, name: str) -> ConfigLayer | None:
    for c in ck.cfg_layers:
        if c.name == name:
            return c
    return None


def _file_layer(ck: LegacyCheckpoint, name: str) -> LayerEntry:
    """A top-level layer of the file as stored (a nested model's weights grouped by layer)."""
    from ..detect import looks_nested

    cfg = _config_layer(ck, name)
    weights = tuple(ck.tensors[name])
    children: tuple[LayerEntry, ...] = ()
    if (cfg is not None and cfg.is_model) or (cfg is None and looks_nested(name, ck.weights[name])):
        children = _prefix_layers(weights)
    return LayerEntry(
        name=name,
        class_name=cfg.class_name if cfg else None,
        weights=weights,
        children=children,
        trainable=cfg.trainable if cfg else None,
    )


def _prefix_layers(weights: Sequence[TensorEntry]) -> tuple[LayerEntry, ...]:
    """Weights grouped by their first name component (the inner layer), in stored order."""
    groups: dict[str, list[TensorEntry]] = {}
    for t in weights:
        groups.setdefault(t.name.split("/", 1)[0], []).append(t)
    return tuple(LayerEntry(name=k, class_name=None, weights=tuple(v)) for k, v in groups.items())


def _report_layers(plan: Plan) -> tuple[LayerEntry, ...]:
    inner = _inner_config_layers(plan.layout.config)
    out = []
    for layer in plan.layout.layers:
        weights = tuple(plan.nested_tensors[i] for i in layer.indices)
        children: tuple[LayerEntry, ...] = ()
        if layer.children:
            by_first: dict[str, list[TensorEntry]] = {}
            for t in weights:
                by_first.setdefault(t.name.split("/", 1)[0], []).append(t)
            children = tuple(
                LayerEntry(
                    name=c,
                    class_name=inner[c].class_name if c in inner else None,
                    weights=tuple(by_first[c]),
                    trainable=inner[c].trainable if c in inner else None,
                )
                for c in layer.children
                if c in by_first
            )
        out.append(
            LayerEntry(
                name=layer.name,
                class_name=layer.class_name,
                weights=weights,
                children=children,
                trainable=layer.trainable,
            )
        )
    return tuple(out)


def _inner_config_layers(config: Any) -> dict[str, ConfigLayer]:
    """Every layer of a template config, nested models' layers included, by name."""
    found: dict[str, ConfigLayer] = {}
    todo = list(config_layers(config)) if config is not None else []
    while todo:
        c = todo.pop()
        found.setdefault(c.name, c)
        if c.is_model:
            todo.extend(config_layers(c.config))
    return found


def _optimizer_state(ck: LegacyCheckpoint) -> OptimizerState:
    if not ck.optimizer_names:
        return OptimizerState(present=False)
    cls = None
    if isinstance(ck.training_config, dict):
        oc = ck.training_config.get("optimizer_config")
        if isinstance(oc, dict) and isinstance(oc.get("class_name"), str):
            # tf_keras serialises its built-in optimizers as "Custom>Adam".
            cls = str(oc["class_name"]).removeprefix("Custom>")
    slots = sum(1 for t in ck.optimizer_tensors if not _is_iteration_name(t.name))
    return OptimizerState(
        present=True,
        class_name=cls,
        iterations=ck.optimizer_iterations,
        slots=slots,
        tensors=len(ck.optimizer_tensors),
        bytes=sum(t.nbytes for t in ck.optimizer_tensors),
    )


def _suggest_out(path: Path) -> str:
    name = path.name
    for suf in (".hdf5", ".h5"):
        if name.endswith(suf):
            return str(path.with_name(name[: -len(suf)] + ".single" + suf))
    return str(path.with_name(name + ".single.h5"))
