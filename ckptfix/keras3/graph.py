"""Models: Sequential and Functional configs, nested models, call nodes, layer order.

Keras 2 wrote a model as ``{"class_name": "Sequential" | "Model" | "Functional", "config"}``;
Keras 3 reads ``Sequential`` and ``Functional`` objects whose layers call each other through
``inbound_nodes``. This module rebuilds the model's graph from the Keras 2 config, translates
every layer (:mod:`ckptfix.keras3.layers`), rewrites every call node in a form Keras 3 replays
the way Keras 2 called the layer, and orders the layers as Keras 3's ``map_graph`` will (that
order names each layer's group in ``model.weights.h5``).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .layers import RNN_CLASSES, Translated, translate_layer
from .objects import dtype_policy
from .types import Context, rule
from .weights import Saveable, list_segments

FUNCTIONAL_MODULE = "keras.src.models.functional"

Counts = Callable[[tuple[str, ...]], int | None]


@rule(
    "model-class-renamed",
    change="a functional model is class Functional; standalone Keras 2 and tf.keras < 2.4 wrote "
    "class_name 'Model'",
    since="tf.keras 2.4 / Keras 3.0",
    action="'Model' becomes 'Functional' (module keras.src.models.functional)",
    test="tests/test_keras3_translate.py::test_old_functional_and_node_formats",
)
def model_class(cls: str, ctx: Context) -> str:
    if cls == "Model":
        ctx.use("model-class-renamed")
        return "Functional"
    return cls


def translate_nested_model(
    entry: dict[str, Any], ctx: Context, path: tuple[str, ...], counts: Counts | None
) -> Translated:
    """A model used as a layer (or the top model): its Keras 3 object and Saveable."""
    cls = model_class(str(entry.get("class_name")), ctx)
    if cls == "Sequential":
        return _sequential(entry, ctx, path, counts)
    return _functional(entry, ctx, path, counts)


# --- Sequential -----------------------------------------------------------------------------


@rule(
    "list-style-sequential",
    change="a Sequential config is {name, layers}; Keras 2.0-2.1 wrote the bare list of layers "
    "(no name, no layers key)",
    since="Keras 2.2 / Keras 3.0",
    action="the list becomes {name: 'sequential', layers: [...]}",
    test="tests/test_keras3_translate.py::test_list_style_sequential_and_batch_input_shape",
)
def sequential_layers(entry: dict[str, Any], ctx: Context) -> tuple[str, list[Any], dict[str, Any]]:
    cfg = entry.get("config")
    if isinstance(cfg, list):
        ctx.use("list-style-sequential")
        return str(entry.get("name") or "sequential"), list(cfg), {}
    if isinstance(cfg, dict):
        return (
            str(cfg.get("name") or entry.get("name") or "sequential"),
            list(cfg.get("layers", [])),
            cfg,
        )
    ctx.refuse("sequential", "a Sequential config that is neither a list nor a dict", "re-save it")
    return "sequential", [], {}


@rule(
    "batch-input-shape",
    change="a Sequential's input is an InputLayer (batch_shape, dtype); Keras 2 put "
    "batch_input_shape (or input_shape/input_dim, and input_dtype in Keras 2.0) on the first "
    "layer, which Keras 3 reads as that layer's own input and builds it with an extra dimension",
    since="Keras 3.0",
    action="the first layer's input arguments become an InputLayer named <layer>_input with "
    "the batch shape and the dtype Keras 2 gave it (the layer's variable dtype)",
    test="tests/test_keras3_translate.py::test_list_style_sequential_and_batch_input_shape",
)
def input_from_spec(
    spec: dict[str, Any], first: dict[str, Any], ctx: Context
) -> dict[str, Any] | None:
    shape = spec.get("batch_input_shape")
    if shape is None and spec.get("input_shape") is not None:
        shape = [spec.get("batch_size"), *spec["input_shape"]]
    if shape is None and spec.get("input_dim") is not None:
        shape = [spec.get("batch_size"), spec["input_dim"]]
    if shape is None:
        return None
    ctx.use("batch-input-shape")
    dtype = spec.get("input_dtype")
    if dtype is None:
        pol = (first.get("config") or {}).get("dtype")
        if isinstance(pol, dict):
            name = str((pol.get("config") or {}).get("name", "float32"))
            dtype = "float32" if name.startswith("mixed_") else name
        else:
            dtype = pol or "float32"
    name = f"{(first.get('config') or {}).get('name', 'input')}_input"
    return _input_object(name, list(shape), str(dtype))


def _input_object(name: str, shape: list[Any], dtype: str) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": shape,
            "dtype": dtype,
            "sparse": False,
            "ragged": False,
            "name": name,
            "optional": False,
        },
        "registered_name": None,
    }


def _frozen(entries: list[Any], trainable: Any) -> list[Any]:
    """A frozen model's layers, each marked frozen (Keras 3 may not carry a model's flag down)."""
    if trainable is not False:
        return entries
    out = copy.deepcopy(entries)
    for e in out:
        if isinstance(e, dict) and isinstance(e.get("config"), dict):
            e["config"]["trainable"] = False
    return out


def _sequential(
    entry: dict[str, Any], ctx: Context, path: tuple[str, ...], counts: Counts | None
) -> Translated:
    name, entries, cfg = sequential_layers(entry, ctx)
    mpath = (*path, name) if path and path[-1] != name else (path or (name,))
    trainable = cfg.get("trainable", True) if isinstance(cfg, dict) else True
    entries = _frozen(entries, trainable)
    layers_k3: list[dict[str, Any]] = []
    children: list[tuple[str, Saveable]] = []
    classes: list[str] = []
    input_obj: dict[str, Any] | None = None
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            ctx.refuse(name, f"layer {i} of the Sequential is not a config", "re-save the model")
            continue
        if e.get("class_name") == "InputLayer":
            t = translate_layer(e, ctx, (*mpath, _entry_name(e)), counts)
            input_obj = t.object
            continue
        lname = _entry_name(e)
        t = translate_layer(e, ctx, (*mpath, lname), counts)
        if input_obj is None and not layers_k3:
            input_obj = input_from_spec(t.input_spec, e, ctx)
        layers_k3.append(t.object)
        children.append(("", t.saveable))
        classes.append(t.class_name)
    segs = list_segments(classes)
    children = [(f"layers/{s}", c) for s, (_, c) in zip(segs, children, strict=True)]
    build_shape = None
    if input_obj is not None:
        build_shape = input_obj["config"]["batch_shape"]
        layers_k3.insert(0, input_obj)
    elif isinstance(cfg, dict) and cfg.get("build_input_shape") is not None:
        build_shape = cfg["build_input_shape"]
    k3cfg: dict[str, Any] = {
        "name": name,
        "trainable": bool(trainable),
        "dtype": dtype_policy(None, ctx, name),
        "layers": layers_k3,
    }
    if build_shape is not None:
        k3cfg["build_input_shape"] = build_shape
    obj: dict[str, Any] = {
        "module": "keras",
        "class_name": "Sequential",
        "config": k3cfg,
        "registered_name": None,
    }
    if build_shape is not None:
        obj["build_config"] = {"input_shape": build_shape}
    save = Saveable(name, [], children, bool(trainable))
    return Translated(obj, save, {}, "Sequential")


def _entry_name(e: dict[str, Any]) -> str:
    cfg = e.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        return str(cfg["name"])
    return str(e.get("name", "layer"))


# --- Functional -----------------------------------------------------------------------------

Ref = tuple[str, int, int]  # (layer name, Keras 3 node index, tensor index)


@dataclass
class _Layer:
    name: str
    entry: dict[str, Any]
    translated: Translated
    nodes: list[Any] = field(default_factory=list)  # Keras 2 inbound node data, in order


def _is_ref(x: Any) -> bool:
    return (
        isinstance(x, list | tuple)
        and len(x) in (3, 4)
        and isinstance(x[0], str)
        and isinstance(x[1], int)
        and isinstance(x[2], int)
        and (len(x) == 3 or isinstance(x[3], dict))
    )


def _node_refs(node: Any) -> list[Any]:
    """The tensor entries of a Keras 2 inbound node, in order (nested structures flattened)."""
    if _is_ref(node):
        return [node]
    if isinstance(node, dict):
        return [r for k in sorted(node) for r in _node_refs(node[k])]
    if isinstance(node, list | tuple):
        return [r for x in node for r in _node_refs(x)]
    return []


@rule(
    "nested-model-node-index",
    change="a model nested as a layer has no built-in node in Keras 3: its first call is node 0 "
    "(Keras 2 counted the model's own construction node first, so calls were 1, 2, ...), and "
    "Keras 3's output_layers count a nested Functional's nodes from 1",
    since="Keras 3.0",
    action="references to a nested model's nodes are renumbered; output_layers follow Keras "
    "3's own convention",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[nested_functional]",
)
def _skips(layers: dict[str, _Layer], refs: list[tuple[str, int]], ctx: Context) -> dict[str, int]:
    """{model layer name: 1 when Keras 2 numbered its calls from 1 (a built-in first node)}."""
    seen: dict[str, list[int]] = defaultdict(list)
    for name, idx in refs:
        seen[name].append(idx)
    out: dict[str, int] = {}
    for name, lay in layers.items():
        cls = lay.entry.get("class_name")
        if cls not in ("Model", "Functional", "Sequential"):
            continue
        n = len(lay.nodes)
        default = 1
        if cls == "Sequential" and not ctx.standalone:
            # tf.keras numbers a Sequential's calls from 1 only when it was built with an
            # input (its first tracked layer an InputLayer; Keras 2's _should_skip_first_node)
            inner = lay.entry.get("config")
            first = (inner.get("layers") if isinstance(inner, dict) else inner) or [{}]
            has_input = first[0].get("class_name") == "InputLayer" or any(
                k in (first[0].get("config") or {}) for k in ("batch_input_shape", "input_shape")
            )
            default = 1 if has_input else 0
        used = seen.get(name, [])
        if used and max(used) >= n:
            default = 1
        elif used and min(used) == 0:
            default = 0
        out[name] = default
        ctx.use("nested-model-node-index")
    return out


def _functional(
    entry: dict[str, Any], ctx: Context, path: tuple[str, ...], counts: Counts | None
) -> Translated:
    cfg = entry.get("config")
    if not isinstance(cfg, dict):
        ctx.refuse(
            str(entry.get("name", "model")), "a model config that is not a dict", "re-save it"
        )
        return Translated({}, Saveable("model"), {}, "Functional")
    name = str(cfg.get("name") or entry.get("name") or "model")
    mpath = (*path, name) if path and path[-1] != name else (path or (name,))
    trainable = cfg.get("trainable", True)
    entries = _frozen(list(cfg.get("layers", [])), trainable)
    layers: dict[str, _Layer] = {}
    for e in entries:
        lname = str(e.get("name") or _entry_name(e))
        t = translate_layer(e, ctx, (*mpath, lname), counts)
        layers[lname] = _Layer(lname, e, t, list(e.get("inbound_nodes") or []))
    inputs_k2 = _io_refs(cfg.get("input_layers"))
    outputs_k2 = _io_refs(cfg.get("output_layers"))
    all_refs = [(r[0], r[1]) for lay in layers.values() for n in lay.nodes for r in _node_refs(n)]
    all_refs += [(r[0], r[1]) for r in inputs_k2 + outputs_k2]
    all_refs += [
        (r[0], r[1]) for lay in layers.values() for n in lay.nodes for r in _kwarg_refs(n, layers)
    ]
    skips = _skips(layers, all_refs, ctx)

    def k3(ref: Any) -> Ref:
        lname, idx, t = str(ref[0]), int(ref[1]), int(ref[2])
        if lname not in layers:
            ctx.refuse(
                name,
                f"a call refers to layer {lname!r}, which the model does not hold",
                "re-save the model",
            )
        return (lname, idx - skips.get(lname, 0), t)

    shapes = _ShapeHints(layers)
    graph: dict[tuple[str, int], list[tuple[str, int]]] = {}
    layer_entries: list[dict[str, Any]] = []
    for lay in layers.values():
        nodes_k3 = []
        for i, node in enumerate(lay.nodes):
            data, parents = _node(lay, node, k3, layers, shapes, ctx)
            nodes_k3.append(data)
            graph[(lay.name, i)] = parents
        obj = dict(lay.translated.object)
        obj.pop("__call_kwargs__", None)
        obj["name"] = lay.name
        obj["inbound_nodes"] = nodes_k3
        layer_entries.append(obj)
        if lay.entry.get("class_name") == "InputLayer":
            graph[(lay.name, 0)] = []
    inputs = [k3(r) for r in inputs_k2]
    outputs = [k3(r) for r in outputs_k2]
    order = keras3_layer_order(
        graph, [(r[0], r[1]) for r in inputs], [(r[0], r[1]) for r in outputs], list(layers)
    )
    classes = [layers[n].translated.class_name for n in order]
    segs = list_segments(classes)
    children = [
        (f"layers/{s}", layers[n].translated.saveable) for s, n in zip(segs, order, strict=True)
    ]

    def io(refs: list[Ref], is_output: bool) -> Any:
        out = []
        for lname, idx, t in refs:
            cls = layers[lname].translated.class_name if lname in layers else None
            bump = 1 if is_output and cls == "Functional" else 0
            out.append([lname, idx + bump, t])
        return out[0] if len(out) == 1 else out

    k3cfg = {
        "name": name,
        "trainable": bool(trainable),
        "layers": layer_entries,
        "input_layers": io(inputs, False),
        "output_layers": io(outputs, True),
    }
    obj = {
        "module": FUNCTIONAL_MODULE,
        "class_name": "Functional",
        "config": k3cfg,
        "registered_name": "Functional",
    }
    save = Saveable(name, [], children, bool(trainable))
    t = Translated(obj, save, {}, "Functional")
    t.output_names = tuple(r[0] for r in outputs)  # type: ignore[attr-defined]
    return t


def _io_refs(value: Any) -> list[Any]:
    if value is None:
        return []
    if _is_ref(value):
        return [value]
    if isinstance(value, dict):
        return [r for k in value for r in _io_refs(value[k])]
    return [r for v in value for r in _io_refs(v)]


def _kwarg_refs(node: Any, layers: dict[str, _Layer]) -> list[Any]:
    out: list[Any] = []
    for r in _node_refs(node):
        if len(r) == 4:
            out.extend(_tensors_in(r[3], layers))
    return out


def _tensors_in(value: Any, layers: dict[str, _Layer]) -> Iterator[Any]:
    """Tensor references inside call kwargs: [layer, node, tensor] lists naming a layer."""
    if (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and value[0] in layers
        and isinstance(value[1], int)
        and isinstance(value[2], int)
    ):
        yield value
    elif isinstance(value, dict):
        for k in sorted(value):
            yield from _tensors_in(value[k], layers)
    elif isinstance(value, list):
        for v in value:
            yield from _tensors_in(v, layers)


class _ShapeHints:
    """Shapes and dtypes written into ``__keras_tensor__`` placeholders of call nodes.

    Keras 3 replaces each placeholder with the named layer's real output before calling, so
    these values are never used to compute; they are filled where the config tells them
    (Input layers, RNN states) and are otherwise a rank-1 placeholder ``[None]``.
    """

    def __init__(self, layers: dict[str, _Layer]) -> None:
        self.layers = layers

    def spec(self, ref: Ref) -> tuple[list[Any], str]:
        lay = self.layers.get(ref[0])
        if lay is None:
            return [None], "float32"
        obj = lay.translated.object
        cfg = obj.get("config") or {}
        if obj.get("class_name") == "InputLayer":
            return list(cfg.get("batch_shape") or [None]), str(cfg.get("dtype", "float32"))
        dtype = _compute_dtype(cfg.get("dtype"))
        if obj.get("class_name") in RNN_CLASSES and ref[2] > 0 and "units" in cfg:
            return [None, cfg["units"]], dtype
        return [None], dtype


def _compute_dtype(policy: Any) -> str:
    name = (policy or {}).get("config", {}).get("name") if isinstance(policy, dict) else policy
    if not isinstance(name, str):
        return "float32"
    return name.split("_", 1)[1] if name.startswith("mixed_") else name


def _keras_tensor(ref: Ref, shapes: _ShapeHints) -> dict[str, Any]:
    shape, dtype = shapes.spec(ref)
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": dtype, "keras_history": list(ref)},
    }


@rule(
    "rnn-initial-state-call",
    change="a recurrent layer takes its initial states as initial_state=; Keras 2 configs list "
    "them after the sequence in the call's inputs ([x, h, c]), which Keras 3 reads as one "
    "input of 3 ('expects 1 input(s), but it received 3')",
    since="Keras 3.0",
    action="the call becomes layer(x, initial_state=[h, c]) (Bidirectional too: forward "
    "states, then backward)",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[seq2seq]",
)
def _rnn_call(refs: list[Ref]) -> tuple[list[Ref], list[Ref]]:
    """(the sequence, the initial states) of a Keras 2 recurrent call's inputs."""
    return [refs[0]], refs[1:]


@rule(
    "tensor-call-arguments",
    change="call arguments that are tensors (MultiHeadAttention's value/key, masks, states) are "
    "serialized as __keras_tensor__ objects in {args, kwargs} nodes; tf.keras wrote them as "
    "[layer, node, tensor] lists inside the node's kwargs, which Keras 3 passes on as lists",
    since="Keras 3.0",
    action="such calls are written in Keras 3's node format, each tensor a __keras_tensor__ "
    "naming its layer, node and index",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[multi_head_attention]",
)
def _node(
    lay: _Layer,
    node: Any,
    k3: Callable[[Any], Ref],
    layers: dict[str, _Layer],
    shapes: _ShapeHints,
    ctx: Context,
) -> tuple[Any, list[tuple[str, int]]]:
    """One Keras 2 inbound node as Keras 3 node data, and the nodes it depends on."""
    refs = _node_refs(node)
    kwargs: dict[str, Any] = {}
    for r in refs:
        if len(r) == 4 and r[3]:
            kwargs.update(r[3])
    extra = lay.translated.object.get("__call_kwargs__") or {}
    kwargs.update(extra)
    const = [r for r in refs if r[0] == "_CONSTANT_VALUE"]
    if const:
        ctx.refuse(
            lay.name, "a call with a constant input (tf.keras _CONSTANT_VALUE)", "re-save it"
        )
    k3refs = [k3(r) for r in refs if r[0] != "_CONSTANT_VALUE"]
    cls = lay.translated.class_name
    states: list[Ref] = []
    if (cls in RNN_CLASSES or cls == "Bidirectional") and len(k3refs) > 1:
        ctx.use("rnn-initial-state-call")
        args_refs, states = _rnn_call(k3refs)
    elif any(True for _ in _tensors_in(kwargs, layers)):
        args_refs = k3refs
    else:
        legacy = [[r[0], r[1], r[2], dict(kwargs)] for r in k3refs]
        return legacy, [(r[0], r[1]) for r in k3refs]
    ctx.use("tensor-call-arguments")
    parents = [(r[0], r[1]) for r in args_refs]

    def conv(v: Any) -> Any:
        if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and v[0] in layers:
            ref = k3(v)
            parents.append((ref[0], ref[1]))
            return _keras_tensor(ref, shapes)
        if isinstance(v, dict):
            return {k: conv(v[k]) for k in sorted(v)}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    if states:
        kwargs["initial_state"] = None  # placeholder, filled below in sorted-key position
    call_kwargs: dict[str, Any] = {}
    for k in sorted(kwargs):
        if k == "initial_state" and states:
            parents.extend((r[0], r[1]) for r in states)
            call_kwargs[k] = [_keras_tensor(r, shapes) for r in states]
        else:
            call_kwargs[k] = conv(kwargs[k])
    tensors = [_keras_tensor(r, shapes) for r in args_refs]
    call_args: list[Any] = [tensors[0]] if len(tensors) == 1 else [tensors]
    return {"args": call_args, "kwargs": call_kwargs}, parents


def keras3_layer_order(
    graph: dict[tuple[str, int], list[tuple[str, int]]],
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    names: list[str],
) -> list[str]:
    """The order of ``model.layers`` Keras 3 computes (``ops.function.map_graph``).

    ``graph`` maps each node (layer, Keras 3 node index) to the nodes whose outputs it takes,
    in the order Keras 3 flattens its arguments. A depth-first walk from the outputs numbers
    the layers in first-visit order; layers sort by depth (deepest first), ties by that number.
    """
    finished: set[tuple[str, int]] = set()
    progress: set[tuple[str, int]] = set()
    post: list[tuple[str, int]] = []
    index: dict[str, int] = {}
    input_set = set(inputs)

    def visit(node: tuple[str, int]) -> None:
        stack: list[tuple[tuple[str, int], int]] = [(node, 0)]
        while stack:
            cur, i = stack.pop()
            if i == 0:
                if cur in finished:
                    continue
                if cur in progress:
                    raise ValueError(f"layer {cur[0]!r} is part of a cycle")
                index.setdefault(cur[0], len(index))
                progress.add(cur)
            parents = [] if (cur in input_set and not graph.get(cur)) else graph.get(cur, [])
            if i < len(parents):
                stack.append((cur, i + 1))
                stack.append((parents[i], 0))
                continue
            finished.add(cur)
            progress.discard(cur)
            post.append(cur)

    for o in outputs:
        visit(o)
    node_depth: dict[tuple[str, int], int] = {}
    op_depth: dict[str, int] = {}
    in_graph = set(post)
    for node in reversed(post):
        depth = node_depth.setdefault(node, 0)
        depth = max(depth, op_depth.get(node[0], 0))
        op_depth[node[0]] = depth
        node_depth[node] = depth
        for dep in graph.get(node, []):
            if dep not in in_graph:
                continue
            node_depth[dep] = max(depth + 1, node_depth.get(dep, 0))
    for node in inputs:
        if node[0] not in op_depth:
            op_depth[node[0]] = 0
            index[node[0]] = -1
    by_depth: dict[int, list[str]] = defaultdict(list)
    for op, d in op_depth.items():
        by_depth[d].append(op)
    order: list[str] = []
    for d in sorted(by_depth, reverse=True):
        order.extend(sorted(by_depth[d], key=lambda op: index[op]))
    return order
