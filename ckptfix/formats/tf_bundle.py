"""TensorFlow checkpoints of tf.keras (``prefix.index`` + ``prefix.data-*``): read and write.

What tf.keras wrote for ``model.save_weights("path")`` / ``ModelCheckpoint("path")`` without
``.h5``. The bundle itself (table file, entries, data shards, checksums) is :mod:`ckptfix.bundle`;
this module reads the checkpoint's ``TrackableObjectGraph`` (the ``_CHECKPOINTABLE_OBJECT_GRAPH``
string tensor) into the format-neutral :class:`~ckptfix.checkpoint.Checkpoint`.

**What the object graph records, seen on tf_keras 2.21 files (TF 2.0-2.3 wrote the same).**
A model node has children ``layer-N`` (every layer, in ``model.layers`` order) and
``layer_with_weights-K`` (the K-th layer holding weights); the parallel wrapper's only weighted
layer is the template, ``layer_with_weights-0``. So the template's layers, nested models and
their order are recorded exactly. A layer node's children are its variables by attribute name
(``kernel``, ``gamma``), in *tracking* order (the order ``add_weight`` created them), and its
sublayers (``cell``, ``forward_layer``). Each variable's ``SerializedTensor`` carries its key and
``full_name`` (``dense/kernel``: the variable's Keras name). Names of layers holding no variable
and of nested models are **not** recorded (they are shown by object path here), nor is any
config, nor which variables are **trainable**.

**The order Keras 2 loads a layer's weights in** (``.h5`` files, positional) is its trainable
weights, then its non-trainable ones, each in creation order; for a nested model, all of its
layers' trainable weights, then all non-trainable ones (a frozen layer's weights all count as
non-trainable). It is established here, per variable, from evidence in this order:

1. the optimizer's slots (a variable with slots was trainable while training): legacy
   ``OptimizerV2`` checkpoints list ``slot_variables`` by variable node; Keras >= 2.11
   optimizers name each slot after its variable (``Adam/m/dense/kernel``) and store them in
   the order of ``model.trainable_variables``, which is checked against the order computed;
2. Keras's own non-trainable weight names (BatchNormalization's ``moving_mean`` and
   ``moving_variance``, ``renorm_*``; Normalization's ``mean``/``variance``/``count``) and its
   trainable ones (``kernel``, ``bias``, ``gamma``, ``beta``, ``embeddings``...);
3. where neither decides (a custom layer's unknown weight next to others, or which layers of a
   nested model were frozen, in a checkpoint without optimizer slots) the layout is reported
   *inferred*, with the reason, and a ``.h5`` written from it says so. Layer boundaries are
   never guessed.

Writing a TensorFlow checkpoint of the template alone (a destination without suffix) copies the
data shards with the kernel, appends the rewritten object graph (the template as root, the
optimizer beside it, slot references renumbered) to the first shard, and writes a new index:
the template's tensors keep their bytes and offsets, under keys computed from the new graph as
TensorFlow computes them (escaped object paths, ``/.ATTRIBUTES/VARIABLE_VALUE``,
``/.OPTIMIZER_SLOT/``).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import bundle
from ..checkpoint import (
    BundleLocation,
    Checkpoint,
    Family,
    Layer,
    Layout,
    Optimizer,
    OptimizerRole,
    OptimizerVariable,
    Pattern,
    StorageOptions,
    TensorRef,
    Weight,
)
from ..errors import (
    AmbiguousTemplateError,
    CorruptCheckpointError,
    LayoutError,
    NotACheckpointError,
    NothingToConvertError,
    TemplateNotFoundError,
    UnsupportedConversionError,
)
from ..storage import copy_file
from . import TF_CHECKPOINT
from .base import Planned, Probe, ReadOptions, WriteOptions, Written, WrittenTensor

_LAYER = re.compile(r"^layer-(\d+)$")
_WEIGHTED = re.compile(r"^layer_with_weights-(\d+)$")
VALUE = "VARIABLE_VALUE"
#: Children a SavedModel adds to every layer (lists of variables, functions): not structure.
_NOT_STRUCTURE = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "regularization_losses",
        "keras_api",
        "layer_regularization_losses",
        "layer_metrics",
        "metrics",
        "layers",
        "__call__",
        "call_and_return_all_conditional_losses",
        "call_and_return_conditional_losses",
        "_default_save_signature",
        "signatures",
        "optimizer",
        "train_function",
        "train_tf_function",
        "test_function",
        "predict_function",
        "save_counter",
    }
)
#: Weights Keras creates non-trainable, and trainable, by their attribute name.
NON_TRAINABLE_NAMES = frozenset(
    {"moving_mean", "moving_variance", "renorm_mean", "renorm_stddev", "mean", "variance", "count"}
)
TRAINABLE_NAMES = frozenset(
    {
        "kernel",
        "bias",
        "gamma",
        "beta",
        "embeddings",
        "recurrent_kernel",
        "depthwise_kernel",
        "pointwise_kernel",
        "alpha",
        "moving_mean_trainable",
    }
)
_MAX_NODES = 10_000_000
_MAX_DEPTH = 200
_BUNDLE = StorageOptions("bundle")


# --- the object graph ---------------------------------------------------------------------


@dataclass
class Graph:
    """A bundle's index and its parsed ``TrackableObjectGraph``."""

    index: bundle.Index
    nodes: list[Any]
    name: str  # the index file's name, for messages

    def children(self, node: int) -> list[tuple[str, int]]:
        return [(str(c.local_name), int(c.node_id)) for c in self.nodes[node].children]

    def child(self, node: int, name: str) -> int | None:
        return next((c for n, c in self.children(node) if n == name), None)

    def value(self, node: int) -> bundle.Entry | None:
        """The tensor a variable node holds (its ``VARIABLE_VALUE`` attribute)."""
        for a in self.nodes[node].attributes:
            if a.name == VALUE:
                return self.index.entries.get(str(a.checkpoint_key))
        return None

    def full_name(self, node: int) -> str:
        for a in self.nodes[node].attributes:
            if a.name == VALUE:
                return str(a.full_name)
        return ""


def load_graph(prefix: Path) -> Graph:
    """Read a bundle's index and object graph (metadata only), every reference checked.

    Raises:
        CorruptCheckpointError, UnsupportedFormatError: as :func:`ckptfix.bundle.read_index`.
        NotACheckpointError: a bundle without an object graph (not an object-based checkpoint).
    """
    from google.protobuf.message import DecodeError

    from ..protos import TrackableObjectGraph

    index = bundle.read_index(prefix)
    name = bundle.index_file(prefix).name
    entry = index.entries.get(bundle.GRAPH_KEY)
    if entry is None:
        raise NotACheckpointError(
            f"expected a checkpoint written by Keras (model.save_weights); found {name} without "
            "an object graph (a name-based TF1 checkpoint); restore it in TensorFlow and save "
            "the model with save_weights"
        )
    raw = bundle.read_string_scalar(index, entry)
    graph = TrackableObjectGraph()
    try:
        graph.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CorruptCheckpointError(
            f"expected a readable object graph in {name}; found it does not parse ({exc}); "
            "the checkpoint is corrupt"
        ) from exc
    nodes = list(graph.nodes)
    n = len(nodes)
    if not 0 < n <= _MAX_NODES:
        raise CorruptCheckpointError(
            f"expected an object graph of 1 to {_MAX_NODES:,} nodes in {name}; found {n:,}; "
            "the checkpoint is corrupt"
        )
    for i, node in enumerate(nodes):
        ids = [c.node_id for c in node.children] + [
            x
            for s in node.slot_variables
            for x in (s.original_variable_node_id, s.slot_variable_node_id)
        ]
        if any(not 0 <= j < n for j in ids):
            raise CorruptCheckpointError(
                f"expected object graph references within its {n} nodes in {name}; found node "
                f"{i} pointing outside; the checkpoint is corrupt"
            )
        for a in node.attributes:
            if a.name == VALUE and str(a.checkpoint_key) not in index.entries:
                raise CorruptCheckpointError(
                    f"expected the tensor {a.checkpoint_key!r} named by the object graph in "
                    f"{name}; found no such entry; the checkpoint is corrupt"
                )
    return Graph(index, nodes, name)


# --- layers and their weights ------------------------------------------------------------


@dataclass
class TfLayer:
    """A layer (or model) node and what it holds."""

    node: int
    key: str  # object path from the checkpoint's root
    model: bool
    layers: list[TfLayer] = field(default_factory=list)  # models: weighted layers, in order
    layer_count: int = 0  # models: every layer (layer-N children)
    own: list[int] = field(default_factory=list)  # leaves: direct variable children
    subs: list[TfLayer] = field(default_factory=list)  # leaves: sublayers holding variables
    names: dict[int, str] = field(default_factory=dict)  # variable node -> attribute name

    def variables(self) -> list[int]:
        """Every variable under this layer, own ones first, then sublayers' (creation order)."""
        if self.model:
            return [v for sub in self.layers for v in sub.variables()]
        return self.own + [v for s in self.subs for v in s.variables()]


def is_model(g: Graph, node: int) -> bool:
    return any(_LAYER.match(n) or _WEIGHTED.match(n) for n, _ in g.children(node))


def build_layer(g: Graph, node: int, key: str, seen: set[int], depth: int = 0) -> TfLayer:
    """The layer tree under ``node``; each variable belongs to the first layer reaching it.

    Raises:
        CorruptCheckpointError: nesting deeper than any Keras model, or inconsistent layers.
    """
    if depth > _MAX_DEPTH:
        raise CorruptCheckpointError(
            f"expected layers nested at most {_MAX_DEPTH} deep in {g.name}; found deeper; the "
            "checkpoint is corrupt"
        )
    if is_model(g, node):
        kids = g.children(node)
        ordered = sorted((int(m.group(1)), c) for n, c in kids if (m := _LAYER.match(n)))
        weighted = sorted((int(m.group(1)), c) for n, c in kids if (m := _WEIGHTED.match(n)))
        if [k for k, _ in weighted] != list(range(len(weighted))):
            raise CorruptCheckpointError(
                f"expected layer_with_weights-0..{len(weighted) - 1} under {key or 'the root'} "
                f"in {g.name}; found {[k for k, _ in weighted][:6]}; the checkpoint is corrupt"
            )
        layer_ids = [c for _, c in ordered]
        w_ids = [c for _, c in weighted]
        if ordered and [c for c in layer_ids if c in set(w_ids)] != w_ids:
            raise CorruptCheckpointError(
                f"expected the weighted layers under {key or 'the root'} in {g.name} in layer "
                "order; found them out of order; the checkpoint is corrupt"
            )
        out = TfLayer(node, key, True, layer_count=len(ordered) or len(weighted))
        for k, c in weighted:
            sub_key = f"{key}/layer_with_weights-{k}" if key else f"layer_with_weights-{k}"
            out.layers.append(build_layer(g, c, sub_key, seen, depth + 1))
        return out
    out = TfLayer(node, key, False)
    for name, c in g.children(node):
        if c in seen or name in _NOT_STRUCTURE:
            continue
        if g.value(c) is not None:
            seen.add(c)
            out.own.append(c)
            out.names[c] = name
    for name, c in g.children(node):
        if c in seen or name in _NOT_STRUCTURE or g.value(c) is not None:
            continue
        seen.add(c)
        sub = build_layer(g, c, f"{key}/{escape(name)}", seen, depth + 1)
        if sub.variables():
            out.subs.append(sub)
    return out


def escape(name: str) -> str:
    """TensorFlow's ``escape_local_name``: ``.`` -> ``..``, ``/`` -> ``.S``."""
    return name.replace(".", "..").replace("/", ".S")


# --- which variables were trainable: evidence, and the order Keras 2 loads ------------------


@dataclass
class Evidence:
    """What decides each variable's trainability (see the module docstring)."""

    slotted: set[int] | None  # variables with optimizer slots (None: no such evidence)
    names: dict[int, str]  # variable -> attribute name
    trainable_lists: dict[int, tuple[list[int], list[int]]] | None = None  # SavedModel's own
    shapes: dict[int, tuple[int, ...]] = field(default_factory=dict)  # variable -> shape

    def kind(self, var: int, layer_trainable: bool | None) -> str:
        """'T' (created trainable), 'N' (non-trainable) or '?' (unknown)."""
        if self.slotted is not None:
            if var in self.slotted:
                return "T"
            if layer_trainable:
                return "N"  # a trainable layer's variable without slots
        name = self.names.get(var, "")
        if name in NON_TRAINABLE_NAMES:
            return "N"
        if name in TRAINABLE_NAMES:
            return "T"
        return "?"

    def layer_trainable(self, layer: TfLayer) -> bool | None:
        """Whether a layer was trainable (not frozen) while training, when the file says."""
        if self.slotted is None:
            return None
        vs = layer.variables()
        if any(v in self.slotted for v in vs):
            return True
        if any(self.kind(v, None) == "T" for v in vs):
            return False  # created trainable, no slots: frozen
        return None  # only non-trainable weights: frozen or not, the order is the same


@dataclass
class Order:
    """A layer's weights in Keras 2 load order: trainable block, non-trainable block."""

    t: list[int]
    n: list[int]
    sure: bool = True
    why: list[str] = field(default_factory=list)
    #: reasons a wrong guess would load without error (same shapes, other order): refused
    silent: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[int]:
        return self.t + self.n


def _leaf(layer: TfLayer, ev: Evidence, label: str) -> tuple[Order, list[int]]:
    """(order when trainable, order when frozen) of a non-model layer."""
    tr = ev.layer_trainable(layer)
    t: list[int] = []
    n: list[int] = []
    unknown: list[int] = []
    for v in layer.own:
        k = ev.kind(v, tr)
        (n if k == "N" else t).append(v)
        if k == "?":
            unknown.append(v)
    frozen_order = [v for v in layer.own if v in t] + [v for v in layer.own if v in n]
    sure = True
    why: list[str] = []
    for s in layer.subs:
        o, f = _leaf(s, ev, label)
        t += o.t
        n += o.n
        frozen_order += f
        sure = sure and o.sure
        why += o.why
    if unknown and len(layer.variables()) > 1 and tr is None:
        sure = False
        names = ", ".join(ev.names.get(v, "?") for v in unknown[:3])
        why.append(
            f"layer {label!r} holds weights ({names}) whose trainability a TF checkpoint does "
            "not record: they were kept in creation order"
        )
    return Order(t, n, sure, why), frozen_order


def layer_order(layer: TfLayer, ev: Evidence, label: str) -> Order:
    """The Keras 2 load order of one layer of the template (its own ``.h5`` group)."""
    if ev.trainable_lists is not None and layer.node in ev.trainable_lists:
        t, n = ev.trainable_lists[layer.node]
        return Order(list(t), list(n))
    if not layer.model:
        o, frozen = _leaf(layer, ev, label)
        tr = ev.layer_trainable(layer)
        if tr is False:
            return Order([], frozen, o.sure, o.why)
        if tr is None and frozen != o.all:
            o.sure = False
            o.why.append(
                f"layer {label!r} has sublayers, and whether it was frozen (which changes its "
                "weights' order) is not recorded: assumed trainable"
            )
        return o
    return _model_order(layer, ev, label)


def _model_order(model: TfLayer, ev: Evidence, label: str) -> Order:
    parts: list[tuple[Order, bool | None]] = []
    for i, sub in enumerate(model.layers):
        parts.append((layer_order(sub, ev, f"{label}/{i}"), ev.layer_trainable(sub)))

    def assemble(frozen: set[int]) -> tuple[list[int], list[int]]:
        t: list[int] = []
        n: list[int] = []
        for i, (o, tr) in enumerate(parts):
            if tr is False or i in frozen:
                n += o.all
            else:
                t += o.t
                n += o.n
        return t, n

    t, n = assemble(set())
    out = Order(t, n)
    for o, _ in parts:
        out.sure = out.sure and o.sure
        out.why += o.why
        out.silent += o.silent
    unknown = [i for i, (o, tr) in enumerate(parts) if tr is None and o.t]
    if unknown and len(parts) > 1:
        out.sure = False
        out.why.append(
            f"which layers of the nested model {label!r} were frozen (frozen layers' weights "
            "load after all trainable ones) is not recorded in a checkpoint without optimizer "
            "slots: assumed none"
        )
        base = t + n
        for i in unknown:  # a wrong guess that loads without error must not be written
            alt = sum(assemble({i}), [])
            if alt != base and [ev.shapes.get(v) for v in alt] == [ev.shapes.get(v) for v in base]:
                out.silent.append(
                    f"had a layer of the nested model {label!r} been frozen, its weights would "
                    "load in another order without any error (same shapes)"
                )
                break
    return out


# --- the optimizer ---------------------------------------------------------------------------


@dataclass
class TfOptimizer:
    """The optimizer's state in the object graph."""

    node: int
    kind: str  # "keras" (>= 2.11: optimizer/_variables/N) or "legacy" (OptimizerV2 slots)
    class_name: str | None
    iterations: int | None  # the counter's value
    iterations_node: int | None
    tensors: list[tuple[int, str]]  # every optimizer variable node and its role, in key order
    slots: dict[int, list[tuple[str, int]]]  # legacy: variable -> [(slot name, slot node)]
    slot_names: list[str]  # legacy: slot names in pass order
    ordered: list[int]  # keras: _variables[1:] (slots, in model.trainable_variables order)
    slot_of: dict[int, int]  # keras: slot node -> variable node


def _iterations_value(g: Graph, node: int | None) -> int | None:
    e = g.value(node) if node is not None else None
    if e is None or e.shape != () or e.dtype not in ("int64", "int32"):
        return None
    with open(g.index.shard_file(e.shard), "rb") as fh:
        raw = os.pread(fh.fileno(), e.size, e.offset)
    return int.from_bytes(raw, "little", signed=True) if len(raw) == e.size else None


def _subtree_vars(g: Graph, node: int) -> list[int]:
    """Variable nodes under ``node`` in breadth-first order (each once)."""
    out: list[int] = []
    seen = {node}
    todo = deque([node])
    while todo:
        cur = todo.popleft()
        for _, c in g.children(cur):
            if c in seen:
                continue
            seen.add(c)
            if g.value(c) is not None:
                out.append(c)
            todo.append(c)
    return out


def read_optimizer(g: Graph, root: int, variables: Sequence[int]) -> TfOptimizer | None:
    """The optimizer child of ``root``, its slots matched to ``variables`` where possible."""
    opt = g.child(root, "optimizer")
    if opt is None:
        return None
    node = g.nodes[opt]
    legacy_slots = list(node.slot_variables)
    names = [n for n, _ in g.children(opt)]
    kind = "keras" if "_variables" in names else "legacy"
    it_node = g.child(opt, "_iterations" if kind == "keras" else "iter")
    roles: dict[int, str] = {}
    for v in _subtree_vars(g, opt):
        roles[v] = "other"
    if it_node is not None:
        roles[it_node] = "iterations"
    for lr in ("_learning_rate", "learning_rate"):
        c = g.child(opt, lr)
        if c is not None and c in roles:
            roles[c] = "learning_rate"
    slots: dict[int, list[tuple[str, int]]] = {}
    slot_names: list[str] = []
    ordered: list[int] = []
    slot_of: dict[int, int] = {}
    if kind == "legacy":
        for s in legacy_slots:
            sv, orig = int(s.slot_variable_node_id), int(s.original_variable_node_id)
            if g.value(sv) is None:
                continue
            slots.setdefault(orig, []).append((str(s.slot_name), sv))
            roles[sv] = "slot"
            if s.slot_name not in slot_names:
                slot_names.append(str(s.slot_name))
    else:
        lst = g.child(opt, "_variables")
        kids = sorted(
            (int(n), c) for n, c in (g.children(lst) if lst is not None else []) if n.isdigit()
        )
        ordered = [c for k, c in kids if k > 0 and g.value(c) is not None]
        by_name: dict[str, list[int]] = {}
        for v in variables:
            by_name.setdefault(g.full_name(v), []).append(v)
        for c in ordered:
            roles[c] = "slot"
            full = g.full_name(c)
            match = [
                v for name, vs in by_name.items() if name and full.endswith("/" + name) for v in vs
            ]
            longest = max((len(g.full_name(v)) for v in match), default=0)
            best = [v for v in match if len(g.full_name(v)) == longest]
            if len(best) == 1:
                slot_of[c] = best[0]
    tensors = sorted(roles.items(), key=lambda kv: _key(g, kv[0]))
    return TfOptimizer(
        node=opt,
        kind=kind,
        class_name=_optimizer_class(g, it_node, ordered, slots),
        iterations=_iterations_value(g, it_node),
        iterations_node=it_node,
        tensors=tensors,
        slots=slots,
        slot_names=slot_names,
        ordered=ordered,
        slot_of=slot_of,
    )


def _key(g: Graph, node: int) -> str:
    e = g.value(node)
    return e.key if e is not None else ""


def _optimizer_class(
    g: Graph, it_node: int | None, ordered: list[int], slots: dict[int, list[tuple[str, int]]]
) -> str | None:
    candidates = [g.full_name(c) for c in ordered[:1]]
    candidates += [g.full_name(sv) for pairs in list(slots.values())[:1] for _, sv in pairs[:1]]
    if it_node is not None:
        candidates.append(g.full_name(it_node))
    for full in candidates:
        head = full.split("/", 1)[0]
        if "/" in full and head:
            return head
    return None


def slot_evidence(
    opt: TfOptimizer | None, variables: Sequence[int]
) -> tuple[set[int] | None, str | None]:
    """Variables that had optimizer slots (trainable while training), or None and why not."""
    if opt is None:
        return None, "no optimizer state"
    if opt.kind == "legacy":
        if not opt.slots:
            return None, "an optimizer without slots"
        return {v for v in variables if v in opt.slots}, None
    if not opt.ordered:
        return None, "an optimizer without slots"
    if len(opt.slot_of) != len(opt.ordered):
        return None, "optimizer slots whose variables cannot be told by name"
    return set(opt.slot_of.values()), None


# --- the checkpoint as a format-neutral model ------------------------------------------------


def tensor_ref(g: Graph, node: int) -> TensorRef:
    """The stored tensor of a variable node.

    Raises:
        CorruptCheckpointError: a variable stored as strings (Keras variables are numeric).
    """
    e = g.value(node)
    assert e is not None
    if e.dtype == "string":
        raise CorruptCheckpointError(
            f"expected a numeric tensor for the variable {e.key!r} in {g.name}; found a string "
            "tensor; the checkpoint is corrupt"
        )
    loc = BundleLocation(str(g.index.shard_file(e.shard)), e.offset, e.size, e.crc32c, e.key)
    return TensorRef(loc, e.dtype, e.shape, e.size, _BUNDLE)


def weight_name(g: Graph, node: int, fallback: str) -> str:
    """A variable's Keras name as ``.h5`` files store it (``dense/kernel:0``)."""
    full = g.full_name(node)
    return f"{full}:0" if full else fallback


@dataclass
class Named:
    """Names for the layers of a tree (from a config when there is one, else derived)."""

    by_node: dict[int, str] = field(default_factory=dict)
    classes: dict[int, str] = field(default_factory=dict)
    trainable: dict[int, bool] = field(default_factory=dict)
    configs: dict[int, Any] = field(default_factory=dict)


def _derived_name(g: Graph, layer: TfLayer) -> str:
    if not layer.model:
        firsts = {g.full_name(v).split("/", 1)[0] for v in layer.variables()}
        if len(firsts) == 1 and "" not in firsts:
            return firsts.pop()
    return layer.key.rsplit("/", 1)[-1] or "model"


def to_layer(
    g: Graph, layer: TfLayer, ev: Evidence, names: Named, label: str | None = None
) -> tuple[Layer, Order]:
    """A :class:`Layer` for ``layer`` (weights in Keras 2 load order) and that order."""
    name = names.by_node.get(layer.node) or _derived_name(g, layer)
    order = layer_order(layer, ev, label or name)
    weights = tuple(
        Weight(weight_name(g, v, _key(g, v)), tensor_ref(g, v), trainable=v in order.t)
        for v in order.all
    )
    children: tuple[Layer, ...] = ()
    if layer.model:
        children = tuple(to_layer(g, sub, ev, names)[0] for sub in layer.layers)
    return (
        Layer(
            name,
            names.classes.get(layer.node),
            weights,
            children,
            trainable=names.trainable.get(layer.node),
            config=names.configs.get(layer.node),
            key=layer.key,
        ),
        order,
    )


def template_layer(
    g: Graph, tpl: TfLayer, ev: Evidence, names: Named, layer_names: Sequence[str] = ()
) -> tuple[Layer, Order, list[str]]:
    """The template as a model Layer: its layers each in their own load order.

    Returns the layer, the template's order as one model (trainable block first, with the
    reasons a wrong guess would load silently in ``silent``), and the reasons the order is not
    certain (empty when it is).
    """
    layers = []
    why: list[str] = []
    silent: list[str] = []
    for sub in tpl.layers:
        lay, o = to_layer(g, sub, ev, names)
        layers.append(lay)
        if not o.sure:
            why += o.why
        silent += o.silent
    whole = layer_order(tpl, ev, names.by_node.get(tpl.node) or _derived_name(g, tpl))
    whole.silent = list(dict.fromkeys(silent))
    name = names.by_node.get(tpl.node) or _derived_name(g, tpl)
    weights = tuple(
        Weight(weight_name(g, v, _key(g, v)), tensor_ref(g, v), trainable=v in whole.t)
        for v in whole.all
    )
    seen: set[str] = set()
    if any(lay.name in seen or seen.add(lay.name) for lay in layers):  # type: ignore[func-returns-value]
        layers = [
            Layer(
                sub.key.rsplit("/", 1)[-1] if sub.key else sub.name,
                sub.class_name,
                sub.weights,
                sub.layers,
                trainable=sub.trainable,
                config=sub.config,
                key=sub.key,
            )
            for sub in layers
        ]
    return (
        Layer(
            name,
            names.classes.get(tpl.node),
            weights,
            tuple(layers),
            layer_names=tuple(layer_names) or tuple(lay.name for lay in layers),
            trainable=names.trainable.get(tpl.node),
            config=names.configs.get(tpl.node),
            key=tpl.key,
        ),
        whole,
        why,
    )


def keras2_optimizer(
    g: Graph,
    opt: TfOptimizer,
    trainable_order: Sequence[int],
    config: Any = None,
    class_name: str | None = None,
) -> tuple[Optimizer | None, str | None]:
    """The optimizer as a Keras 2 ``.h5`` stores it (``optimizer_weights``), or why not.

    Keras >= 2.11: ``iteration`` and ``optimizer/_variables/1..N`` in order. Legacy
    ``OptimizerV2``: ``iter``, then per slot name (pass order), the slot of every trainable
    variable in ``model.trainable_variables`` order. Names are the variables' own plus ``:0``.
    """
    out: list[OptimizerVariable] = []
    if opt.iterations_node is not None and g.value(opt.iterations_node) is not None:
        n = opt.iterations_node
        out.append(OptimizerVariable(weight_name(g, n, "iter:0"), tensor_ref(g, n), "iterations"))
    if opt.kind == "keras":
        for c in opt.ordered:
            var = opt.slot_of.get(c)
            out.append(
                OptimizerVariable(
                    weight_name(g, c, _key(g, c)),
                    tensor_ref(g, c),
                    "slot",
                    _slot_name(g.full_name(c)),
                    tensor_ref(g, var).location if var is not None else None,
                )
            )
    else:
        for slot in opt.slot_names:
            for v in trainable_order:
                sv = next((s for name, s in opt.slots.get(v, []) if name == slot), None)
                if sv is None:
                    return None, (
                        f"optimizer state not kept for a Keras 2 file: slot {slot!r} of "
                        f"{g.full_name(v)!r} is missing"
                    )
                out.append(
                    OptimizerVariable(
                        weight_name(g, sv, _key(g, sv)),
                        tensor_ref(g, sv),
                        "slot",
                        slot,
                        tensor_ref(g, v).location,
                    )
                )
        extra = set(opt.slots) - set(trainable_order)
        if extra:
            return None, (
                "optimizer state not kept for a Keras 2 file: slots of variables outside the "
                "template's trainable weights"
            )
    return (
        Optimizer(class_name or opt.class_name, tuple(out), opt.iterations, config),
        None,
    )


def _slot_name(full: str) -> str | None:
    parts = full.split("/")
    return parts[1] if len(parts) > 2 else None


def all_optimizer(
    g: Graph, opt: TfOptimizer, class_name: str | None = None, config: Any = None
) -> Optimizer:
    """Every stored optimizer tensor, by key (what a TensorFlow checkpoint keeps)."""
    variables = []
    for node, role in opt.tensors:
        slot = None
        var = None
        if role == "slot":
            if opt.kind == "keras":
                slot = _slot_name(g.full_name(node))
                v = opt.slot_of.get(node)
            else:
                v = next((o for o, pairs in opt.slots.items() for _, s in pairs if s == node), None)
                slot = next(
                    (n for pairs in opt.slots.values() for n, s in pairs if s == node), None
                )
            var = tensor_ref(g, v).location if v is not None else None
        r: OptimizerRole = role  # type: ignore[assignment]
        variables.append(OptimizerVariable(_key(g, node), tensor_ref(g, node), r, slot, var))
    return Optimizer(class_name or opt.class_name, tuple(variables), opt.iterations, config)


# --- reading a TF checkpoint -------------------------------------------------------------


def resolve_prefix(path: Path) -> Path:
    """The checkpoint prefix of a path: ``x``, ``x.index``, ``x.data-*``, or a folder.

    Raises:
        NotACheckpointError: no checkpoint there.
    """
    if path.is_dir():
        prefix = bundle.prefix_from_state(path)
        if prefix is None or not bundle.index_file(prefix).is_file():
            raise NotACheckpointError(
                f"expected a folder with a 'checkpoint' file naming a TensorFlow checkpoint; "
                f"found {path} without one; pass the checkpoint prefix (the .index name without "
                ".index)"
            )
        return prefix
    prefix = bundle.prefix_of(path)
    if prefix is None:
        raise NotACheckpointError(f"expected a TensorFlow checkpoint; found nothing at {path}")
    return prefix


def _root_pattern(
    g: Graph, root: int, tree: TfLayer, template: str | None, label: str
) -> tuple[Pattern, TfLayer | None]:
    """The parallel pattern from the object graph alone (names are object paths)."""
    candidates = [sub for sub in tree.layers if sub.model]
    names = [sub.key for sub in candidates]
    if template is not None:
        chosen = next((c for c in candidates if c.key == template), None)
        if chosen is None:
            raise TemplateNotFoundError(
                f"expected template= to name a model nested in {label}; found {template!r} is "
                f"not one (nested models, by object path: {', '.join(names) or 'none'}); pick "
                "one of those"
            )
    elif not candidates:
        return Pattern(
            "single",
            None,
            refusal=NothingToConvertError(
                f"expected a parallel or wrapped checkpoint; found a single model "
                f"({len(tree.layers)} layers with weights, none nested) in {label}; nothing to "
                "convert: load it directly with model.load_weights, or convert it to .h5"
            ),
        ), None
    elif len(candidates) > 1:
        return Pattern(
            "ambiguous",
            None,
            tuple(names),
            refusal=AmbiguousTemplateError(
                f"expected one nested model holding weights; found {len(names)} "
                f"({', '.join(names)}); pass template=NAME to choose"
            ),
        ), None
    else:
        chosen = candidates[0]
    outer = tuple(sub.key for sub in tree.layers if sub is not chosen)
    if outer and template is None:
        return Pattern(
            "container",
            None,
            tuple(names),
            outer_weighted=outer,
            refusal=NothingToConvertError(
                f"expected a parallel or wrapped checkpoint; found a single model that contains "
                f"the model {chosen.key!r} beside other layers with weights in {label}; nothing "
                f"to convert: load it directly, or pass template={chosen.key!r}"
            ),
        ), chosen
    kids = g.children(root)
    layers = sorted((int(m.group(1)), n, c) for n, c in kids if (m := _LAYER.match(n)))
    pos = next((i for i, (_, _, c) in enumerate(layers) if c == chosen.node), len(layers))
    inner = {c for _, c in g.children(chosen.node)}
    inputs = tuple(n for _, n, c in layers[:pos] if c in inner)
    slices = tuple(n for _, n, c in layers[:pos] if c not in inner)
    merges = tuple(n for _, n, _ in layers[pos + 1 :])
    parallel = bool(slices) and bool(merges) and not outer
    replicas = len(slices) // len(inputs) if parallel and inputs else None
    return Pattern(
        "parallel" if parallel else "wrapped",
        chosen.key,
        tuple(names),
        replicas=replicas,
        slices=slices,
        merges=merges,
        inputs=inputs,
        outer_weighted=outer,
    ), chosen


def read(path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
    """Read a TensorFlow checkpoint written by tf.keras into a Checkpoint (metadata only)."""
    prefix = resolve_prefix(path)
    g = load_graph(prefix)
    label = bundle.index_file(prefix).name
    root = 0
    if not is_model(g, root):
        raise NotACheckpointError(
            f"expected a checkpoint of a Keras model (layers in its object graph); found "
            f"{label} holds other TensorFlow objects; ckptfix converts Keras checkpoints only"
        )
    seen: set[int] = set()
    tree = build_layer(g, root, "", seen)
    pattern, chosen = _root_pattern(g, root, tree, options.template, label)
    subject = chosen if chosen is not None and pattern.template is not None else tree
    opt = read_optimizer(g, root, subject.variables())
    slotted, no_evidence = slot_evidence(opt, subject.variables())
    names_of = {v: n for lay in _walk(tree) for v, n in lay.names.items()}
    ev = Evidence(slotted, names_of, shapes=variable_shapes(g, tree))
    names = Named(by_node={tree.node: prefix.name})
    if chosen is not None:
        names.by_node[chosen.node] = chosen.key
    tpl_layer, whole, why = template_layer(g, subject, ev, names)
    layout = _layout(g, opt, whole, why, no_evidence, subject, ev)
    if subject is tree:
        model = tpl_layer
    else:
        model = _model_layer(g, tree, ev, names, prefix.name, tpl_layer)
    optimizer = all_optimizer(g, opt) if opt is not None else None
    t_opt, opt_note = (None, None)
    if opt is not None:
        t_opt, opt_note = keras2_optimizer(g, opt, whole.t)
    notes = [
        "a TensorFlow checkpoint records no layer names: layers are named after their variables "
        "(dense/kernel -> dense) and nested models by object path"
    ]
    return Checkpoint(
        path=str(prefix),
        format=fmt,
        family="tf",
        full_model=False,
        keras_version=None,
        backend="tensorflow",
        model=model,
        pattern=pattern,
        layout=layout,
        template=tpl_layer if subject is not tree else None,
        optimizer=optimizer,
        template_optimizer=t_opt,
        optimizer_note=opt_note,
        notes=tuple(notes),
    )


def variable_shapes(g: Graph, tree: TfLayer) -> dict[int, tuple[int, ...]]:
    """Every variable's shape, by node."""
    out = {}
    for v in tree.variables():
        e = g.value(v)
        if e is not None:
            out[v] = e.shape
    return out


def _walk(layer: TfLayer) -> list[TfLayer]:
    out = [layer]
    for sub in layer.layers + layer.subs:
        out += _walk(sub)
    return out


def _layout(
    g: Graph,
    opt: TfOptimizer | None,
    whole: Order,
    why: list[str],
    no_evidence: str | None,
    subject: TfLayer,
    ev: Evidence,
) -> Layout:
    if opt is not None and opt.kind == "keras" and ev.slotted is not None:
        recorded = [opt.slot_of[c] for c in opt.ordered]
        firsts = list(dict.fromkeys(recorded))
        if firsts != whole.t:
            err = LayoutError(
                f"expected the optimizer's variables in the template's trainable order; found "
                f"them in another order in {g.name} ({len(firsts)} vs {len(whole.t)} variables); "
                "the Keras 2 load order cannot be established: convert to a TensorFlow "
                "checkpoint (no suffix) instead"
            )
            return Layout("unknown", None, str(err), err)
    if why:
        note = "; ".join(dict.fromkeys(why))
        if no_evidence:
            note = f"{note} (the checkpoint has {no_evidence})"
        refusal = None
        if whole.silent:
            refusal = LayoutError(
                f"expected a Keras 2 weight order that is known, or fails loudly when wrong; "
                f"found {whole.silent[0]} ({g.name} has {no_evidence or 'no slots for them'}); "
                "convert to a TensorFlow checkpoint (an output name without suffix), which keeps "
                "the object graph and needs no order"
            )
        return Layout(
            "inferred",
            "paths",
            "layer boundaries are exact (object paths); Keras 2 weight order inferred: "
            + note
            + (f"; a .h5 is refused: {whole.silent[0]}" if whole.silent else ""),
            refusal,
        )
    return Layout("exact", "paths")


def _model_layer(
    g: Graph, tree: TfLayer, ev: Evidence, names: Named, name: str, tpl: Layer | None
) -> Layer:
    layers = []
    for sub in tree.layers:
        if tpl is not None and sub.key == tpl.key:
            layers.append(tpl)
        else:
            layers.append(to_layer(g, sub, ev, names)[0])
    return Layer(name, None, (), tuple(layers), key="")


# --- writing a TF checkpoint of the template ------------------------------------------------


@dataclass
class NewGraph:
    """The template's object graph (template as root, optimizer beside it) and its keys."""

    graph: Any  # TrackableObjectGraph
    keys: dict[str, str]  # source key -> new key, for every tensor kept


def rewrite_graph(g: Graph, template: int) -> NewGraph:
    """The object graph of the template alone, with the optimizer (if any) as its child.

    Nodes are renumbered breadth-first from the template; legacy slot references are kept for
    the template's variables (renumbered); every tensor's key is recomputed from its new path.
    """
    from ..protos import TrackableObjectGraph

    root_children = g.children(template)
    opt = g.child(0, "optimizer")
    if opt is not None and all(n != "optimizer" for n, _ in root_children):
        root_children = root_children + [("optimizer", opt)]
    order = [template]
    new_id = {template: 0}
    paths = {template: ""}
    todo = deque([template])
    while todo:
        cur = todo.popleft()
        kids = root_children if cur == template else g.children(cur)
        for name, c in kids:
            if c not in new_id:
                new_id[c] = len(order)
                order.append(c)
                p = paths[cur]
                paths[c] = f"{p}/{escape(name)}" if p else escape(name)
                todo.append(c)
    slot_refs: list[tuple[int, Any]] = []
    if opt is not None:
        for s in g.nodes[opt].slot_variables:
            orig, sv = int(s.original_variable_node_id), int(s.slot_variable_node_id)
            if orig in new_id:
                if sv not in new_id:
                    new_id[sv] = len(order)
                    order.append(sv)
                    paths[sv] = (
                        f"{paths[orig]}/.OPTIMIZER_SLOT/{paths[opt]}/{escape(str(s.slot_name))}"
                    )
                slot_refs.append((orig, s))
    out = TrackableObjectGraph()
    keys: dict[str, str] = {}
    for old in order:
        src = g.nodes[old]
        node = out.nodes.add()
        kids = root_children if old == template else g.children(old)
        for name, c in kids:
            node.children.add(node_id=new_id[c], local_name=name)
        for a in src.attributes:
            new_key = f"{paths[old]}/.ATTRIBUTES/{escape(str(a.name))}"
            node.attributes.add(name=a.name, full_name=a.full_name, checkpoint_key=new_key)
            keys[str(a.checkpoint_key)] = new_key
        if src.HasField("registered_saver"):
            node.registered_saver.CopyFrom(src.registered_saver)
        if src.HasField("has_checkpoint_values"):
            node.has_checkpoint_values.CopyFrom(src.has_checkpoint_values)
        if old == opt:
            for orig, s in slot_refs:
                node.slot_variables.add(
                    original_variable_node_id=new_id[orig],
                    slot_name=s.slot_name,
                    slot_variable_node_id=new_id[int(s.slot_variable_node_id)],
                )
    return NewGraph(out, keys)


def _template_node(g: Graph, ck: Checkpoint) -> int:
    node = 0
    key = ck.subject.key or ""
    for part in [p for p in key.split("/") if p]:
        nxt = g.child(node, part)
        if nxt is None:
            raise CorruptCheckpointError(f"expected {key} in {g.name}; found it gone")
        node = nxt
    return node


def plan_tensors(ck: Checkpoint) -> Planned:
    """Where each tensor of the template (and of the optimizer) goes in the new checkpoint."""
    g = load_graph(Path(ck.path))
    new = rewrite_graph(g, _template_node(g, ck))
    return _planned(ck, new)


def _planned(ck: Checkpoint, new: NewGraph) -> Planned:
    tensors = []
    for w in ck.subject.weights:
        loc = w.tensor.location
        assert isinstance(loc, BundleLocation)
        tensors.append(WrittenTensor(new.keys[loc.path], w.tensor, "copied", w.name))
    done = {w.tensor.location for w in ck.subject.weights}
    optimizer = []
    for v in ck.optimizer.variables if ck.optimizer else ():
        loc = v.tensor.location
        assert isinstance(loc, BundleLocation)
        if loc.path in new.keys and loc not in done:
            optimizer.append(
                WrittenTensor(new.keys[loc.path], v.tensor, "copied", f"optimizer {v.name}")
            )
    return tuple(tensors), tuple(optimizer)


def output_suffixes(ck: Checkpoint) -> tuple[str, ...]:
    """The new checkpoint's files: its data shards (as many as the source's), then the index."""
    num = bundle.read_index(Path(ck.path)).num_shards
    return tuple(f".data-{i:05d}-of-{num:05d}" for i in range(num)) + (".index",)


def write(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Write the template's TensorFlow checkpoint at the prefix ``tmp``.

    Data shards are copied by the kernel (no tensor passes through Python); the new object
    graph is appended to the first shard; only the index is written anew.
    """
    if ck.format != TF_CHECKPOINT or ck.template is None:
        raise UnsupportedConversionError(
            f"expected a TensorFlow checkpoint of a parallel model for a checkpoint output; "
            f"found {ck.format} ({Path(ck.path).name}); name the output .h5"
        )
    prefix = Path(ck.path)
    g = load_graph(prefix)
    tpl = _template_node(g, ck)
    new = rewrite_graph(g, tpl)
    tensors, optimizer = _planned(ck, new)
    num = g.index.num_shards
    total = sum(os.stat(g.index.shard_file(i)).st_size for i in range(num))
    if options.progress is not None:
        options.progress(0, total)
    sizes = []
    for i in range(num):
        src = g.index.shard_file(i)
        dst = bundle.data_file(tmp, i, num)
        want = os.stat(src).st_size
        if copy_file(src, dst) != want:
            raise CorruptCheckpointError(
                f"expected to copy all {want} bytes of {src.name}; found fewer copied (the file "
                "changed or the disk failed while copying); nothing was written; retry"
            )
        sizes.append(want)
    graph_bytes, graph_crc = bundle.encode_string_scalar(bytes(new.graph.SerializeToString()))
    with open(bundle.data_file(tmp, 0, num), "ab") as fh:
        fh.write(graph_bytes)
    entries = [
        (
            bundle.GRAPH_KEY,
            bundle.entry_bytes(
                bundle.DATA_TYPE_OF["string"], (), 0, sizes[0], len(graph_bytes), graph_crc
            ),
        )
    ]
    for old, key in new.keys.items():
        e = g.index.entries[old]
        entries.append(
            (key, bundle.entry_bytes(e.data_type, e.shape, e.shard, e.offset, e.size, e.crc32c))
        )
    bundle.index_file(tmp).write_bytes(bundle.index_bytes(num, entries))
    if options.progress is not None:
        options.progress(total, total)
    warnings: tuple[str, ...] = ()
    if ck.pattern.outer_weighted:
        warnings = (
            "dropped the weights of layers outside the template: "
            + ", ".join(ck.pattern.outer_weighted),
        )
    return Written(tmp, TF_CHECKPOINT, tensors, optimizer, warnings=warnings)


def check(source: Checkpoint, output: Checkpoint) -> list[str]:
    """The output is a TensorFlow checkpoint whose root is the template (a single model)."""
    if output.format != TF_CHECKPOINT:
        return [f"format: {output.format} is not a TensorFlow checkpoint"]
    bad = []
    got = [w.name for w in output.model.weights]
    if output.pattern.parallel or got != [w.name for w in source.subject.weights]:
        bad.append("object graph: the root is not the template alone")
    src, out = source.optimizer, output.optimizer
    if src is not None and (out is None or out.iterations != src.iterations):
        bad.append("optimizer: iterations changed")
    return bad


class TfCheckpoint:
    """TensorFlow checkpoints written by tf.keras (object-based, ``prefix.index`` + shards)."""

    name = "TensorFlow checkpoint"
    family: Family = "tf"
    ids: tuple[str, ...] = (TF_CHECKPOINT,)
    read_options = frozenset({"template", "exact"})
    write_options = frozenset({"progress"})

    def sniff(self, probe: Probe) -> str | None:
        p = probe.path
        if p.is_dir():
            if (p / "saved_model.pb").exists():
                return None
            return TF_CHECKPOINT if (p / "checkpoint").is_file() else None
        return TF_CHECKPOINT if bundle.prefix_of(p) is not None else None

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        return read(path, fmt, options)

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        name = dst.name.lower()
        if ck.family != "tf" or ".data-" in name:
            return None
        if name.endswith((".h5", ".hdf5", ".keras", ".index", ".json", ".npz", ".pb")):
            return None
        return TF_CHECKPOINT

    def accepts(self, ck: Checkpoint) -> bool:
        return ck.format == TF_CHECKPOINT

    def plan(self, ck: Checkpoint) -> Planned:
        return plan_tensors(ck)

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        return write(ck, tmp, options)

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        return check(source, output)

    def suggest(self, path: Path) -> Path:
        prefix = bundle.prefix_of(path) or path
        return prefix.with_name(prefix.name + ".single")

    def output_suffixes(self, ck: Checkpoint) -> tuple[str, ...]:
        return output_suffixes(ck)

    def input_files(self, ck: Checkpoint) -> tuple[Path, ...]:
        prefix = Path(ck.path)
        num = bundle.read_index(prefix).num_shards
        return (bundle.index_file(prefix),) + tuple(
            bundle.data_file(prefix, i, num) for i in range(num)
        )


FORMAT = TfCheckpoint()
