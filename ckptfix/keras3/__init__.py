"""Keras 2 model configs -> Keras 3: the config, the weights layout, and what cannot carry over.

Data to data: no TensorFlow, no Keras. :func:`translate_model` takes the ``model_config`` of a
Keras 2 full-model file (or ``model.to_json()``) and returns a :class:`Keras3Model`: the
``config.json`` object Keras 3 loads in safe mode, every group and dataset its
``model.weights.h5`` holds, and for each dataset the Keras 2 weight(s) it is made from
(:class:`WeightMove`, with a :data:`TRANSFORMS` name where the layout changed between versions).
Each Keras 2 -> 3 change is one registered rule (:data:`RULES`), named after the change and
tested; where the result would not compute what the source computed, the translation is
refused with the layer names, the reason and the way out (``UnsupportedConversionError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..checkpoint import JSONObject, Layer, Weight
from ..errors import UnsupportedConversionError
from . import plans as _plans  # noqa: F401  (registers its rules in RULES on import)
from .graph import translate_nested_model
from .types import RULES, Context, Keras3Model, Rule, WeightMove
from .weights import INEXACT_TRANSFORMS, TRANSFORMS, apply_transform, flatten

__all__ = [
    "INEXACT_TRANSFORMS",
    "RULES",
    "TRANSFORMS",
    "Keras3Model",
    "Rule",
    "WeightMove",
    "apply_transform",
    "source_weights",
    "translate_model",
]


def translate_model(
    model_config: JSONObject,
    *,
    keras_version: str | None,
    backend: str | None,
    source: Layer | None = None,
) -> Keras3Model:
    """Keras 2 model config -> Keras 3.

    Args:
        model_config: the whole ``model_config`` of a Keras 2 full-model ``.h5`` (or a
            ``model.to_json()`` object): ``{"class_name", "config", ...}``.
        keras_version: the file's ``keras_version`` attribute (``"2.2.4"``, ``"2.1.6-tf"``),
            which decides what an argument absent from an old config meant.
        backend: the file's ``backend`` attribute (``"theano"`` kernels are flipped).
        source: the Keras 2 layer tree of the same model (``Checkpoint.subject``), when known:
            it gives the weight count of custom layers and every layer's count is checked
            against the config.

    Returns:
        The translated model.

    Raises:
        UnsupportedConversionError: a layer Keras 3 cannot express faithfully (a Lambda, an
            argument with no Keras 3 counterpart, ...): the message names the layers, the
            reason and the way out.

    Example:
        >>> k3 = translate_model(json.loads(f.attrs["model_config"]), keras_version="2.2.4",
        ...                      backend="tensorflow")
        >>> k3.config["class_name"], len(k3.weights)
        ('Functional', 8)
    """
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise UnsupportedConversionError(
            "expected a Keras model config with class_name and config; found "
            f"{type(model_config).__name__}; pass the file's model_config"
        )
    ctx = Context(keras_version, backend)
    counts = _counter(source) if source is not None else None
    t = translate_nested_model(dict(model_config), ctx, (), counts)
    ctx.raise_refusals()
    config = dict(t.object)
    if config.get("class_name") == "Functional":
        config["build_config"] = {"input_shape": None}
    flat = flatten(t.saveable)
    # WeightMove.layer starts below the converted model (its own name is not part of it).
    moves = tuple(replace(m, layer=m.layer[1:]) for m in flat.moves)
    outputs = getattr(t, "output_names", None)
    if outputs is None:
        layers = config.get("config", {}).get("layers", [])
        outputs = (str(layers[-1]["config"]["name"]),) if layers else ()
    return Keras3Model(
        config=config,
        groups=flat.groups,
        weights=moves,
        trainable_order=flat.trainable_order,
        output_names=tuple(outputs),
        custom_objects=tuple(dict.fromkeys(ctx.custom)),
        notes=tuple(ctx.notes),
        group_names=flat.group_names,
        trainable_guessed=flat.guessed,
        rules=tuple(ctx.used),
    )


def _find(layer: Layer, path: Sequence[str]) -> Layer | None:
    """The layer at ``path`` below ``layer``; intermediate models a tree flattened are skipped."""
    node = layer
    for i, name in enumerate(path):
        child = next((c for c in node.layers if c.name == name), None)
        if child is None:
            if i == len(path) - 1:
                return next((c for c in node.walk() if c.name == name and not c.layers), None)
            continue
        node = child
    return node


def _counter(source: Layer) -> Any:
    def count(path: tuple[str, ...]) -> int | None:
        found = _find(source, path[1:])  # path[0] is the converted model itself
        return 0 if found is None else len(found.weights)

    return count


def source_weights(subject: Layer, move: WeightMove) -> tuple[Weight, ...]:
    """The Keras 2 weights a :class:`WeightMove` is made from, in ``move.sources`` order.

    ``subject`` is the Keras 2 layer tree of the translated model (``Checkpoint.subject``);
    nested models may appear nested or with their layers flattened under them.

    Raises:
        UnsupportedConversionError: the tree has no such layer or weight.
    """
    found = _find(subject, move.layer)
    if found is None or any(i >= len(found.weights) for i in move.sources):
        raise UnsupportedConversionError(
            f"expected Keras 2 layer {'/'.join(move.layer)} to hold weight(s) "
            f"{list(move.sources)}; found "
            f"{'no such layer' if found is None else len(found.weights)} in the file; "
            "check that the file's model_config describes its weights"
        )
    return tuple(found.weights[i] for i in move.sources)
