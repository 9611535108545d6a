"""The template's layout: which of the nested model's weights belong to which of its layers.

A Keras 2 nested model stores ALL its trainable weights (in layer order) and then ALL its
non-trainable ones under one group. A flat single-model file needs them per layer, each layer's
trainable weights then its non-trainable ones. Filtering the nested list by layer gives exactly
that order, so a layout only has to say which layer owns each weight, and in what order the
layers come. Sources, in order of trust:

1. a live Keras model (``model=``): per-layer counts of trainable / non-trainable weights;
2. a reference (``--reference``): a single-model ``.h5`` (exact weight lists per layer), or a
   JSON config / full-model ``.h5`` (layer names and nesting);
3. the file's own ``model_config``;
4. inference from weight names (``layout="inferred"``), refused where the file shows that the
   order cannot be known (layers whose weights appear only in the non-trainable tail).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import LayoutSource
from .errors import InputError, LayoutError, ReferenceMismatchError
from .pattern import ConfigLayer, config_layers, descendant_names
from .report import Layout

# Weights that Keras creates non-trainable whatever the layer's trainable flag (tf_keras 2.21,
# Keras 2.x): BatchNormalization's moving statistics (SyncBatchNormalization and BatchNormalization
# with renorm add moving_stddev, renorm_mean, renorm_stddev) and SpectralNormalization's power
# iteration vector. A weight named so proves that the non-trainable tail has begun.
_NON_TRAINABLE_NAMES = frozenset(
    {"moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev", "vector_u"}
)
# Layers whose weights are all non-trainable by construction, as their whole run of names:
# Normalization (mean, variance, count). Such a layer sits in the tail, apart from its place.
_STATE_LAYERS = frozenset({("mean", "variance", "count")})
_AUTO_NAME = re.compile(r"^(.*?)(?:_(\d+))?$")


def inferred_note(layers: int, unusual: Sequence[str] = ()) -> str:
    """The one line said of a layout inferred from weight names: what, the way out, the symptom.

    ``layers`` is the number of layers written (what Keras will count as "saved layers");
    ``unusual`` names layers holding non-trainable weights that are not BatchNormalization's.
    """
    note = (
        "layout inferred from weight names (a weights-only file does not record the template's "
        "layers); make it exact with reference= (the template's model.to_json() or a .h5 saved "
        "from it) or model= (the template built in code), as needed when the template nests a "
        f"model: Keras then refuses this file with 'Layer count mismatch … found {layers} saved "
        f"layers' (older Keras: 'a weight file containing {layers} layers into a model with M "
        "layers')"
    )
    if unusual:
        more = "…" if len(unusual) > 5 else ""
        note += (
            "; non-trainable weights other than BatchNormalization statistics were placed "
            f"after their layer's trainable ones, as Keras stores and loads them: "
            f"{', '.join(unusual[:5])}{more}"
        )
    return note


MAKE_EXACT = (
    "to make it exact pass reference= with the template's JSON config (model.to_json()) or "
    "a .h5 saved from the template (template.save_weights), or model= with the template built "
    "in code"
)


@dataclass(frozen=True)
class LayoutLayer:
    """One layer of the template that holds weights, in load order."""

    name: str
    class_name: str | None
    indices: tuple[int, ...]  # positions in the nested weight list, in this layer's load order
    children: tuple[str, ...] = ()  # layers nested inside (when this layer is a model)
    trainable: bool | None = None


@dataclass(frozen=True)
class TemplateLayout:
    """How the nested weights map onto the template's layers."""

    layers: tuple[LayoutLayer, ...]
    layer_names: tuple[str, ...]  # every layer, weightless ones included, in model order
    layout: Layout
    source: LayoutSource
    note: str | None = None
    config: dict[str, Any] | None = None  # {"class_name", "config"} of the template


def _norm(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _first(name: str, template: str, owners: dict[str, Any]) -> str:
    parts = name.split("/")
    if len(parts) > 2 and parts[0] == template and parts[1] in owners:
        return parts[1]  # old graph-mode names scoped by the model: model_1/dense_1/kernel:0
    return parts[0]


def from_config(
    template_cfg: ConfigLayer,
    nested: Sequence[str],
    source: LayoutSource,
) -> TemplateLayout:
    """Assign nested weights to the template's layers using the names in its config.

    Raises:
        LayoutError: a weight that no layer of the config owns, or an owner that is ambiguous.
    """
    is_seq = template_cfg.class_name == "Sequential"
    top = [
        c
        for c in config_layers(template_cfg.config)
        if not (is_seq and c.class_name == "InputLayer")
    ]
    if not top:
        raise LayoutError(
            f"expected the config of {template_cfg.name!r} to list its layers; found none; "
            + MAKE_EXACT
        )
    owners: dict[str, str] = {}
    clash: set[str] = set()
    children: dict[str, tuple[str, ...]] = {}
    for c in top:
        if c.name in owners:
            clash.add(c.name)
        owners[c.name] = c.name
    for c in top:
        if c.is_model:
            kids = descendant_names(c)
            children[c.name] = tuple(kids)
            for k in kids:
                if k in owners and owners[k] != c.name:
                    clash.add(k)
                owners.setdefault(k, c.name)
    assigned: dict[str, list[int]] = {}
    for i, w in enumerate(nested):
        first = _first(w, template_cfg.name, owners)
        if first in clash:
            raise LayoutError(
                f"expected each weight to belong to one layer; found layer name {first!r} used "
                f"twice in the template (weight {w!r}); pass model= (a live template) instead"
            )
        owner = owners.get(first)
        if owner is None:
            config = "the reference's config" if source == "reference" else "its config"
            raise ReferenceMismatchError(
                f"expected every weight of the template {template_cfg.name!r} to belong to a "
                f"layer of {config}; found {w!r} matches none ({len(top)} layers: "
                f"{', '.join(c.name for c in top[:6])}…); check that the config is the template's, "
                "or pass a .h5 saved from the template as reference="
            )
        assigned.setdefault(owner, []).append(i)
    layers = tuple(
        LayoutLayer(
            name=c.name,
            class_name=c.class_name,
            indices=tuple(assigned[c.name]),
            children=children.get(c.name, ()),
            trainable=c.trainable,
        )
        for c in top
        if c.name in assigned
    )
    return TemplateLayout(
        layers=layers,
        layer_names=tuple(c.name for c in top),
        layout="exact",
        source=source,
        config={"class_name": template_cfg.class_name, "config": template_cfg.config},
    )


def from_weight_lists(
    ref_layers: Sequence[tuple[str, Sequence[str]]],
    ref_layer_names: Sequence[str],
    nested: Sequence[str],
    ref_path: str,
) -> TemplateLayout:
    """Exact layout from a single-model file saved from the template (per-layer weight names).

    Raises:
        ReferenceMismatchError: the reference's weights are not exactly the nested ones.
    """
    index = {}
    for i, w in enumerate(nested):
        index[_norm(w)] = i
    layers = []
    used: set[int] = set()
    for name, wnames in ref_layers:
        if not wnames:
            continue
        idx = []
        for w in wnames:
            j = index.get(_norm(w))
            if j is None or j in used:
                raise ReferenceMismatchError(
                    f"expected the reference {Path(ref_path).name} to hold the same weights as "
                    f"the template; found its weight {w!r} (layer {name!r}) is not in the "
                    "checkpoint; pass a reference saved from the same template, or its JSON config"
                )
            used.add(j)
            idx.append(j)
        layers.append(LayoutLayer(name=name, class_name=None, indices=tuple(idx)))
    if len(used) != len(nested):
        missing = [w for i, w in enumerate(nested) if i not in used]
        raise ReferenceMismatchError(
            f"expected the reference {Path(ref_path).name} to cover every weight of the template; "
            f"found {len(missing)} not in it (first: {missing[0]!r}); pass a reference saved "
            "from the same template"
        )
    return TemplateLayout(
        layers=tuple(layers),
        layer_names=tuple(ref_layer_names),
        layout="exact",
        source="reference",
    )


@dataclass(frozen=True)
class LayerShapes:
    """One layer of a live model, as an exact layout needs it: its weights' shapes."""

    name: str
    class_name: str
    trainable: tuple[tuple[int, ...], ...]
    non_trainable: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ModelShapes:
    """What an exact layout needs of a live Keras model (picklable; no TensorFlow to use it).

    Built by :func:`model_shapes`; accepted wherever ``model=`` is (batch workers get this).
    """

    layers: tuple[LayerShapes, ...]


def model_shapes(model: Any) -> ModelShapes:
    """Each layer's trainable and non-trainable weight shapes, of a tf_keras or Keras 3 model.

    Raises:
        ReferenceMismatchError: ``model`` is not a Keras model.
    """
    if isinstance(model, ModelShapes):
        return model
    try:
        mlayers = list(model.layers)
    except AttributeError as exc:
        raise ReferenceMismatchError(
            f"expected a Keras model as model=; found {type(model).__name__}; pass the template"
        ) from exc

    def shapes(weights: Any) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(int(d) for d in w.shape) for w in weights)

    return ModelShapes(
        tuple(
            LayerShapes(
                name=str(layer.name),
                class_name=type(layer).__name__,
                trainable=shapes(layer.trainable_weights),
                non_trainable=shapes(layer.non_trainable_weights),
            )
            for layer in mlayers
        )
    )


def as_shapes(model: Any) -> ModelShapes | None:
    """A live model (or its :class:`ModelShapes`) as plain data, taken in the caller's process
    so that the worker that reads the file (:mod:`ckptfix.deadline`) never touches TensorFlow
    objects; None stays None."""
    return None if model is None else model_shapes(model)


def from_model(
    model: Any, nested: Sequence[str], shapes: Sequence[tuple[int, ...]]
) -> TemplateLayout:
    """Exact layout from a live Keras model (tf_keras or Keras 3) built like the template.

    Uses each layer's number of trainable and non-trainable weights: the nested list is every
    layer's trainable weights in order, then every layer's non-trainable weights. ``model``
    may also be its :class:`ModelShapes`.

    Raises:
        ReferenceMismatchError: counts or shapes differ from the checkpoint's.
    """
    layers_ = model_shapes(model).layers
    total = sum(len(layer.trainable) + len(layer.non_trainable) for layer in layers_)
    if total != len(nested):
        raise ReferenceMismatchError(
            f"expected the model to have as many weights as the checkpoint's template; found "
            f"{total} in the model and {len(nested)} in the file; pass the template model"
        )
    pos = 0
    t_idx: list[list[int]] = []
    for layer in layers_:
        t_idx.append(list(range(pos, pos + len(layer.trainable))))
        pos += len(layer.trainable)
    layers = []
    for layer, tix in zip(layers_, t_idx, strict=True):
        nix = list(range(pos, pos + len(layer.non_trainable)))
        pos += len(layer.non_trainable)
        idx = tix + nix
        for want, j in zip(layer.trainable + layer.non_trainable, idx, strict=True):
            if want != tuple(shapes[j]):
                raise ReferenceMismatchError(
                    f"expected weight {j} ({nested[j]!r}) to fit layer {layer.name!r}; found shape "
                    f"{tuple(shapes[j])} in the file and {want} in the model; "
                    "pass the template model"
                )
        if idx:
            layers.append(
                LayoutLayer(name=layer.name, class_name=layer.class_name, indices=tuple(idx))
            )
    return TemplateLayout(
        layers=tuple(layers),
        layer_names=tuple(layer.name for layer in layers_),
        layout="exact",
        source="model",
    )


def _base(name: str) -> str:
    """The weight's own name, without its layer scope and ``:0``: ``bn/moving_mean:0`` → ..."""
    return _norm(name).rsplit("/", 1)[-1]


def infer_from_names(
    nested: Sequence[str], template: str, outputs: Sequence[str] = ()
) -> TemplateLayout:
    """Rebuild the layer order from weight names alone (``layout="inferred"``).

    The nested list is every layer's trainable weights in layer order, then every layer's
    non-trainable ones (Keras 2's legacy order, which ``load_weights`` also uses per layer:
    trainable first, whatever order the layer created them in). Runs of weights sharing a first
    name component are layers. The non-trainable tail is proven to have begun at the first
    run that repeats an earlier layer, holds a weight Keras always creates non-trainable
    (BatchNormalization's moving statistics...), is a layer made only of state (Normalization),
    or, for a ``multi_gpu_model`` file, comes after the template's output layer (``outputs``:
    the merge layers carry the output layers' names, and an output layer comes last in a
    functional model's layers). A layer first seen in the tail holds only non-trainable
    weights (frozen, or state): its position cannot be known, so that is refused.

    Raises:
        LayoutError: the order is visibly unknowable.
    """
    unscoped = next((w for w in nested if "/" not in w), None)
    if unscoped is not None:
        raise LayoutError(
            f"expected every weight of {template!r} to be named after its layer; found weight "
            f"{unscoped!r} carries no layer name (made outside its layer's scope, as "
            "Normalization.adapt() before the layer is called does), so its layer cannot be "
            "inferred; pass reference= with a .h5 saved from the template "
            "(template.save_weights), or model= with the template built in code"
        )
    firsts = [_first(w, template, {}) for w in nested]
    runs: list[tuple[str, list[int]]] = []
    for i, f in enumerate(firsts):
        if runs and runs[-1][0] == f:
            runs[-1][1].append(i)
        else:
            runs.append((f, [i]))
    outputs_at = [r for r, (name, _) in enumerate(runs) if name in outputs]
    last_output = outputs_at[-1] if outputs_at else None
    seen: list[str] = []
    tail_start: int | None = None  # the first run wholly in the non-trainable tail
    why = "holds only non-trainable weights (a frozen layer, or state such as Normalization's)"
    for r, (name, idx) in enumerate(runs):
        repeat = name in seen
        if not repeat:
            seen.append(name)
        if tail_start is not None:
            continue
        bases = [_base(nested[i]) for i in idx]
        after_output = last_output is not None and r > last_output and not repeat
        if (
            repeat
            or after_output
            or tuple(bases) in _STATE_LAYERS
            or bases[0] in _NON_TRAINABLE_NAMES
        ):
            tail_start = r
            if after_output and last_output is not None:
                why += f", listed after the output layer {runs[last_output][0]!r}"
        elif any(b in _NON_TRAINABLE_NAMES for b in bases):
            # The tail begins inside this run: the last layer with trainable weights is also
            # the first with non-trainable ones, or a frozen BatchNormalization follows the
            # trainable weights. Only the output layer (known to come last) tells them apart.
            if r != last_output:
                raise LayoutError(
                    f"expected to place every layer of {template!r} from its weight names; "
                    f"found layer {name!r}, whose statistics start the non-trainable weights, "
                    "is either the template's last layer with weights or a frozen layer, and a "
                    f"weights-only file does not say which; {MAKE_EXACT}"
                )
            tail_start = r + 1
    if tail_start is not None:
        before = {name for name, _ in runs[:tail_start]}
        counts: dict[str, int] = {}
        for name, _ in runs[tail_start:]:
            counts[name] = counts.get(name, 0) + 1
            if name not in before:
                raise LayoutError(
                    f"expected to place every layer of {template!r} from its weight names; found "
                    f"layer {name!r} {why}, so a weights-only file does not say where it sits; "
                    f"{MAKE_EXACT}"
                )
            if counts[name] > 1:
                raise LayoutError(
                    f"expected each layer's weights in at most two runs; found {name!r} split "
                    f"further in {template!r}; {MAKE_EXACT}"
                )
    _check_auto_name_order(seen, template)
    by_layer: dict[str, list[int]] = {}
    for i, f in enumerate(firsts):
        by_layer.setdefault(f, []).append(i)
    layers = tuple(LayoutLayer(name=n, class_name=None, indices=tuple(by_layer[n])) for n in seen)
    # A layer found again in the tail keeps its trainable weights first, as Keras 2 stores and
    # loads them; non-trainable weights other than the known statistics are named, so that the
    # owner of a custom layer's state can check it.
    unusual: list[str] = []
    if tail_start is not None:
        for name, idx in runs[tail_start:]:
            if any(_base(nested[i]) not in _NON_TRAINABLE_NAMES for i in idx):
                unusual.append(name)
    return TemplateLayout(
        layers=layers,
        layer_names=tuple(seen),
        layout="inferred",
        source="names",
        note=inferred_note(len(layers), unusual),
    )


def _check_auto_name_order(order: Sequence[str], template: str) -> None:
    """Refuse when auto-generated names (dense, dense_1, dense_2) come out of creation order.

    Keras numbers auto-named layers in creation order; a frozen layer moved to the tail shows
    up as a number out of sequence.
    """
    last: dict[str, int] = {}
    for name in order:
        m = _AUTO_NAME.match(name)
        if m is None:
            continue
        base, num = m.group(1), m.group(2)
        n = int(num) if num is not None else 0
        if base in last and n < last[base]:
            raise LayoutError(
                f"expected {template!r}'s auto-named layers in creation order; found {name!r} "
                f"after a later-numbered {base} layer, the sign of a frozen layer moved to the "
                f"non-trainable tail; {MAKE_EXACT}"
            )
        last[base] = n


def load_reference(path: str | Path) -> tuple[str, Any]:
    """Read a ``--reference``: ("json", config) or ("h5", path). No code is run.

    Raises:
        InputError: the reference is missing, or neither a .h5 file nor a JSON config.
    """
    p = Path(path)
    if not p.is_file():
        what = "a folder" if p.is_dir() else "nothing"
        raise InputError(f"expected reference= to be a file; found {what} at {p}; check the path")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x89HDF"):
        return "h5", p
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(
            f"expected reference= to be a .h5 file or a JSON config (model.to_json()); found "
            f"{p.name} is neither; pass one of those"
        ) from exc
    if not isinstance(data, dict) or "config" not in data:
        raise InputError(
            f"expected reference= JSON from model.to_json() (with class_name and config); found "
            f"other JSON in {p.name}; pass the template's config"
        )
    return "json", data
