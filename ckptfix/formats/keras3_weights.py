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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import (
    AmbiguousTemplateError,
    CorruptCheckpointError,
    LayoutError,
    NothingToConvertError,
)
from ..h5util import dataset_info, decode, open_h5
from ..report import (
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    OptimizerState,
    TensorEntry,
    VerificationResult,
)

#: Path-segment kinds of the wrapper's slice and merge layers (``lambda_1``, ``concatenate``).
_SLICE_KINDS = ("lambda", "slice")
_MERGE_KINDS = ("concatenate",)


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


# --- reading -------------------------------------------------------------------------------


def var_name(group: h5py.Group) -> str | None:
    """The real name stored on a ``vars`` group (None when absent)."""
    v = group.get("vars")
    if not isinstance(v, h5py.Group) or "name" not in v.attrs:
        return None
    return decode(v.attrs["name"])


def _numeric_keys(group: h5py.Group) -> list[str]:
    keys = list(group.keys())
    try:
        return sorted(keys, key=int)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"expected numbered variables in {group.name}; found {keys[:5]}; the file is damaged"
        ) from exc


def count_datasets(group: h5py.Group) -> tuple[int, int, int]:
    """(tensors, parameters, bytes) under ``group``, from metadata only."""
    totals = [0, 0, 0]

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            shape, _dt, nbytes = dataset_info(obj)
            totals[0] += 1
            totals[1] += int(np.prod(shape)) if shape else 1
            totals[2] += nbytes

    group.visititems(visit)
    return totals[0], totals[1], totals[2]


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
            tensors = count_datasets(g)[0]
            if tensors:
                found.append(NestedModel(seg, name, tensors))
    return found


def choose_template(nested: Sequence[NestedModel], template: str | None, path: Path) -> NestedModel:
    """The nested model to lift out, by real name; refuse when none, unknown or ambiguous."""
    names = ", ".join(n.name for n in nested)
    if template is not None:
        for n in nested:
            if n.name == template:
                return n
        if not nested:
            raise NothingToConvertError(
                f"expected a model nested in {path.name} named {template!r}; found no nested "
                "model (the file is already a single model); load it directly"
            )
        raise LayoutError(
            f"expected a nested model named {template!r}; found {names}; "
            "pass one of these names to --template"
        )
    if not nested:
        raise NothingToConvertError(
            f"expected a model nested in another model; found none in {path.name} (it is "
            "already a single model's checkpoint); nothing to convert, load it directly"
        )
    if len(nested) > 1:
        raise AmbiguousTemplateError(
            f"expected one nested model; found {len(nested)} ({names}); "
            "pass --template NAME to choose one"
        )
    return nested[0]


# --- optimizer -----------------------------------------------------------------------------


def optimizer_shapes(root: h5py.Group) -> list[tuple[tuple[int, ...], str]] | None:
    """(shape, dtype) of ``optimizer/vars/<i>`` in index order; None when absent."""
    g = root.get("optimizer/vars")
    if not isinstance(g, h5py.Group):
        return None
    return [dataset_info(g[k])[:2] for k in _numeric_keys(g)]


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


# --- writing and verifying -----------------------------------------------------------------


def write_weights(
    src: h5py.File, dst: h5py.File, nested: NestedModel, plan: OptimizerPlan
) -> tuple[int, int]:
    """Copy the template's subtree to the root of ``dst`` (and the kept optimizer variables).

    Returns (tensors, bytes) of the template written (optimizer excluded).
    """
    group = src["layers"][nested.segment]
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for key in group:
        # h5py's object copy keeps dtype, shape, bytes, chunking, filters and attributes.
        src.copy(group[key], dst, name=key)
    if plan.keep is not None:
        svars = src["optimizer/vars"]
        dopt = dst.create_group("optimizer")
        for key, value in src["optimizer"].attrs.items():
            dopt.attrs[key] = value
        dvars = dopt.create_group("vars")
        for key, value in svars.attrs.items():
            dvars.attrs[key] = value
        for new, old in enumerate(plan.keep):
            src.copy(svars[str(old)], dvars, name=str(new))
    tensors, _params, nbytes = count_datasets(group)
    return tensors, nbytes


def compare_weights(
    src: h5py.File, dst: h5py.File, nested: NestedModel, plan: OptimizerPlan
) -> tuple[int, int, list[str]]:
    """Compare every tensor the output should hold with its source. (tensors, bytes, problems)."""
    pairs: list[tuple[str, str]] = []
    base = f"layers/{nested.segment}/"

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            pairs.append((base + name, name))

    src["layers"][nested.segment].visititems(visit)
    if plan.keep is not None:
        pairs += [(f"optimizer/vars/{o}", f"optimizer/vars/{n}") for n, o in enumerate(plan.keep)]
    expected = {d for _, d in pairs}
    problems: list[str] = []
    extra: list[str] = []

    def visit_dst(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name not in expected:
            extra.append(name)

    dst.visititems(visit_dst)
    problems += [f"{e}: not in the source's template" for e in extra]
    tensors = nbytes = 0
    for s, d in pairs:
        if d not in dst:
            problems.append(f"{d}: missing")
            continue
        a, b = src[s], dst[d]
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{d}: {b.shape} {b.dtype} != {a.shape} {a.dtype}")
            continue
        va, vb = a[()], b[()]
        if np.asarray(va).tobytes() != np.asarray(vb).tobytes():
            problems.append(f"{d}: bytes differ")
            continue
        tensors += 1
        nbytes += dataset_info(a)[2]
    if not isinstance(dst.get("vars"), h5py.Group) or var_name(dst) != nested.name:
        problems.append(f"vars: name is not {nested.name!r}")
    return tensors, nbytes, problems


def load_plan(f: h5py.File, path: Path, template: str | None) -> tuple[NestedModel, OptimizerPlan]:
    """The template and optimizer plan of a weights-only file."""
    nested = choose_template(find_nested(f), template, path)
    return nested, plan_optimizer(f, nested)


def write_conversion(src: Path, tmp: Path, fmt: str, opts: Any) -> ConversionResult:
    """Write the template's weights file (``template.load_weights(tmp)`` works) to ``tmp``."""
    with open_h5(src) as f:
        nested, plan = load_plan(f, src, opts.template)
        with h5py.File(tmp, "w") as out:
            tensors, nbytes = write_weights(f, out, nested, plan)
        replicas = _replicas(f, nested)
        layers = _weighted_layers(f["layers"][nested.segment])
    return conversion_result(
        src,
        tmp,
        fmt,
        nested,
        plan,
        replicas=replicas,
        layers=layers,
        tensors=tensors,
        nbytes=nbytes,
        full_model=False,
        warnings=(),
    )


def conversion_result(
    src: Path,
    tmp: Path,
    fmt: str,
    nested: NestedModel,
    plan: OptimizerPlan,
    *,
    replicas: int | None,
    layers: int,
    tensors: int,
    nbytes: int,
    full_model: bool,
    warnings: tuple[str, ...],
) -> ConversionResult:
    """The result of a Keras 3 conversion written to ``tmp`` (the dispatcher verifies it).

    The layout is exact: object paths (``.weights.h5``) or the config (``.keras``) place every
    tensor. A note about dropped optimizer state comes first among the warnings.
    """
    note = (plan.note,) if plan.note and plan.keep is None else ()
    return ConversionResult(
        source=str(src),
        destination=str(tmp),
        format=fmt,
        template=nested.name,
        replicas=replicas,
        layers=layers,
        tensors=tensors,
        bytes=nbytes,
        layout="exact",
        layout_source="config" if full_model else "paths",
        verified=False,
        optimizer_kept=plan.keep is not None,
        full_model=full_model,
        seconds=0.0,
        warnings=note + warnings,
    )


def verify_conversion(src: Path, dst: Path, *, template: str | None = None) -> VerificationResult:
    """Compare the template inside ``src`` with the single-model weights file ``dst``."""
    with open_h5(src) as f, open_h5(dst) as g:
        nested, plan = load_plan(f, src, template)
        if plan.keep is not None and "optimizer" not in g:
            plan = OptimizerPlan(None)
        tensors, nbytes, problems = compare_weights(f, g, nested, plan)
    return VerificationResult(
        source=str(src),
        destination=str(dst),
        tensors=tensors,
        bytes=nbytes,
        ok=not problems,
        mismatches=tuple(problems),
    )


# --- inspecting ----------------------------------------------------------------------------


def _weighted_layers(group: h5py.Group) -> int:
    n = 0
    layers = group.get("layers")
    if not isinstance(layers, h5py.Group):
        return 0
    for seg in layers:
        g = layers[seg]
        if isinstance(g.get("layers"), h5py.Group):
            n += _weighted_layers(g)
        elif count_datasets(g)[0]:
            n += 1
    return n


def _kind(segment: str) -> str:
    base = segment
    tail = segment.rsplit("_", 1)
    if len(tail) == 2 and tail[1].isdigit():
        base = tail[0]
    return base


def _replicas(root: h5py.Group, nested: NestedModel) -> int | None:
    slices = [s for s, _ in top_layers(root) if _kind(s) in _SLICE_KINDS]
    if not slices:
        return None
    inputs = [s for s, _ in top_layers(root["layers"][nested.segment]) if _kind(s) == "input_layer"]
    return max(len(slices) // max(len(inputs), 1), 1)


def _natural(segment: str) -> tuple[str, int]:
    tail = segment.rsplit("_", 1)
    if len(tail) == 2 and tail[1].isdigit():
        return tail[0], int(tail[1])
    return segment, 0


def tensor_entries(group: h5py.Group, prefix: str) -> tuple[TensorEntry, ...]:
    """The tensors of one layer group (own ``vars`` first, then sub-objects), in index order."""
    out: list[TensorEntry] = []
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        for k in _numeric_keys(own):
            shape, dtype, nbytes = dataset_info(own[k])
            out.append(TensorEntry(f"{prefix}/{k}", shape, dtype, nbytes))
    for key in sorted(group):
        if key in ("vars", "layers") or not isinstance(group[key], h5py.Group):
            continue
        out.extend(tensor_entries(group[key], f"{prefix}/{key}"))
    return tuple(out)


def layer_entries(
    root: h5py.Group, order: Sequence[tuple[str, str | None]] | None = None
) -> tuple[LayerEntry, ...]:
    """The layers under ``root/layers``; ``order`` = ``(real name, class)`` from a config."""
    layers = root.get("layers")
    if not isinstance(layers, h5py.Group):
        return ()
    by_name = {name: seg for seg, name in top_layers(root)}
    if order is None:
        segs = sorted(layers, key=_natural)
        seq: list[tuple[str, str | None]] = [(var_name(layers[s]) or s, None) for s in segs]
    else:
        seq = [(n, c) for n, c in order if n in by_name]
    out = []
    for name, cls in seq:
        seg = by_name.get(name, name)
        g = layers[seg]
        children = layer_entries(g) if isinstance(g.get("layers"), h5py.Group) else ()
        own = tensor_entries(g, f"layers/{seg}")
        weights = own + tuple(w for c in _flatten(children) for w in c.weights)
        out.append(LayerEntry(name, cls, weights if children else own, children))
    return tuple(out)


def _flatten(entries: Sequence[LayerEntry]) -> list[LayerEntry]:
    out = []
    for e in entries:
        if e.children:
            out.extend(_flatten(e.children))
        else:
            out.append(e)
    return out


def optimizer_state(root: h5py.Group, class_name: str | None = None) -> OptimizerState:
    """What the file stores of the optimizer."""
    g = root.get("optimizer/vars")
    if not isinstance(g, h5py.Group):
        return OptimizerState(present=False)
    keys = _numeric_keys(g)
    iterations = None
    first = g[keys[0]] if keys else None
    if isinstance(first, h5py.Dataset) and first.shape == () and first.dtype.kind in "iu":
        iterations = int(g[keys[0]][()])
    opt = [dataset_info(g[k])[:2] for k in keys]
    header = _header_size(opt, None) if opt else 0
    nbytes = sum(dataset_info(g[k])[2] for k in keys)
    name = class_name or (decode(g.attrs["name"]) if "name" in g.attrs else None)
    return OptimizerState(
        present=True,
        class_name=name,
        iterations=iterations,
        slots=max(len(keys) - header, 0),
        tensors=len(keys),
        bytes=nbytes,
    )


def build_report(
    path: Path,
    fmt: str,
    root: h5py.Group,
    *,
    keras_version: str | None,
    order: Sequence[tuple[str, str | None]] | None = None,
    nested_order: Mapping[str, Sequence[tuple[str, str | None]]] | None = None,
    optimizer_class: str | None = None,
    slices: Sequence[str] | None = None,
    merges: Sequence[str] | None = None,
    notes: Sequence[str] = (),
    choice: str | None = None,
) -> CheckpointReport:
    """A :class:`CheckpointReport` of a Keras 3 weights tree (``root``).

    ``choice`` names the nested model to describe when there are several (``--template``).
    """
    nested = find_nested(root)
    top = top_layers(root)
    if slices is None:
        slices = [n for s, n in top if _kind(s) in _SLICE_KINDS]
    if merges is None:
        merges = [n for s, n in top if _kind(s) in _MERGE_KINDS]
    template = nested[0] if len(nested) == 1 else None
    if choice is not None and nested:
        template = choose_template(nested, choice, path)
    if template is not None:
        group = root["layers"][template.segment]
        sub_order = (nested_order or {}).get(template.name)
        layers = layer_entries(group, sub_order)
        tensors, params, nbytes = count_datasets(group)
        dtypes = _dtypes(group)
    else:
        layers = layer_entries(root, order)
        tensors, params, nbytes = count_datasets(root["layers"]) if "layers" in root else (0, 0, 0)
        dtypes = _dtypes(root["layers"]) if "layers" in root else {}
    parallel = template is not None and bool(slices) and bool(merges)
    if not nested:
        command = None
        note = "a single model's checkpoint: nothing to convert"
    elif template is None or len(nested) > 1:
        command = (
            f"ckptfix convert {path.name} OUT --template {template.name if template else 'NAME'}"
        )
        note = "several nested models hold weights: choose one with --template"
    else:
        command = f"ckptfix convert {path.name} OUT"
        note = None
    return CheckpointReport(
        path=str(path),
        format=fmt,
        keras_version=keras_version,
        backend=None,
        parallel=parallel,
        wrapped=bool(nested),
        template=template.name if template else None,
        replicas=_replicas(root, template) if parallel and template else None,
        slices=tuple(slices) if nested else (),
        merges=tuple(merges) if nested else (),
        candidates=tuple(n.name for n in nested),
        layers=layers,
        tensors=tensors,
        parameters=params,
        bytes=nbytes,
        dtypes=dtypes,
        optimizer=optimizer_state(root, optimizer_class),
        layout="exact",
        layout_source="paths",
        layout_note=note,
        convert_command=command,
        notes=tuple(notes),
    )


def _dtypes(group: h5py.Group) -> dict[str, int]:
    out: dict[str, int] = {}

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            d = dataset_info(obj)[1]
            out[d] = out.get(d, 0) + 1

    group.visititems(visit)
    return out


def inspect_checkpoint(path: Path, fmt: str, opts: Any = None) -> CheckpointReport:
    """Describe a Keras 3 ``.weights.h5`` file: its nested models, layers and optimizer.

    ``opts.template`` (a :class:`ckptfix.convert.ConvertOptions`) picks one of several nested
    models to describe.
    """
    with open_h5(path) as f:
        if not isinstance(f.get("layers"), h5py.Group) and not isinstance(
            f.get("vars"), h5py.Group
        ):
            raise CorruptCheckpointError(
                f"expected a Keras 3 weights file (groups 'layers' and 'vars'); found neither in "
                f"{path.name}; check that it was written by Keras"
            )
        choice = getattr(opts, "template", None)
        return build_report(path, fmt, f, keras_version=None, choice=choice)
