"""Keras 2 legacy HDF5: weights-only (``save_weights``) and full-model (``save``) files.

Reading is metadata only: the layer groups of ``layer_names``, each layer's ``weight_names``
and datasets, ``model_config``/``training_config`` as JSON data, the optimizer's weights. The
nested template's weights are stored in one group (all trainable, then all non-trainable);
its layout (which weight belongs to which of its layers) comes from a live model, a reference,
the file's own config or, checked, from weight names (:mod:`ckptfix.layout`).

Writing a Keras 2 source copies it with the kernel (no tensor passes through Python) and then
rewrites the copy's metadata in place: the template's datasets are *moved* (HDF5 link moves)
under one group per template layer, the other layer groups are deleted, and ``layer_names`` /
``weight_names`` / ``model_config`` are rewritten. Every tensor keeps its bytes, dtype, shape,
chunking and compression because it is the same dataset. Other sources are written anew.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..checkpoint import (
    Checkpoint,
    Family,
    H5Location,
    JSONObject,
    Layer,
    Layout,
    LayoutSource,
    Optimizer,
    OptimizerRole,
    OptimizerVariable,
    Pattern,
    TensorRef,
    Weight,
    WriteMode,
)
from ..errors import (
    CorruptCheckpointError,
    LayoutError,
    LayoutUnknownError,
    NotACheckpointError,
    ReferenceMismatchError,
    UnsupportedConversionError,
)
from ..h5util import (
    has_attr_list,
    mark_heaps_checked,
    open_h5,
    read_attr_list,
    read_json_attr,
    read_text_attr,
    tensor_ref,
    write_attr_list,
)
from ..layout import (
    MAKE_EXACT,
    LayoutLayer,
    TemplateLayout,
    from_config,
    from_model,
    from_weight_lists,
    infer_from_names,
    load_reference,
)
from ..pattern import ConfigLayer, config_layers, find_pattern, looks_nested, model_name
from ..storage import CopyRecord, WriteLog, copy_file, file_identity
from . import KERAS2_MODEL, KERAS2_WEIGHTS, TF_CHECKPOINT, TF_SAVEDMODEL
from .base import Planned, Probe, ReadOptions, WriteOptions, Written, WrittenTensor

_MOVED = "__ckptfix_template__"


# --- reading ------------------------------------------------------------------------------


@dataclass
class _File:
    """What a Keras 2 file stores, read from metadata only."""

    path: Path
    format: str
    root: str  # "/" or "/model_weights"
    layer_names: list[str]
    weights: dict[str, list[str]]  # layer -> weight names, in stored order
    tensors: dict[str, list[TensorRef]]  # layer -> tensors, same order
    keras_version: str | None
    backend: str | None
    model_config: Any | None
    training_config: Any | None
    optimizer_names: list[str] = field(default_factory=list)
    optimizer_tensors: list[TensorRef] = field(default_factory=list)
    optimizer_iterations: int | None = None

    @property
    def cfg_layers(self) -> list[ConfigLayer]:
        return config_layers(self.model_config) if self.model_config is not None else []

    def group(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"


def _read_file(p: Path, fmt: str | None = None) -> _File:
    """Read a Keras 2 ``.h5`` file's structure (no tensor data).

    Raises:
        NotACheckpointError: not a Keras 2 HDF5 file.
        CorruptCheckpointError: Keras structure that is inconsistent or unreadable.
    """
    with open_h5(p) as f:
        if fmt is None:
            fmt = _sniff_open(f)
            if fmt is None:
                raise NotACheckpointError(
                    f"expected a Keras 2 .h5 file (layer_names or model_weights); found an "
                    f"HDF5 file without them ({p.name}); pass a file saved by Keras 2"
                )
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


def _sniff_open(f: h5py.File) -> str | None:
    if isinstance(f.get("model_weights"), h5py.Group):
        return KERAS2_MODEL
    if has_attr_list(f, "layer_names"):
        return KERAS2_WEIGHTS
    return None


def _read_open(p: Path, f: h5py.File, fmt: str) -> _File:
    root_name = "/model_weights" if fmt == KERAS2_MODEL else "/"
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
        twice = next(n for n, k in Counter(layer_names).items() if k > 1)
        raise CorruptCheckpointError(
            f"expected each layer once in layer_names; found {twice!r} listed twice in "
            f"{p.name}; the file is damaged"
        )
    file = str(p)
    weights: dict[str, list[str]] = {}
    tensors: dict[str, list[TensorRef]] = {}
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
        refs = []
        for w in wn:
            ds = g.get(w)
            if not isinstance(ds, h5py.Dataset):
                raise CorruptCheckpointError(
                    f"expected a dataset {name}/{w} listed in weight_names; found "
                    f"{'nothing' if ds is None else 'a group'} in {p.name}; "
                    "the file is truncated or damaged"
                )
            refs.append(tensor_ref(ds, file, None, f"{g.name.rstrip('/')}/{w}"))
        weights[name] = wn
        tensors[name] = refs
    model_config = read_json_attr(f, "model_config")
    training_config = read_json_attr(f, "training_config")
    if model_config is not None and not isinstance(model_config, dict):
        raise CorruptCheckpointError(
            f"expected model_config to be a JSON object; found {type(model_config).__name__} in "
            f"{p.name}; the file is damaged"
        )
    out = _File(
        path=p,
        format=fmt,
        root=root_name,
        layer_names=layer_names,
        weights=weights,
        tensors=tensors,
        keras_version=read_text_attr(f, "keras_version") or read_text_attr(root, "keras_version"),
        backend=read_text_attr(f, "backend") or read_text_attr(root, "backend"),
        model_config=model_config,
        training_config=training_config if isinstance(training_config, dict) else None,
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
            ref = tensor_ref(ds, file, None, f"/optimizer_weights/{w}")
            out.optimizer_tensors.append(ref)
            if out.optimizer_iterations is None and _is_iteration_name(w) and ref.size == 1:
                try:
                    out.optimizer_iterations = int(np.asarray(ds[()]).ravel()[0])
                except (ValueError, TypeError, OSError, IndexError):
                    out.optimizer_iterations = None
        out.optimizer_names = onames
    return out


def _is_iteration_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("iteration") or base.startswith("iter:") or base == "iter"


def _optimizer_role(name: str) -> OptimizerRole:
    base = name.rsplit("/", 1)[-1].split(":", 1)[0]
    if _is_iteration_name(name):
        return "iterations"
    if base in ("learning_rate", "lr"):
        return "learning_rate"
    if base in ("decay", "beta_1", "beta_2", "rho", "momentum") and name.count("/") <= 1:
        return "other"  # hyper-parameters some old optimizers stored as variables
    return "slot"


# --- template and layout ------------------------------------------------------------------


def _resolve_layout(
    ck: _File, pattern: Pattern, options: ReadOptions
) -> tuple[TemplateLayout | None, Layout]:
    """The template's layout from the most trusted source available (never raises for it).

    live model > reference > the file's own config > weight names (unless ``exact``). A
    layout that cannot be established comes back as ``Layout("unknown", refusal=...)``.
    """
    assert pattern.template is not None
    tpl = pattern.template
    nested = tuple(ck.weights[tpl])
    tpl_cfg = next((c for c in ck.cfg_layers if c.name == tpl), None)
    try:
        if options.model is not None:
            lay = from_model(options.model, nested, [t.shape for t in ck.tensors[tpl]])
            if tpl_cfg is not None:
                lay = _with_config(lay, tpl_cfg)
            elif (live := live_config(options.model)) is not None:
                lay = replace(lay, config={"class_name": live.get("class_name"),
                                           "config": live.get("config")})
        elif options.reference is not None:
            lay = _layout_from_reference(options.reference, nested, tpl)
            if lay.config is None and tpl_cfg is not None:
                lay = _with_config(lay, tpl_cfg)
        elif tpl_cfg is not None:
            lay = from_config(tpl_cfg, nested, "config")
        elif options.exact:
            raise LayoutUnknownError(
                f"expected a known layout for the weights-only file {ck.path.name} (exact=True); "
                f"found none: it does not record the layers of {tpl!r} ({len(nested)} weights "
                f"nested in one group); {MAKE_EXACT}"
            )
        else:
            # multi_gpu_model names each merge layer after a template output layer
            outputs = pattern.merges if pattern.parallel else ()
            lay = infer_from_names(nested, tpl, outputs)
    except ReferenceMismatchError:
        raise
    except LayoutError as exc:
        return None, Layout("unknown", None, str(exc), exc)
    return lay, Layout(lay.layout, lay.source, lay.note)


def _given_config(options: ReadOptions) -> JSONObject | None:
    """The model config a reference or a live model gives (None when neither gives one)."""
    if options.model is not None:
        return live_config(options.model)
    if options.reference is None:
        return None
    kind, data = load_reference(options.reference)
    if kind == "json":
        return dict(data)
    ref = _read_file(Path(data))
    return dict(ref.model_config) if isinstance(ref.model_config, dict) else None


def live_config(model: object) -> JSONObject | None:
    """A live Keras 2 (tf_keras) model's config, as ``model.to_json()`` gives it.

    Keras 3 models give a Keras 3 config, which is no Keras 2 layout: None for them.
    """
    to_json = getattr(model, "to_json", None)
    if not callable(to_json):
        return None
    try:
        data = json.loads(to_json())
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or "module" in data:  # Keras 3 configs name their module
        return None
    return data


def _check_reference_layers(ck: _File, config: JSONObject) -> None:
    """The config's layers must include every layer the weights file holds weights for.

    Raises:
        ReferenceMismatchError: a weighted layer of the file is not in the config.
    """
    names = {c.name for c in config_layers(config)}
    missing = [n for n in ck.layer_names if ck.weights[n] and n not in names]
    if missing:
        raise ReferenceMismatchError(
            f"expected reference= to describe the model of {ck.path.name}; found its layers "
            f"{', '.join(missing[:3])} are not in the reference's config; pass the config of "
            "the model that saved these weights"
        )


def _with_config(lay: TemplateLayout, tpl_cfg: ConfigLayer) -> TemplateLayout:
    return replace(lay, config={"class_name": tpl_cfg.class_name, "config": tpl_cfg.config})


def _layout_from_reference(
    reference: str | Path, nested: Sequence[str], template: str
) -> TemplateLayout:
    kind, data = load_reference(reference)
    if kind == "h5":
        ref = _read_file(Path(data))
        ref_pattern = find_pattern(
            ref.layer_names, ref.weights, ref.cfg_layers, None, ref.path.name
        )
        if not ref_pattern.parallel and isinstance(ref.model_config, dict):
            # A full-model reference records the layers (nested ones too): use its config.
            kind, data = "json", ref.model_config
    if kind == "json":
        # The reference's own model name may differ: the checkpoint's template is what its
        # weight names are scoped by and what messages must name.
        tpl = ConfigLayer(
            name=template,
            class_name=str(data.get("class_name", "Functional")),
            config=data.get("config"),
            inbound_count=0,
            trainable=None,
        )
        return from_config(tpl, nested, "reference")
    ref = _read_file(Path(data))
    ref_pattern = find_pattern(ref.layer_names, ref.weights, ref.cfg_layers, None, ref.path.name)
    if ref_pattern.parallel:
        raise ReferenceMismatchError(
            f"expected reference= to be a single-model file saved from the template; found "
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


# --- building the format-neutral model ------------------------------------------------------


def _weights(ck: _File, layer: str) -> tuple[Weight, ...]:
    return tuple(Weight(w, t) for w, t in zip(ck.weights[layer], ck.tensors[layer], strict=True))


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


def _by_first_name(weights: Sequence[Weight]) -> dict[str, list[Weight]]:
    """Weights grouped by their first name component (the inner layer), in stored order."""
    groups: dict[str, list[Weight]] = {}
    for w in weights:
        groups.setdefault(w.name.split("/", 1)[0], []).append(w)
    return groups


def _template_layer(
    ck: _File, name: str, lay: TemplateLayout | None, cfg: ConfigLayer | None
) -> Layer:
    """The template as a Layer: its layers in load order (by name groups when unknown)."""
    weights = _weights(ck, name)
    config: JSONObject | None = None
    if lay is not None and lay.config is not None:
        config = lay.config
    elif cfg is not None:
        config = {"class_name": cfg.class_name, "config": cfg.config}
    if lay is None:  # unknown: the weights grouped by name, in stored order, for display
        children = tuple(Layer(k, None, tuple(v)) for k, v in _by_first_name(weights).items())
        return Layer(
            name,
            cfg.class_name if cfg else None,
            weights,
            children,
            config=config,
            key=ck.group(name),
        )
    inner = _inner_config_layers(lay.config["config"] if lay.config else None)
    layers = []
    for ll in lay.layers:
        own = tuple(weights[i] for i in ll.indices)
        sub: tuple[Layer, ...] = ()
        if ll.children:
            groups = _by_first_name(own)
            sub = tuple(
                Layer(
                    c,
                    inner[c].class_name if c in inner else None,
                    tuple(groups[c]),
                    trainable=inner[c].trainable if c in inner else None,
                )
                for c in ll.children
                if c in groups
            )
        layers.append(
            Layer(
                ll.name,
                ll.class_name,
                own,
                sub,
                trainable=ll.trainable,
                config=_entry(inner.get(ll.name)),
            )
        )
    return Layer(
        name,
        (config or {}).get("class_name") if config else (cfg.class_name if cfg else None),
        weights,
        tuple(layers),
        layer_names=tuple(lay.layer_names),
        trainable=cfg.trainable if cfg else None,
        config=config,
        key=ck.group(name),
    )


def _entry(c: ConfigLayer | None) -> JSONObject | None:
    return None if c is None else {"class_name": c.class_name, "config": c.config}


def _model_layer(ck: _File) -> Layer:
    """The whole file as stored: its top-level layers with weights, in ``layer_names`` order."""
    by_name = {c.name: c for c in ck.cfg_layers}
    layers = []
    for n in ck.layer_names:
        if not ck.weights[n]:
            continue
        c = by_name.get(n)
        weights = _weights(ck, n)
        children: tuple[Layer, ...] = ()
        if (c is not None and c.is_model) or (c is None and looks_nested(n, ck.weights[n])):
            lay = None
            if c is not None:
                try:
                    lay = from_config(c, ck.weights[n], "config")
                except LayoutError:
                    lay = None
            children = _template_layer(ck, n, lay, c).layers
        layers.append(
            Layer(
                n,
                c.class_name if c else None,
                weights,
                children,
                trainable=c.trainable if c else None,
                config=_entry(c),
                key=ck.group(n),
            )
        )
    cfg = ck.model_config
    return Layer(
        model_name(cfg) or ck.path.stem,
        str(cfg.get("class_name")) if isinstance(cfg, dict) and cfg.get("class_name") else None,
        (),
        tuple(layers),
        layer_names=tuple(ck.layer_names),
        config=cfg,
        key=ck.root,
    )


def _optimizer(ck: _File) -> Optimizer | None:
    if not ck.optimizer_names:
        return None
    cls = None
    oc: Any = None
    if isinstance(ck.training_config, dict):
        oc = ck.training_config.get("optimizer_config")
        if isinstance(oc, dict) and isinstance(oc.get("class_name"), str):
            # tf_keras serialises its built-in optimizers as "Custom>Adam".
            cls = str(oc["class_name"]).removeprefix("Custom>")
    return Optimizer(
        class_name=cls,
        variables=tuple(
            OptimizerVariable(n, t, _optimizer_role(n))
            for n, t in zip(ck.optimizer_names, ck.optimizer_tensors, strict=True)
        ),
        iterations=ck.optimizer_iterations,
        config=oc if isinstance(oc, dict) else None,
    )


def read(path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
    """Read a Keras 2 ``.h5`` file into a Checkpoint; find the template, resolve its layout.

    Raises:
        NotACheckpointError, CorruptCheckpointError: not a readable Keras 2 file.
        TemplateNotFoundError: ``options.template`` names no nested model of the file.
        ReferenceMismatchError, LayoutError: the reference cannot be used.
    """
    ck = _read_file(path, fmt)
    pattern = find_pattern(ck.layer_names, ck.weights, ck.cfg_layers, options.template, path.name)
    given_by: LayoutSource | None = None
    if pattern.template is None and ck.model_config is None:
        given = _given_config(options)
        if given is not None:  # a weights-only single model: its layers' layout and config
            _check_reference_layers(ck, given)
            ck.model_config = given
            given_by = "model" if options.model is not None else "reference"
    model = _model_layer(ck)
    template = None
    if pattern.template is None:
        source: LayoutSource = given_by or ("config" if ck.model_config is not None else "paths")
        if pattern.kind == "ambiguous":
            layout = Layout(
                "unknown", None, "several nested models hold weights: choose one with template=NAME"
            )
        else:
            layout = Layout("exact", source)  # each layer's weights are its own group's
    else:
        lay, layout = _resolve_layout(ck, pattern, options)
        tpl_cfg = next((c for c in ck.cfg_layers if c.name == pattern.template), None)
        template = _template_layer(ck, pattern.template, lay, tpl_cfg)
    optimizer = _optimizer(ck)
    return Checkpoint(
        path=str(path),
        format=fmt,
        family="keras2",
        full_model=fmt == KERAS2_MODEL,
        keras_version=ck.keras_version,
        backend=ck.backend,
        model=model,
        pattern=pattern,
        layout=layout,
        template=template,
        model_config=ck.model_config,
        training_config=ck.training_config,
        optimizer=optimizer,
        template_optimizer=optimizer,  # a Keras 2 template owns every trained variable
    )


# --- writing ------------------------------------------------------------------------------


def _root_of(ck: Checkpoint) -> str:
    return "/model_weights" if ck.full_model else "/"


def write(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Write the single template model's Keras 2 file for ``ck`` into ``tmp``.

    A Keras 2 source is copied with the kernel and rewritten in place (tensors *moved*); any
    other source is written anew (tensors *copied* from their files).
    """
    subject = ck.subject
    if ck.full_model and subject.config is None:
        raise LayoutError(
            f"expected the template's config to write a full model; found none for "
            f"{subject.name!r}; pass reference= with its JSON config"
        )
    if ck.family == "keras2" and ck.format in (KERAS2_WEIGHTS, KERAS2_MODEL):
        return _write_by_copy(ck, tmp, options)
    if ck.format in (TF_CHECKPOINT, TF_SAVEDMODEL):
        if ck.layout.refusal is not None:  # an order a TF checkpoint cannot tell, loading silently
            raise ck.layout.refusal
        return _write_anew(ck, tmp, options)
    raise UnsupportedConversionError(
        f"expected a Keras 2 or TensorFlow source for a Keras 2 .h5 output; found "
        f"{ck.format} ({Path(ck.path).name}); write a Keras 3 name instead (.weights.h5 or "
        ".keras)"
    )


def _layer_names(subject: Layer) -> list[str]:
    names = list(subject.layer_names)
    weighted = [layer.name for layer in subject.layers]
    if any(n not in names for n in weighted):  # every weighted layer must be listed, in order
        names = weighted
    return names


def _write_by_copy(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Copy the source with the kernel, then rewrite the copy's metadata in place.

    HDF5 writes to the copy through a :class:`~ckptfix.storage.WriteLog`, so the verifier can
    prove from the logged ranges that no tensor's bytes were touched instead of reading every
    byte of both files again.
    """
    src = Path(ck.path)
    source_id = file_identity(src)
    total = source_id[2]
    if options.progress is not None:
        options.progress(0, total)
    copied = copy_file(src, tmp)
    os.chmod(tmp, 0o644)
    if copied != total:
        raise CorruptCheckpointError(
            f"expected to copy all {total} bytes of {src.name}; found {copied} copied "
            "(the file changed or the disk failed while copying); nothing was written; retry"
        )
    log = WriteLog(tmp)
    try:
        with log:
            with h5py.File(log, "r+") as f:
                moved = _rewrite(f, ck)
            written = log.ranges()
    except Exception as exc:
        if log.error is not None:  # the file system failed (disk full…): say that, not HDF5's
            raise log.error from exc
        if isinstance(exc, LayoutError) or (isinstance(exc, OSError) and exc.errno is not None):
            raise
        if not isinstance(exc, OSError | RuntimeError | KeyError | ValueError | AttributeError):
            raise
        raise CorruptCheckpointError(
            f"expected to rewrite the copy of {src.name}; found HDF5 refused "
            f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}); "
            "the file is damaged"
        ) from exc
    mark_heaps_checked(tmp)
    record = None
    if file_identity(src) == source_id:  # else: no record, verification reads every byte
        record = CopyRecord(src, tmp, source_id, file_identity(tmp), copied, written)
    if options.progress is not None:
        options.progress(total, total)
    tensors, optimizer = plan_tensors(ck)
    assert [t.path for t in tensors] == list(moved)
    return Written(
        path=tmp,
        format=ck.format,
        tensors=tensors,
        optimizer=optimizer,
        full_model=ck.full_model,
        copy_record=record,
        warnings=_warnings(ck),
    )


#: Writer version recorded for a TensorFlow checkpoint, whose files do not say which tf.keras
#: wrote them; Keras reads ``keras_version`` only to convert Keras 1 files ("1"), never this.
_TF_KERAS_VERSION = "2 (a TensorFlow checkpoint of tf.keras, converted by ckptfix)"


def _write_anew(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Write a Keras 2 file from a TensorFlow checkpoint or SavedModel, tensor by tensor.

    Each tensor's bytes are read from its data shard in blocks and written into a contiguous
    dataset of the same dtype and shape (constant memory); the verifier then compares them
    with the shard's bytes and their crc32c.
    """
    subject = ck.subject
    bad = [
        (layer.name, w.name, w.tensor.dtype)
        for layer in subject.layers
        for w in layer.weights
        if w.tensor.dtype in ("string", "bfloat16")
    ]
    if bad:
        layer, name, dtype = bad[0]
        raise UnsupportedConversionError(
            f"expected numeric weights for a Keras 2 .h5 file; found {name!r} of layer "
            f"{layer!r} holds {dtype} tensors, which a Keras 2 .h5 cannot store; convert to a "
            "TensorFlow checkpoint (an output name without suffix) instead"
        )
    tensors, optimizer = plan_tensors(ck)
    total = sum(t.nbytes for t in tensors + optimizer)
    done = 0
    if options.progress is not None:
        options.progress(0, total)
    version = ck.keras_version or _TF_KERAS_VERSION
    with h5py.File(tmp, "w") as f:
        root = f.create_group("model_weights") if ck.full_model else f
        for holder in {id(f): f, id(root): root}.values():
            holder.attrs["backend"] = (ck.backend or "tensorflow").encode("utf-8")
            holder.attrs["keras_version"] = version.encode("utf-8")
        names = _layer_names(subject)
        write_attr_list(root, "layer_names", names)
        by_name = {layer.name: layer for layer in subject.layers}
        for n in names:
            g = root.create_group(n)
            held = by_name.get(n)
            write_attr_list(g, "weight_names", [w.name for w in held.weights] if held else [])
        for t in tensors + optimizer:
            assert t.source is not None  # a TF source's tensors are all stored, none derived
            _copy_from_shard(f, t.path, t.source)
            done += t.nbytes
            if options.progress is not None:
                options.progress(done, total)
        if ck.full_model:
            assert subject.config is not None
            f.attrs["model_config"] = json.dumps(dict(subject.config)).encode("utf-8")
            if ck.training_config is not None:
                f.attrs["training_config"] = json.dumps(dict(ck.training_config)).encode("utf-8")
            if optimizer:
                og = f["optimizer_weights"]
                opt = ck.template_optimizer
                assert opt is not None
                write_attr_list(og, "weight_names", [v.name for v in opt.variables])
    return Written(
        path=tmp,
        format=KERAS2_MODEL if ck.full_model else KERAS2_WEIGHTS,
        tensors=tensors,
        optimizer=optimizer,
        full_model=ck.full_model,
        warnings=_warnings(ck),
    )


def _copy_from_shard(f: h5py.File, path: str, ref: TensorRef) -> None:
    """Write one bundle tensor's bytes as a new dataset at ``path``, in row blocks."""
    from ..checkpoint import BundleLocation
    from ..storage import BLOCK

    loc = ref.location
    assert isinstance(loc, BundleLocation)
    dtype = np.dtype(ref.dtype).newbyteorder("<")
    ds = f.create_dataset(path, shape=ref.shape, dtype=dtype)
    if ref.nbytes == 0:
        return
    with open(loc.file, "rb") as fh:
        if not ref.shape:
            data = os.pread(fh.fileno(), loc.size, loc.offset)
            ds[()] = np.frombuffer(data, dtype)[0]
            return
        row = loc.size // ref.shape[0]
        rows = max(1, BLOCK // max(1, row))
        for start in range(0, ref.shape[0], rows):
            stop = min(ref.shape[0], start + rows)
            data = os.pread(fh.fileno(), (stop - start) * row, loc.offset + start * row)
            if len(data) != (stop - start) * row:
                raise CorruptCheckpointError(
                    f"expected {loc.size:,} bytes of {loc.path!r} in {Path(loc.file).name}; "
                    "found the data shard shorter; it is truncated"
                )
            ds[start:stop] = np.frombuffer(data, dtype).reshape((stop - start,) + ref.shape[1:])


def plan_tensors(ck: Checkpoint) -> Planned:
    """Where each weight of the template goes: ``<root>/<layer>/<weight name>``, in load order.

    The optimizer's weights keep their paths (a Keras 2 template owns every trained variable).
    """
    prefix = _root_of(ck).rstrip("/")
    anew = ck.format not in (KERAS2_WEIGHTS, KERAS2_MODEL)  # from another format's storage
    how: WriteMode = "encoded" if anew else "moved"
    tensors = tuple(
        WrittenTensor(
            f"{prefix}/{layer.name}/{w.name}"
            if ck.template is not None or anew
            else _path_of(w.tensor),
            w.tensor,
            how,
            w.name,
        )
        for layer in ck.subject.layers
        for w in layer.weights
    )
    opt = ck.template_optimizer if not anew or ck.full_model else None
    optimizer = tuple(
        WrittenTensor(
            f"/optimizer_weights/{v.name}" if anew else _path_of(v.tensor),
            v.tensor,
            how,
            f"optimizer {v.name}",
        )
        for v in (opt.variables if opt else ())
    )
    return tensors, optimizer


def _path_of(ref: TensorRef) -> str:
    assert isinstance(ref.location, H5Location)
    return ref.location.path


def _rewrite(f: h5py.File, ck: Checkpoint) -> list[str]:
    subject = ck.subject
    root_path = _root_of(ck)
    root = f[root_path]
    prefix = root_path.rstrip("/")
    moved: list[str] = []
    if ck.template is not None:
        tpl = ck.template
        root.move(tpl.name, _MOVED)
        for name in ck.model.layer_names:
            if name != tpl.name and name in root:
                del root[name]
        for layer in tpl.layers:
            g = root.create_group(layer.name)
            write_attr_list(g, "weight_names", [w.name for w in layer.weights])
            for w in layer.weights:  # a nested group keeps each weight at its name
                root.move(f"{_MOVED}/{w.name}", f"{layer.name}/{w.name}")
                moved.append(f"{prefix}/{layer.name}/{w.name}")
        del root[_MOVED]
    else:  # the file's own model, already flat (a same-format rewrite changes nothing)
        for layer in subject.layers:
            for w in layer.weights:
                moved.append(_path_of(w.tensor))
    names = _layer_names(subject)
    for n in names:
        if n not in root:
            g = root.create_group(n)
            write_attr_list(g, "weight_names", [])
    write_attr_list(root, "layer_names", names)
    if ck.full_model:
        assert subject.config is not None
        f.attrs["model_config"] = json.dumps(dict(subject.config)).encode("utf-8")
    return moved


def _warnings(ck: Checkpoint) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if ck.layout.status == "inferred" and ck.layout.note:
        out += (ck.layout.note,)
    if ck.pattern.outer_weighted:
        out += (
            "dropped the weights of layers outside the template: "
            + ", ".join(ck.pattern.outer_weighted),
        )
    return out


# --- checking a written file ----------------------------------------------------------------


def check(source: Checkpoint, output: Checkpoint) -> list[str]:
    """Problems of a written Keras 2 file besides its tensors.

    A full model must carry a config without Lambda layers (the wrapper's slices are gone), the
    source's training config, and the optimizer's weight names in the source's order.
    """
    bad: list[str] = []
    if output.family != "keras2":
        return [f"format: {output.format} is not a Keras 2 file"]
    if source.full_model:
        cfg = output.model_config
        if not isinstance(cfg, dict) or "Lambda" in json.dumps(cfg):
            bad.append("model_config: missing or still holds a Lambda layer")
        if source.training_config != output.training_config:
            bad.append("training_config: changed")
        src_opt = source.template_optimizer
        if src_opt is not None:
            if output.optimizer is None:
                bad.append("optimizer_weights: missing")
            elif [v.name for v in src_opt.variables] != [
                v.name for v in output.optimizer.variables
            ]:
                bad.append("optimizer_weights: names changed")
    return bad


# --- the format ---------------------------------------------------------------------------


class Keras2H5:
    """Keras 2 legacy HDF5 (``.h5``/``.hdf5``), weights only or full model."""

    name = "Keras 2 HDF5"
    family: Family = "keras2"
    ids: tuple[str, ...] = (KERAS2_WEIGHTS, KERAS2_MODEL)
    read_options = frozenset({"template", "reference", "model", "exact"})
    write_options = frozenset({"progress"})

    def sniff(self, probe: Probe) -> str | None:
        if probe.h5_keys is None:
            return None
        if "model_weights" in (probe.h5_groups or ()):
            return KERAS2_MODEL
        attrs = probe.h5_attrs or frozenset()
        if "layer_names" in attrs or "layer_names0" in attrs:
            return KERAS2_WEIGHTS
        return None

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        return read(path, fmt, options)

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        name = dst.name.lower()
        if name.endswith(".weights.h5") or not name.endswith((".h5", ".hdf5")):
            return None
        return KERAS2_MODEL if ck.full_model else KERAS2_WEIGHTS

    def accepts(self, ck: Checkpoint) -> bool:
        return ck.family in ("keras2", "tf")

    def plan(self, ck: Checkpoint) -> Planned:
        return plan_tensors(ck)

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        return write(ck, tmp, options)

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        return check(source, output)

    def suggest(self, path: Path) -> Path:
        name = path.name
        for suf in (".hdf5", ".h5"):
            if name.lower().endswith(suf):
                return path.with_name(name[: -len(suf)] + ".single" + name[-len(suf) :])
        return path.with_name(name + ".single.h5")


FORMAT = Keras2H5()

__all__ = ["FORMAT", "Keras2H5", "LayoutLayer", "read", "write", "check"]
