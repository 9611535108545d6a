"""Keras 3 ``.weights.h5``: object-path layout, nested models as subtrees.

A Keras 3 weights file stores every layer at ``layers/<snake_case class>[_k]/vars/<i>`` with
the layer's real name in the ``name`` attribute of its ``vars`` group; a model nested in another
is a subtree (``layers/functional/layers/dense/vars/0``, ``layers/functional/vars`` named like
the nested model). That subtree is exactly what the nested model saves alone, re-rooted, so
converting is a copy of one subtree to the root, plus the optimizer variables that belong to it.

Optimizer variables (``optimizer/vars/<i>``) are the iteration counter, the learning rate (absent
for a schedule), then per *pass* (Adam: momentum+velocity interleaved per variable; amsgrad adds
a second pass of velocity_hat) the slots of every trainable variable of the wrapper, in the
wrapper's ``trainable_variables`` order. When the template owns all of them they are copied as
they are; otherwise the template's slots are selected when the order is known (``.keras``
config) and the choice is unique, and dropped with a warning when it is not.

The tree walking here is shared with :mod:`.keras3_archive`, whose ``model.weights.h5`` member
has this layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py

from ..checkpoint import (
    Checkpoint,
    Family,
    H5Location,
    JSONObject,
    Layer,
    Layout,
    LayoutSource,
    Optimizer,
    OptimizerVariable,
    Pattern,
    TensorRef,
    Weight,
)
from ..errors import (
    AmbiguousTemplateError,
    CorruptCheckpointError,
    NothingToConvertError,
    TemplateNotFoundError,
    UnsupportedConversionError,
)
from ..h5util import dataset_info, decode, open_h5, tensor_ref
from . import KERAS3_WEIGHTS
from .base import Planned, Probe, ReadOptions, WriteOptions, Written, WrittenTensor

if TYPE_CHECKING:
    from ..keras3_migration import Keras3Plan

#: Path-segment kinds of the wrapper's slice and merge layers (``lambda_1``, ``concatenate``).
_SLICE_KINDS = ("lambda", "slice")
_MERGE_KINDS = ("concatenate",)
#: Top-level names a Keras 3 weights file may hold.
KERAS3_KEYS = ("layers", "vars", "optimizer", "_layer_checkpoint_dependencies")


@dataclass(frozen=True)
class NestedModel:
    """A model nested at the top level of the wrapper: its path segment and real name."""

    segment: str  # "functional_1"
    name: str  # the nested model's own name ("encoder")
    tensors: int


@dataclass(frozen=True)
class OptimizerPlan:
    """Which ``optimizer/vars/<i>`` of the source go to the output, in output order."""

    keep: tuple[int, ...] | None  # None: the optimizer is not written
    note: str | None = None  # why slots were selected or dropped


# --- reading the tree ------------------------------------------------------------------------


def var_name(group: h5py.Group) -> str | None:
    """The real name stored on a ``vars`` group (None when absent)."""
    v = group.get("vars")
    if not isinstance(v, h5py.Group) or "name" not in v.attrs:
        return None
    return decode(v.attrs["name"])


def numeric_keys(group: h5py.Group) -> list[str]:
    """The keys of a ``vars`` group in index order (``0, 1, …, 10``).

    Raises:
        CorruptCheckpointError: a key that is not a number.
    """
    keys = list(group.keys())
    try:
        return sorted(keys, key=int)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"expected numbered variables in {group.name}; found {keys[:5]}; the file is damaged"
        ) from exc


def count_datasets(group: h5py.Group) -> int:
    """Number of tensors under ``group``, from metadata only."""
    n = 0

    def visit(_: str, obj: Any) -> None:
        nonlocal n
        if isinstance(obj, h5py.Dataset):
            n += 1

    group.visititems(visit)
    return n


def top_layers(root: h5py.Group) -> list[tuple[str, str]]:
    """``(segment, real name)`` of the layers directly under ``root/layers``."""
    layers = root.get("layers")
    if not isinstance(layers, h5py.Group):
        return []
    out = []
    for seg in layers:
        g = layers[seg]
        if isinstance(g, h5py.Group):
            out.append((seg, var_name(g) or seg))
    return out


def find_nested(root: h5py.Group) -> list[NestedModel]:
    """Models nested directly in the wrapper that hold weights (a ``layers`` subtree)."""
    found = []
    for seg, name in top_layers(root):
        g = root["layers"][seg]
        if isinstance(g.get("layers"), h5py.Group):
            tensors = count_datasets(g)
            if tensors:
                found.append(NestedModel(seg, name, tensors))
    return found


def _kind(segment: str) -> str:
    tail = segment.rsplit("_", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return tail[0]
    return segment


def _natural(segment: str) -> tuple[str, int]:
    tail = segment.rsplit("_", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return tail[0], int(tail[1])
    return segment, 0


def find_pattern(
    root: h5py.Group,
    template: str | None,
    path: Path,
    slices: Sequence[str] | None = None,
    merges: Sequence[str] | None = None,
) -> tuple[Pattern, NestedModel | None]:
    """The pattern around the template of a Keras 3 tree, and the template chosen.

    Raises:
        TemplateNotFoundError: ``template`` names no nested model of the file.
    """
    nested = find_nested(root)
    names = ", ".join(n.name for n in nested)
    top = top_layers(root)
    if slices is None:
        slices = [n for s, n in top if _kind(s) in _SLICE_KINDS]
    if merges is None:
        merges = [n for s, n in top if _kind(s) in _MERGE_KINDS]
    chosen: NestedModel | None = None
    if template is not None:
        chosen = next((n for n in nested if n.name == template), None)
        if chosen is None:
            raise TemplateNotFoundError(
                f"expected template= to name a model nested in {path.name}; found "
                f"{template!r} is not one (nested models in the file: {names or 'none'}); "
                "pick one of those names"
            )
    elif not nested:
        return Pattern(
            "single",
            None,
            refusal=NothingToConvertError(
                f"expected a model nested in another model; found none in {path.name} (it is "
                "already a single model's checkpoint); nothing to convert, load it directly"
            ),
        ), None
    elif len(nested) > 1:
        return Pattern(
            "ambiguous",
            None,
            tuple(n.name for n in nested),
            refusal=AmbiguousTemplateError(
                f"expected one nested model; found {len(nested)} ({names}); "
                "pass template=NAME to choose one"
            ),
        ), None
    else:
        chosen = nested[0]
    parallel = bool(slices) and bool(merges)
    replicas = None
    if parallel and slices:
        inputs = [
            s for s, _ in top_layers(root["layers"][chosen.segment]) if _kind(s) == "input_layer"
        ]
        replicas = max(len(slices) // max(len(inputs), 1), 1)
    return Pattern(
        "parallel" if parallel else "wrapped",
        chosen.name,
        tuple(n.name for n in nested),
        replicas=replicas,
        slices=tuple(slices),
        merges=tuple(merges),
    ), chosen


def _own_weights(group: h5py.Group, base: str, file: str, member: str | None) -> list[Weight]:
    """A layer group's tensors: its own ``vars`` first, then sub-objects (``cell``...)."""
    out: list[Weight] = []
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        for k in numeric_keys(own):
            ref = tensor_ref(own[k], file, member)
            out.append(Weight(_rel(ref, base), ref))
    for key in sorted(group):
        if key in ("vars", "layers"):
            continue
        sub = group[key]
        if isinstance(sub, h5py.Group):
            out.extend(_own_weights(sub, base, file, member))
    return out


def _rel(ref: TensorRef, base: str) -> str:
    assert isinstance(ref.location, H5Location)
    return ref.location.path.removeprefix(base)


def layer_tree(
    group: h5py.Group,
    file: str,
    member: str | None,
    order: Sequence[tuple[str, str | None]] | None = None,
    configs: Mapping[str, JSONObject] | None = None,
) -> tuple[Layer, ...]:
    """The layers under ``group/layers`` (in ``order``: ``(name, class)`` from a config).

    Weight names are paths relative to the model holding the layer (``layers/dense/vars/0``).
    """
    layers = group.get("layers")
    if not isinstance(layers, h5py.Group):
        return ()
    base = group.name.rstrip("/") + "/"
    by_name = {name: seg for seg, name in top_layers(group)}
    if order is None:
        seq: list[tuple[str, str | None]] = [
            (var_name(layers[s]) or s, None) for s in sorted(layers, key=_natural)
        ]
    else:
        seq = [(n, c) for n, c in order if n in by_name]
    out = []
    for name, cls in seq:
        seg = by_name.get(name, name)
        g = layers[seg]
        entry = (configs or {}).get(name)
        children: tuple[Layer, ...] = ()
        if isinstance(g.get("layers"), h5py.Group):
            children = layer_tree(g, file, member, _order_of(entry), _configs_of(entry))
        own = _own_weights(g, base, file, member)
        weights = tuple(own) + tuple(w for c in _leaves(children) for w in c.weights)
        if children:
            weights = tuple(own) + tuple(
                Weight(_rel(w.tensor, base), w.tensor) for c in _leaves(children) for w in c.weights
            )
        out.append(Layer(name, cls, weights, children, config=entry, key=g.name))
    return tuple(out)


def _leaves(layers: Sequence[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        out.extend(_leaves(layer.layers) if layer.layers else [layer])
    return out


def _order_of(entry: JSONObject | None) -> list[tuple[str, str | None]] | None:
    if entry is None:
        return None
    return [(n, e.get("class_name")) for e in config_entries(entry) if (n := entry_name(e))]


def _configs_of(entry: JSONObject | None) -> dict[str, JSONObject] | None:
    if entry is None:
        return None
    return {n: e for e in config_entries(entry) if (n := entry_name(e)) is not None}


def config_entries(config: JSONObject) -> list[dict[str, Any]]:
    """The layer entries of a Keras 3 model config (``config.layers``)."""
    inner = config.get("config")
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    return [x for x in layers if isinstance(x, dict)] if isinstance(layers, list) else []


def entry_name(entry: Mapping[str, Any]) -> str | None:
    """A config entry's layer name."""
    cfg = entry.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name) if name is not None else entry.get("name")


def model_layer(
    root: h5py.Group,
    file: str,
    member: str | None,
    name: str,
    config: JSONObject | None = None,
) -> Layer:
    """The whole tree as a model Layer (its own ``vars``, then its layers)."""
    layers = layer_tree(root, file, member, _order_of(config), _configs_of(config))
    own = tuple(_own_weights_root(root, file, member))
    weights = own + tuple(
        Weight(_rel(w.tensor, "/"), w.tensor) for c in _leaves(layers) for w in c.weights
    )
    return Layer(
        name,
        str(config.get("class_name")) if config and config.get("class_name") else None,
        weights,
        layers,
        layer_names=tuple(layer.name for layer in layers),
        config=config,
        key="/",
    )


def _own_weights_root(root: h5py.Group, file: str, member: str | None) -> list[Weight]:
    own = root.get("vars")
    if not isinstance(own, h5py.Group):
        return []
    out = []
    for k in numeric_keys(own):
        ref = tensor_ref(own[k], file, member)
        out.append(Weight(_rel(ref, "/"), ref))
    return out


def find_layer(model: Layer, name: str) -> Layer | None:
    """The top-level layer of ``model`` named ``name``."""
    return next((layer for layer in model.layers if layer.name == name), None)


# --- optimizer -----------------------------------------------------------------------------


def optimizer_shapes(root: h5py.Group) -> list[tuple[tuple[int, ...], str]] | None:
    """(shape, dtype) of ``optimizer/vars/<i>`` in index order; None when absent."""
    g = root.get("optimizer/vars")
    if not isinstance(g, h5py.Group):
        return None
    return [dataset_info(g[k])[:2] for k in numeric_keys(g)]


def _header_size(opt: Sequence[tuple[tuple[int, ...], str]], schedule: bool | None) -> int:
    """Iteration counter plus the learning rate variable (absent for a schedule)."""
    if schedule is None:
        schedule = not (len(opt) > 1 and opt[1][0] == () and opt[1][1].startswith("float"))
    return 1 if schedule else 2


def plan_optimizer(
    root: h5py.Group,
    nested: NestedModel,
    order: Sequence[tuple[str, bool]] | None = None,
    schedule: bool | None = None,
) -> OptimizerPlan:
    """Decide which optimizer variables the single-model file keeps.

    Args:
        root: the wrapper's weights root.
        nested: the template.
        order: the wrapper's variables as ``(dataset path, in template)`` in ``weights`` order
            (known from a ``.keras`` config), or None.
        schedule: whether the learning rate is a schedule (no variable), None when unknown.
    """
    opt = optimizer_shapes(root)
    if opt is None:
        return OptimizerPlan(None)
    if not opt:
        return OptimizerPlan(())
    inside: list[tuple[int, ...]] = []
    outside: list[tuple[int, ...]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            in_t = name.startswith(f"{nested.segment}/")
            (inside if in_t else outside).append(dataset_info(obj)[0])

    layers = root.get("layers")
    if isinstance(layers, h5py.Group):
        layers.visititems(visit)
    own = root.get("vars")
    if isinstance(own, h5py.Group):
        outside.extend(dataset_info(own[k])[0] for k in own)
    header = _header_size(opt, schedule)
    slot_shapes = {s for s, _ in opt[header:]}
    if not outside or not any(s in slot_shapes for s in outside):
        # Every trainable variable has slots of its own shape: none outside can have any.
        return OptimizerPlan(tuple(range(len(opt))))
    if order is None:
        return OptimizerPlan(
            None,
            "optimizer state not kept: the wrapper trains variables outside the template and "
            "a weights-only file does not record their order; convert the .keras file to keep it",
        )
    shapes = [_shape_of(root, p) for p, _ in order]
    keep = _select_slots([s for s, _ in opt], header, shapes, [t for _, t in order])
    if keep is None:
        return OptimizerPlan(
            None,
            "optimizer state not kept: its slots cannot be assigned to the template's variables "
            "unambiguously; the template starts with a fresh optimizer",
        )
    return OptimizerPlan(keep, "optimizer slots of the template's variables selected")


def _shape_of(root: h5py.Group, path: str) -> tuple[int, ...]:
    return dataset_info(root[path])[0]


def _compositions(k: int) -> list[tuple[int, ...]]:
    out = []
    for cuts in product((False, True), repeat=max(k - 1, 0)):
        parts, size = [], 1
        for cut in cuts:
            if cut:
                parts.append(size)
                size = 1
            else:
                size += 1
        parts.append(size)
        out.append(tuple(parts))
    return out


def _select_slots(
    opt: Sequence[tuple[int, ...]],
    header: int,
    shapes: Sequence[tuple[int, ...]],
    in_template: Sequence[bool],
) -> tuple[int, ...] | None:
    """Indices of the optimizer variables to keep, when a unique assignment exists.

    The slots are passes over the wrapper's trainable variables (a subsequence of all its
    variables); each pass holds ``m`` consecutive slots per variable, of that variable's shape.
    Every (pass split, alignment) consistent with the shapes must agree on the slots kept.
    """
    slots = list(opt[header:])
    answers: set[tuple[int, ...]] = set()
    for k in range(1, 5):
        if len(slots) % k:
            continue
        n = len(slots) // k
        for comp in _compositions(k):
            seq = _pass_shapes(slots, n, comp)
            if seq is None:
                continue
            members = _alignment_members(seq, shapes, in_template)
            if members is None:
                continue
            if any(len(m) != 1 for m in members):
                return None
            chosen = [j for j, m in enumerate(members) if True in m]
            keep = list(range(header))
            start = header
            for m in comp:
                for j in chosen:
                    keep.extend(range(start + j * m, start + (j + 1) * m))
                start += m * n
            answers.add(tuple(keep))
    if not slots:
        answers.add(tuple(range(header)))
    return answers.pop() if len(answers) == 1 else None


def _pass_shapes(
    slots: Sequence[tuple[int, ...]], n: int, comp: Sequence[int]
) -> list[tuple[int, ...]] | None:
    seq: list[tuple[int, ...]] | None = None
    start = 0
    for m in comp:
        this = []
        for j in range(n):
            group = slots[start + j * m : start + (j + 1) * m]
            if any(s != group[0] for s in group):
                return None
            this.append(group[0])
        if seq is not None and this != seq:
            return None
        seq = this
        start += m * n
    return seq


def _alignment_members(
    seq: Sequence[tuple[int, ...]],
    shapes: Sequence[tuple[int, ...]],
    in_template: Sequence[bool],
) -> list[set[bool]] | None:
    """For each trainable shape, the template membership of every variable it may be."""
    t, n = len(seq), len(shapes)
    if t > n:
        return None
    fwd = [[False] * n for _ in range(t)]
    for j in range(t):
        seen = j == 0
        for i in range(n):
            fwd[j][i] = seen and seq[j] == shapes[i]
            if j > 0 and fwd[j - 1][i]:
                seen = True
    bwd = [[False] * n for _ in range(t)]
    for j in range(t - 1, -1, -1):
        seen = j == t - 1
        for i in range(n - 1, -1, -1):
            bwd[j][i] = seen and seq[j] == shapes[i]
            if j < t - 1 and bwd[j + 1][i]:
                seen = True
    members = []
    for j in range(t):
        m = {in_template[i] for i in range(n) if fwd[j][i] and bwd[j][i]}
        if not m:
            return None
        members.append(m)
    return members


# --- the optimizer, as a Checkpoint sees it ---------------------------------------------


def read_optimizer(
    root: h5py.Group, file: str, member: str | None, class_name: str | None, config: Any = None
) -> Optimizer | None:
    """Every stored optimizer variable, in index order (None when there is no optimizer)."""
    g = root.get("optimizer/vars")
    if not isinstance(g, h5py.Group):
        return None
    keys = numeric_keys(g)
    refs = [tensor_ref(g[k], file, member) for k in keys]
    header = _header_size([(r.shape, r.dtype) for r in refs], None) if refs else 0
    iterations = None
    first = g[keys[0]] if keys else None
    if isinstance(first, h5py.Dataset) and first.shape == () and first.dtype.kind in "iu":
        iterations = int(first[()])
    name = class_name or (decode(g.attrs["name"]) if "name" in g.attrs else None)
    variables = []
    for i, (k, ref) in enumerate(zip(keys, refs, strict=True)):
        role: Any = "slot" if i >= header else ("iterations" if i == 0 else "learning_rate")
        variables.append(OptimizerVariable(f"optimizer/vars/{k}", ref, role))
    return Optimizer(name, tuple(variables), iterations, config)


def select_optimizer(optimizer: Optimizer | None, plan: OptimizerPlan) -> Optimizer | None:
    """The variables ``plan`` keeps, in output order (None when it keeps nothing)."""
    if optimizer is None or plan.keep is None:
        return None
    kept = tuple(optimizer.variables[i] for i in plan.keep)
    note = plan.note if len(kept) != len(optimizer.variables) else None
    return Optimizer(optimizer.class_name, kept, optimizer.iterations, optimizer.config, note)


# --- reading ---------------------------------------------------------------------------------


def read(path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
    """Read a Keras 3 ``.weights.h5`` into a Checkpoint (its layout is exact by paths)."""
    with open_h5(path) as f:
        if not isinstance(f.get("layers"), h5py.Group) and not isinstance(
            f.get("vars"), h5py.Group
        ):
            raise CorruptCheckpointError(
                f"expected a Keras 3 weights file (groups 'layers' and 'vars'); found neither in "
                f"{path.name}; check that it was written by Keras"
            )
        return read_tree(f, path, fmt, options.template, member=None)


def read_tree(
    f: h5py.File,
    path: Path,
    fmt: str,
    template: str | None,
    *,
    member: str | None,
    config: JSONObject | None = None,
    order_for: Callable[[NestedModel], Sequence[tuple[str, bool]]] | None = None,
    schedule: bool | None = None,
    slices: Sequence[str] | None = None,
    merges: Sequence[str] | None = None,
    compile_config: JSONObject | None = None,
    metadata: JSONObject | None = None,
    optimizer_class: str | None = None,
    keras_version: str | None = None,
) -> Checkpoint:
    """A Checkpoint of a Keras 3 weights tree (a ``.weights.h5``, or a ``.keras`` member).

    ``config`` (the archive's ``config.json``) gives layer order and classes;
    ``order_for(template)`` the wrapper's variables in ``weights`` order, for selecting the
    template's optimizer slots.
    """
    file = str(path)
    pattern, nested = find_pattern(f, template, path, slices, merges)
    name = entry_name(config) if config else None
    model = model_layer(f, file, member, name or path.name.split(".")[0], config)
    opt_cfg = (compile_config or {}).get("optimizer") if compile_config else None
    optimizer = read_optimizer(
        f, file, member, optimizer_class, opt_cfg if isinstance(opt_cfg, dict) else None
    )
    tpl = None
    t_opt = optimizer
    note = None
    if nested is not None:
        tpl = find_layer(model, nested.name)
        if tpl is not None:
            tpl = _rerooted(tpl, nested)
        order = order_for(nested) if order_for is not None else None
        plan = plan_optimizer(f, nested, order, schedule)
        t_opt = select_optimizer(optimizer, plan)
        if plan.note and plan.keep is None:
            note = plan.note
        elif t_opt is not None and plan.note and plan.keep is not None and optimizer is not None:
            if len(plan.keep) != len(optimizer.variables):
                note = plan.note
    source: LayoutSource = "config" if config is not None else "paths"
    layout = (
        Layout("unknown", None, "several nested models hold weights: choose one with template=NAME")
        if pattern.kind == "ambiguous"
        else Layout("exact", source)
    )
    return Checkpoint(
        path=file,
        format=fmt,
        family="keras3",
        full_model=config is not None,
        keras_version=keras_version,
        backend=None,
        model=model,
        pattern=pattern,
        layout=layout,
        template=tpl,
        model_config=config,
        training_config=compile_config,
        optimizer=optimizer,
        template_optimizer=t_opt,
        optimizer_note=note,
        metadata=metadata,
    )


def _rerooted(tpl: Layer, nested: NestedModel) -> Layer:
    """The template with weight names relative to its own group (as it would save alone)."""
    base = f"/layers/{nested.segment}/"
    weights = tuple(Weight(_rel(w.tensor, base), w.tensor) for w in tpl.weights)
    return Layer(
        tpl.name,
        tpl.class_name,
        weights,
        tpl.layers,
        layer_names=tuple(layer.name for layer in tpl.layers),
        config=tpl.config,
        key=base.rstrip("/"),
    )


# --- writing ---------------------------------------------------------------------------------


def plan_tensors(ck: Checkpoint) -> Planned:
    """Where each of the template's tensors (and kept optimizer variables) goes in the output.

    The template's subtree moves to the root (``/layers/functional/layers/dense/vars/0`` →
    ``/layers/dense/vars/0``); kept optimizer variables are renumbered in order.
    """
    subject = ck.subject
    base = (subject.key or "").rstrip("/") + "/"
    tensors = tuple(
        WrittenTensor("/" + _rel(w.tensor, base), w.tensor, "copied", w.name)
        for w in subject.weights
    )
    opt = ck.template_optimizer
    optimizer = tuple(
        WrittenTensor(f"/optimizer/vars/{i}", v.tensor, "copied", f"optimizer/vars/{i}")
        for i, v in enumerate(opt.variables if opt else ())
    )
    return tensors, optimizer


def write_tree(src: h5py.File, dst: h5py.File, ck: Checkpoint) -> None:
    """Copy the template's subtree to the root of ``dst`` (and the kept optimizer variables).

    h5py's object copy keeps dtype, shape, stored bytes, chunking, filters and attributes.
    """
    subject = ck.subject
    group = src[subject.key or "/"]
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for key in group:
        src.copy(group[key], dst, name=key)
    opt = ck.template_optimizer
    if opt is not None:
        svars = src["optimizer/vars"]
        dopt = dst.create_group("optimizer")
        for key, value in src["optimizer"].attrs.items():
            dopt.attrs[key] = value
        dvars = dopt.create_group("vars")
        for key, value in svars.attrs.items():
            dvars.attrs[key] = value
        for new, v in enumerate(opt.variables):
            loc = v.tensor.location
            assert isinstance(loc, H5Location)
            src.copy(src[loc.path], dvars, name=str(new))


def write(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Write the template's ``.weights.h5`` (``template.load_weights(tmp)`` works).

    A Keras 2 source is migrated: its weights go to Keras 3's object paths
    (:mod:`ckptfix.keras3_migration`), so that Keras 3's ``model.load_weights`` reads them.
    """
    if ck.family == "keras2":
        return write_migration(ck, tmp, options)
    if ck.family != "keras3":
        raise UnsupportedConversionError(
            f"expected a Keras 3 source for a Keras 3 .weights.h5 output; found {ck.format}; "
            "name the output .h5 to keep its format"
        )
    tensors, optimizer = plan_tensors(ck)
    total = sum(t.nbytes for t in tensors + optimizer)
    if options.progress is not None:
        options.progress(0, total)
    with open_h5(ck.path) as f, h5py.File(tmp, "w") as out:
        write_tree(f, out, ck)
    if options.progress is not None:
        options.progress(total, total)
    return Written(tmp, KERAS3_WEIGHTS, tensors, optimizer, warnings=warnings(ck))


# --- Keras 2 sources: the migration plan, written -----------------------------------------


def migration_plan(ck: Checkpoint, *, full_model: bool) -> Keras3Plan:
    """The Keras 3 plan of a Keras 2 checkpoint (see :mod:`ckptfix.keras3_migration`)."""
    from ..keras3_migration import plan_keras3

    return plan_keras3(ck, full_model=full_model)


def write_plan(plan: Keras3Plan, dst: h5py.File, options: WriteOptions) -> None:
    """Write a migration plan's weights tree into the new HDF5 file ``dst``.

    Every group Keras 3 writes is created (empty ``vars`` groups included, each ``vars``
    group named like its object); a tensor stored in HDF5 is copied by HDF5 (dtype, shape,
    storage and bytes kept, in constant memory); an encoded one is written from its values,
    one tensor at a time.
    """
    from ..storage import H5Files, read_tensor

    total = plan.nbytes
    done = 0
    if options.progress is not None:
        options.progress(0, total)
    for g in plan.groups:
        dst.require_group(g)
    for path, name in sorted(plan.names.items()):
        if path in dst:
            dst[path].attrs["name"] = name
    with H5Files() as files:
        for t in plan.tensors + plan.optimizer:
            parent, _, key = t.path.lstrip("/").rpartition("/")
            group = dst.require_group(parent) if parent else dst
            loc = t.source.location if t.source is not None else None
            if t.how == "copied" and isinstance(loc, H5Location) and t.derived is None:
                opened = files.get(loc.file, loc.member)
                opened.file.copy(opened.file[loc.path], group, name=key)
            else:
                if t.derived is not None:
                    value = t.derived.value(files)
                else:
                    assert t.source is not None
                    value = read_tensor(t.source, files)
                group.create_dataset(key, data=value)
            done += t.nbytes
            if options.progress is not None:
                options.progress(done, total)


def write_migration(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """A Keras 2 checkpoint's weights as a Keras 3 ``.weights.h5`` (no optimizer state)."""
    plan = migration_plan(ck, full_model=False)
    with h5py.File(tmp, "w") as out:
        write_plan(plan, out, options)
    return Written(
        tmp, KERAS3_WEIGHTS, plan.tensors, (), warnings=plan.warnings, notes=plan.notes
    )


def check_migration(plan: Keras3Plan, output: Checkpoint, f: h5py.File) -> list[str]:
    """A migrated weights tree holds the plan's groups and names (tensors are checked apart)."""
    problems = []
    found: set[str] = set()
    f.visit(lambda name: found.add(name) if isinstance(f[name], h5py.Group) else None)
    missing = sorted(set(plan.groups) - found)
    extra = sorted(found - set(plan.groups) - _dataset_parents(plan))
    if missing:
        problems.append(f"groups missing: {', '.join(missing[:5])}")
    if extra:
        problems.append(f"groups not planned: {', '.join(extra[:5])}")
    for path, name in plan.names.items():
        if path in f and decode(f[path].attrs.get("name", "")) != name:
            problems.append(f"{path}: name is not {name!r}")
    return problems


def _dataset_parents(plan: Keras3Plan) -> set[str]:
    out: set[str] = set()
    for t in plan.tensors + plan.optimizer:
        parts = t.path.strip("/").split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def warnings(ck: Checkpoint) -> tuple[str, ...]:
    """What a Keras 3 conversion dropped, said once."""
    return (ck.optimizer_note,) if ck.optimizer_note and ck.template_optimizer is None else ()


def check(source: Checkpoint, output: Checkpoint) -> list[str]:
    """The output's own ``vars`` carry the template's name (Keras matches it on load)."""
    subject = source.subject
    if output.family != "keras3":
        return [f"format: {output.format} is not a Keras 3 file"]
    if source.family == "keras2" and output.format == KERAS3_WEIGHTS:
        plan = migration_plan(source, full_model=False)
        with open_h5(output.path) as f:
            return check_migration(plan, output, f)
    with_name = _root_var_name(output)
    if source.template is not None and with_name != subject.name:
        return [f"vars: name is not {subject.name!r}"]
    return []


def _root_var_name(output: Checkpoint) -> str | None:
    from ..h5util import open_h5_member

    if output.format == KERAS3_WEIGHTS:
        with open_h5(output.path) as f:
            return var_name(f)
    with open_h5_member(Path(output.path), "model.weights.h5") as (f, _disk, _start):
        return var_name(f)


# --- the format --------------------------------------------------------------------------------


class Keras3Weights:
    """Keras 3 ``.weights.h5`` (object paths; nested models as subtrees)."""

    name = "Keras 3 .weights.h5"
    family: Family = "keras3"
    ids: tuple[str, ...] = (KERAS3_WEIGHTS,)
    read_options = frozenset({"template", "exact"})  # exact: always, by paths
    write_options = frozenset({"progress"})

    def sniff(self, probe: Probe) -> str | None:
        if probe.h5_keys is not None and any(k in probe.h5_keys for k in KERAS3_KEYS):
            return KERAS3_WEIGHTS
        return None

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        return read(path, fmt, options)

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        return KERAS3_WEIGHTS if dst.name.lower().endswith(".weights.h5") else None

    def accepts(self, ck: Checkpoint) -> bool:
        return ck.family in ("keras3", "keras2")

    def plan(self, ck: Checkpoint) -> Planned:
        if ck.family == "keras2":
            return migration_plan(ck, full_model=False).tensors, ()
        return plan_tensors(ck)

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        return write(ck, tmp, options)

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        return check(source, output)

    def suggest(self, path: Path) -> Path:
        name = path.name
        stem = name[: -len(".weights.h5")] if name.lower().endswith(".weights.h5") else path.stem
        return path.with_name(stem + ".single.weights.h5")


FORMAT = Keras3Weights()
