"""Keras SavedModel folders written by tf.keras (``model.save(dir)``, ``ModelCheckpoint``): read.

A SavedModel folder holds ``saved_model.pb`` (graphs, functions and the object graph),
``variables/variables.index`` + ``.data-*`` (a tensor bundle, :mod:`ckptfix.bundle`, whose object
graph numbers its nodes like ``saved_model.pb``'s), ``fingerprint.pb`` and ``assets/``. The Keras
metadata of every layer (its name, class, ``trainable`` flag and config; the model's whole
``model_config``, ``training_config``, ``keras_version``) is JSON in ``keras_metadata.pb``
(tf.keras >= 2.5) or, for tf.keras 2.0-2.4 (when ``multi_gpu_model`` still existed), in each
object's ``SavedUserObject.metadata`` inside ``saved_model.pb``. Both are read here, as data.

Unlike a weights-only checkpoint, a SavedModel records each layer's ``trainable_variables``
and ``keras_api/non_trainable_variables`` lists in its object graph: the Keras 2 load order of
every layer, nested models included, is read as Keras computed it, so the layout is exact.

The reader produces the Checkpoint a Keras 2 full-model ``.h5`` of the same model gives
(:mod:`.keras2_h5`), family ``keras2`` (a tf.keras model, whose configs follow Keras 2's schema,
so every writer of Keras 2 sources serves it): the wrapper's ``model_config`` and
``training_config`` as stored, the template's config entry, and the optimizer's weights in
the order and with the names ``optimizer_weights`` would hold (``iteration:0``,
``Adam/m/dense/kernel:0``; legacy ``Adam/iter:0``, ``Adam/dense/kernel/m:0``), each slot tied
to its variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import bundle
from ..checkpoint import Checkpoint, Family, JSONObject, Layer, Layout
from ..errors import (
    CorruptCheckpointError,
    NotACheckpointError,
    TemplateNotFoundError,
    UnsupportedConversionError,
)
from ..pattern import config_layers, find_pattern
from . import TF_SAVEDMODEL
from . import tf_bundle as tb
from .base import Planned, Probe, ReadOptions, WriteOptions, Written

METADATA = "keras_metadata.pb"
SAVED_MODEL = "saved_model.pb"
#: Largest ``keras_metadata.pb`` / ``saved_model.pb`` parsed (real ones: KBs to hundreds of MB).
_MAX_PB = 1 << 30


@dataclass(frozen=True)
class NodeMeta:
    """One Keras object of the SavedModel: its path from the root and its metadata."""

    path: tuple[str, ...]  # child names from the root ("layer_with_weights-0", ...)
    identifier: str  # "_tf_keras_layer", "_tf_keras_network", ...
    metadata: dict[str, Any]


def _read_pb(path: Path, message: Any, what: str) -> Any:
    from google.protobuf.message import DecodeError

    try:
        data = bundle.read_capped(path, _MAX_PB, what)
    except OSError as exc:
        raise CorruptCheckpointError(
            f"expected a readable {path.name} in the SavedModel; found it cannot be read "
            f"({exc.strerror or exc}); check the folder"
        ) from exc
    msg = message()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        why = str(exc).replace("ckptfix_subset.", "")
        raise CorruptCheckpointError(
            f"expected a {what} in {path.name}; found bytes that do not parse ({why}); the "
            "SavedModel is damaged"
        ) from exc
    return msg


#: tf_keras's SavedModel JSON encoder (``json_utils.Encoder``) writes tuples and shapes as
#: objects; a ``.h5`` (plain ``json.dumps``) has lists there, and so does every config ckptfix
#: hands on: Keras 3 reads ``{"class_name": "__tuple__", ...}`` as a layer to deserialize.
_ENCODED_SEQUENCES = frozenset({"__tuple__", "TensorShape"})


def _plain(obj: dict[str, Any]) -> Any:
    """One JSON object as ``json.dumps`` of the same config would have written it."""
    if obj.get("class_name") in _ENCODED_SEQUENCES and isinstance(obj.get("items"), list):
        return obj["items"]
    return obj


def _json(text: str, where: str, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(text, object_hook=_plain) if text else {}
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"expected JSON metadata for {where} in {folder.name}; found text that does not "
            f"parse ({exc}); the SavedModel is damaged"
        ) from exc
    if not isinstance(value, dict):
        raise CorruptCheckpointError(
            f"expected a JSON object as metadata for {where} in {folder.name}; found "
            f"{type(value).__name__}; the SavedModel is damaged"
        )
    return value


def read_metadata(folder: Path) -> list[NodeMeta]:
    """Every Keras object's metadata, from ``keras_metadata.pb`` or (older) ``saved_model.pb``.

    Raises:
        NotACheckpointError: a SavedModel that tf.keras did not write.
        CorruptCheckpointError: metadata that does not parse.
    """
    from ..protos import SavedMetadata, SavedModel

    out: list[NodeMeta] = []
    meta_file = folder / METADATA
    if meta_file.is_file():
        md = _read_pb(meta_file, SavedMetadata, "Keras metadata")
        for n in md.nodes:
            path = tuple(p for p in str(n.node_path).split(".")[1:])
            if not str(n.node_path).startswith("root"):
                continue
            out.append(NodeMeta(path, str(n.identifier), _json(n.metadata, n.node_path, folder)))
        return out
    sm = _read_pb(folder / SAVED_MODEL, SavedModel, "SavedModel")
    if len(sm.meta_graphs) != 1:
        raise NotACheckpointError(
            f"expected a SavedModel written by tf.keras (one MetaGraph); found {folder.name} "
            f"with {len(sm.meta_graphs)}; ckptfix reads Keras SavedModels only"
        )
    nodes = list(sm.meta_graphs[0].object_graph_def.nodes)
    paths: dict[int, tuple[str, ...]] = {0: ()} if nodes else {}
    todo = [0] if nodes else []
    while todo:  # breadth-first: each object's first path from the root
        nxt = []
        for i in todo:
            for c in nodes[i].children:
                j = int(c.node_id)
                if 0 <= j < len(nodes) and j not in paths:
                    paths[j] = paths[i] + (str(c.local_name),)
                    nxt.append(j)
        todo = nxt
    for i, path in sorted(paths.items()):
        user = nodes[i].user_object
        if nodes[i].WhichOneof("kind") == "user_object" and user.metadata:
            out.append(NodeMeta(path, str(user.identifier), _json(user.metadata, str(i), folder)))
    if not out:
        raise NotACheckpointError(
            f"expected a SavedModel written by tf.keras (Keras metadata in {METADATA} or "
            f"{SAVED_MODEL}); found {folder.name} has none (a tf.saved_model.save of other "
            "objects, or a Keras 3 export); ckptfix reads tf.keras SavedModels only"
        )
    return out


def _resolve(g: tb.Graph, path: tuple[str, ...]) -> int | None:
    node = 0
    for name in path:
        nxt = g.child(node, name)
        if nxt is None:
            return None
        node = nxt
    return node


def _list(g: tb.Graph, node: int | None) -> list[int] | None:
    if node is None:
        return None
    kids = sorted((int(n), c) for n, c in g.children(node) if n.isdigit())
    return [c for _, c in kids]


def recorded_orders(
    g: tb.Graph, layers: list[tb.TfLayer]
) -> dict[int, tuple[list[int], list[int]]]:
    """Each layer's ``trainable_variables`` and ``keras_api/non_trainable_variables`` lists."""
    out: dict[int, tuple[list[int], list[int]]] = {}
    for layer in layers:
        t = _list(g, g.child(layer.node, "trainable_variables"))
        api = g.child(layer.node, "keras_api")
        n = _list(g, g.child(api, "non_trainable_variables") if api is not None else None)
        if t is None or n is None:
            continue
        if sorted(t + n) != sorted(layer.variables()) or len(set(t + n)) != len(t + n):
            continue  # not this layer's own variables: fall back to the checkpoint's evidence
        out[layer.node] = (t, n)
    return out


def _walk(layer: tb.TfLayer) -> list[tb.TfLayer]:
    out = [layer]
    for sub in layer.layers + layer.subs:
        out += _walk(sub)
    return out


def _entry_config(meta: dict[str, Any]) -> JSONObject | None:
    if "class_name" in meta and "config" in meta:
        return {"class_name": meta["class_name"], "config": meta["config"]}
    return None


def read(path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
    """Read a tf.keras SavedModel folder into a Checkpoint (metadata only)."""
    folder = path if path.is_dir() else path.parent
    metas = read_metadata(folder)
    prefix = folder / "variables" / "variables"
    if not bundle.index_file(prefix).is_file():
        raise CorruptCheckpointError(
            f"expected variables/variables.index in the SavedModel {folder.name}; found none; "
            "copy the whole SavedModel folder"
        )
    g = tb.load_graph(prefix)
    root_meta = next((m for m in metas if m.path == ()), None)
    if root_meta is None or not tb.is_model(g, 0):
        raise NotACheckpointError(
            f"expected a Keras model saved as a SavedModel; found {folder.name} holds another "
            "Keras object at its root; ckptfix reads models only"
        )
    names = tb.Named()
    for m in metas:
        node = _resolve(g, m.path)
        if node is None:
            continue
        if isinstance(m.metadata.get("name"), str):
            names.by_node[node] = m.metadata["name"]
        if isinstance(m.metadata.get("class_name"), str):
            names.classes[node] = m.metadata["class_name"]
        if isinstance(m.metadata.get("trainable"), bool):
            names.trainable[node] = m.metadata["trainable"]
        cfg = _entry_config(m.metadata)
        if cfg is not None:
            names.configs[node] = cfg
    root = root_meta.metadata
    model_config = root.get("model_config")
    model_config = model_config if isinstance(model_config, dict) else None
    training_config = root.get("training_config")
    training_config = training_config if isinstance(training_config, dict) else None
    tree = tb.build_layer(g, 0, "", set())
    ev = tb.Evidence(
        None,
        {v: n for lay in _walk(tree) for v, n in lay.names.items()},
        shapes=tb.variable_shapes(g, tree),
    )
    ev.trainable_lists = recorded_orders(g, _walk(tree))
    by_name = {names.by_node.get(sub.node, sub.key): sub for sub in tree.layers}
    label = folder.name
    cfg_layers = config_layers(model_config) if model_config is not None else []
    layer_names = [c.name for c in cfg_layers] or list(by_name)
    weights = {n: [tb.weight_name(g, v, "") for v in sub.variables()] for n, sub in by_name.items()}
    if options.template is not None and options.template not in by_name:
        known = ", ".join(n for n, s in by_name.items() if s.model) or "none"
        raise TemplateNotFoundError(
            f"expected template= to name a model nested in {label}; found {options.template!r} "
            f"is not one (nested models in the file: {known}); pick one of those names"
        )
    pattern = find_pattern(layer_names, weights, cfg_layers, options.template, label)
    chosen = by_name.get(pattern.template) if pattern.template is not None else None
    subject = chosen if chosen is not None else tree
    names.by_node.setdefault(tree.node, str(root.get("name") or folder.name))
    tpl_cfg = next((c for c in cfg_layers if c.name == pattern.template), None)
    if chosen is not None and tpl_cfg is not None:
        names.configs[chosen.node] = {"class_name": tpl_cfg.class_name, "config": tpl_cfg.config}
    elif chosen is None and model_config is not None:
        names.configs[tree.node] = model_config
    sub_cfg = names.configs.get(subject.node)
    inner = config_layers(sub_cfg) if sub_cfg is not None else []
    is_seq = (sub_cfg or {}).get("class_name") == "Sequential"
    sub_names = [c.name for c in inner if not (is_seq and c.class_name == "InputLayer")]
    tpl_layer, whole, why = tb.template_layer(g, subject, ev, names, sub_names)
    layout = (
        Layout("exact", "config")
        if not why
        else Layout("inferred", "config", "; ".join(dict.fromkeys(why)))
    )
    if subject is tree:
        model = tpl_layer
    else:
        model = Layer(
            names.by_node[tree.node],
            names.classes.get(tree.node),
            (),
            tuple(
                tpl_layer if sub is chosen else tb.to_layer(g, sub, ev, names)[0]
                for sub in tree.layers
            ),
            layer_names=tuple(layer_names),
            config=model_config,
            key="",
        )
    opt = tb.read_optimizer(g, 0, subject.variables())
    oc = (training_config or {}).get("optimizer_config")
    cls = None
    if isinstance(oc, dict) and isinstance(oc.get("class_name"), str):
        cls = str(oc["class_name"]).removeprefix("Custom>")
    optimizer = tb.all_optimizer(g, opt, cls, oc) if opt is not None else None
    t_opt, opt_note = (None, None)
    if opt is not None:
        t_order = ev.trainable_lists.get(subject.node, (whole.t, whole.n))[0]
        t_opt, opt_note = tb.keras2_optimizer(g, opt, t_order, oc, cls)
    notes: list[str] = []
    if model_config is None:
        notes.append(
            "the SavedModel records no model_config (a subclassed model): only its weights can "
            "be converted"
        )
    keras_version = root.get("keras_version")
    backend = root.get("backend")
    return Checkpoint(
        path=str(folder),
        format=fmt,
        family="keras2",  # a tf.keras model: Keras 2 configs, Keras 2 writers serve it
        full_model=model_config is not None,
        keras_version=str(keras_version) if keras_version is not None else None,
        backend=str(backend) if backend is not None else "tensorflow",
        model=model,
        pattern=pattern,
        layout=layout,
        template=tpl_layer if chosen is not None else None,
        model_config=model_config,
        training_config=training_config,
        optimizer=optimizer,
        template_optimizer=t_opt,
        optimizer_note=opt_note,
        notes=tuple(notes),
    )


class SavedModelFormat:
    """tf.keras SavedModel folders (read only: converted to Keras 2 ``.h5`` or Keras 3)."""

    name = "TensorFlow SavedModel"
    family: Family = "keras2"
    ids: tuple[str, ...] = (TF_SAVEDMODEL,)
    read_options = frozenset({"template", "exact"})
    write_options = frozenset({"progress"})

    def sniff(self, probe: Probe) -> str | None:
        p = probe.path
        return TF_SAVEDMODEL if p.is_dir() and (p / SAVED_MODEL).is_file() else None

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        return read(path, fmt, options)

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        return None

    def accepts(self, ck: Checkpoint) -> bool:
        return False

    def plan(self, ck: Checkpoint) -> Planned:
        raise UnsupportedConversionError("expected a format ckptfix writes; found a SavedModel")

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        raise UnsupportedConversionError("expected a format ckptfix writes; found a SavedModel")

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        return []

    def suggest(self, path: Path) -> Path:
        folder = path if path.is_dir() else path.parent
        return folder.with_name(folder.name + ".single.h5")

    def input_files(self, ck: Checkpoint) -> tuple[Path, ...]:
        folder = Path(ck.path)
        prefix = folder / "variables" / "variables"
        num = bundle.read_index(prefix).num_shards
        return (
            folder / SAVED_MODEL,
            folder / METADATA,
            bundle.index_file(prefix),
            *(bundle.data_file(prefix, i, num) for i in range(num)),
        )


FORMAT = SavedModelFormat()
