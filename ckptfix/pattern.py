"""Find the parallel (or wrapped) pattern in a Keras 2 checkpoint's layers and config.

``multi_gpu_model`` produced: the template's inputs, ``replicas × inputs`` Lambda slice layers,
ONE layer that is the whole template (a nested model holding every weight), and one
Concatenate merge per template output, named like that output. A nested model is recognised
from the file's ``model_config`` when present, else structurally from weight names: a single
layer's weights are stored under its own name (``dense_1/kernel:0`` in group ``dense_1``),
a nested model's under its inner layers' names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .checkpoint import Pattern
from .errors import AmbiguousTemplateError, NothingToConvertError, TemplateNotFoundError

MODEL_CLASSES = frozenset({"Model", "Functional", "Sequential"})
_LAMBDA_NAME = re.compile(r"^lambda(_\d+)?$")
_MERGE_CLASSES = frozenset({"Concatenate", "Merge"})


@dataclass(frozen=True)
class ConfigLayer:
    """One layer entry of a Keras model config (data only; nothing is deserialised)."""

    name: str
    class_name: str
    config: Any  # the raw "config" value (dict, or list for old Sequential)
    inbound_count: int  # how many times the layer was called (replicas, for the template)
    trainable: bool | None

    @property
    def is_model(self) -> bool:
        return self.class_name in MODEL_CLASSES or (
            isinstance(self.config, dict) and isinstance(self.config.get("layers"), list)
        )


def config_layers(model_config: Any) -> list[ConfigLayer]:
    """The layers of a model config, in order, for every Keras 2 schema.

    Handles ``Model``/``Functional`` dicts, ``Sequential`` as a dict with ``layers`` and the
    Keras 2.0/2.1 ``Sequential`` stored as a plain list of layers (no layer-level name).
    """
    cfg = model_config
    if isinstance(cfg, dict) and "class_name" in cfg and "config" in cfg:
        cfg = cfg["config"]
    if isinstance(cfg, list):
        entries = cfg
    elif isinstance(cfg, dict) and isinstance(cfg.get("layers"), list):
        entries = cfg["layers"]
    else:
        return []
    out: list[ConfigLayer] = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        inner = e.get("config")
        name = e.get("name")
        if not isinstance(name, str) and isinstance(inner, dict):
            name = inner.get("name")
        if not isinstance(name, str):
            continue
        inbound = e.get("inbound_nodes")
        trainable = inner.get("trainable") if isinstance(inner, dict) else None
        out.append(
            ConfigLayer(
                name=name,
                class_name=str(e.get("class_name", "")),
                config=inner,
                inbound_count=len(inbound) if isinstance(inbound, list) else 0,
                trainable=trainable if isinstance(trainable, bool) else None,
            )
        )
    return out


def model_name(model_config: Any) -> str | None:
    """The model's own name from its config, when it has one."""
    if isinstance(model_config, dict):
        cfg = model_config.get("config", model_config)
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
            return str(cfg["name"])
    return None


def descendant_names(layer: ConfigLayer) -> list[str]:
    """Names of every layer nested (at any depth) inside a model layer's config."""
    names: list[str] = []
    for child in config_layers(layer.config):
        names.append(child.name)
        if child.is_model:
            names.extend(descendant_names(child))
    return names


def looks_nested(group_name: str, weight_names: Sequence[str]) -> bool:
    """True when a layer group's weights are stored under other layers' names.

    A plain layer stores ``<its name>/...``; a nested model stores ``<inner layer>/...``.
    """
    return bool(weight_names) and any(
        not (w.startswith(group_name + "/") or w == group_name) for w in weight_names
    )


def find_candidates(
    layer_names: Sequence[str],
    weights: Mapping[str, Sequence[str]],
    cfg_layers: Sequence[ConfigLayer],
) -> list[str]:
    """The layers that are nested models holding weights."""
    by_name = {c.name: c for c in cfg_layers}
    out = []
    for name in layer_names:
        wn = weights.get(name) or []
        if not wn:
            continue
        cl = by_name.get(name)
        if cl is not None:
            if cl.is_model:
                out.append(name)
        elif looks_nested(name, wn):
            out.append(name)
    return out


def find_pattern(
    layer_names: Sequence[str],
    weights: Mapping[str, Sequence[str]],
    cfg_layers: Sequence[ConfigLayer],
    template: str | None,
    path_for_messages: str,
) -> Pattern:
    """Find the template and the parallel pattern around it in a Keras 2 layer list.

    Never raises for a readable structure: a single model, a model containing a model and
    several candidates are described, with ``refusal`` set to the error ``convert`` raises.

    Raises:
        TemplateNotFoundError: ``template`` names no nested model of the file.
    """
    candidates = tuple(find_candidates(layer_names, weights, cfg_layers))
    weighted = [n for n in layer_names if weights.get(n)]
    if template is not None:
        if template not in candidates:
            known = ", ".join(candidates) if candidates else "none"
            raise TemplateNotFoundError(
                f"expected template= to name a nested model holding weights; found "
                f"{template!r} is not one (nested models in the file: {known}); "
                "pick one of those names"
            )
        chosen = template
    elif not candidates:
        return Pattern(
            "single",
            None,
            refusal=NothingToConvertError(
                f"expected a parallel or wrapped checkpoint; found a single model "
                f"({len(weighted)} layers with weights, none nested) in {path_for_messages}; "
                "nothing to convert: load it directly with model.load_weights / load_model"
            ),
        )
    elif len(candidates) > 1:
        return Pattern(
            "ambiguous",
            None,
            candidates,
            refusal=AmbiguousTemplateError(
                f"expected one nested model holding weights; found {len(candidates)} "
                f"({', '.join(candidates)}); pass template=NAME to choose"
            ),
        )
    else:
        chosen = candidates[0]
    outer = tuple(n for n in weighted if n != chosen)
    if outer and template is None:
        return Pattern(
            "container",
            None,
            candidates,
            outer_weighted=outer,
            refusal=NothingToConvertError(
                f"expected a parallel or wrapped checkpoint; found a single model that contains "
                f"the model {chosen!r} beside other layers with weights ({', '.join(outer[:5])}"
                f"{'…' if len(outer) > 5 else ''}); nothing to convert: load it directly, or "
                f"pass template={chosen!r} to extract {chosen!r} alone"
            ),
        )
    by_name = {c.name: c for c in cfg_layers}
    replicas: int | None
    if cfg_layers:
        slices = tuple(c.name for c in cfg_layers if c.class_name == "Lambda")
        pos = layer_names.index(chosen) if chosen in layer_names else len(layer_names)
        merges = tuple(
            c.name
            for c in cfg_layers
            if c.class_name in _MERGE_CLASSES and _index(layer_names, c.name) > pos
        )
        inputs = tuple(c.name for c in cfg_layers if c.class_name == "InputLayer")
        tpl = by_name.get(chosen)
        calls = tpl.inbound_count if tpl is not None else 0
        replicas = calls if calls >= 1 else None
    else:
        pos = list(layer_names).index(chosen)
        slices = tuple(n for n in layer_names[:pos] if _LAMBDA_NAME.match(n))
        inputs = tuple(
            n for n in layer_names[:pos] if not weights.get(n) and not _LAMBDA_NAME.match(n)
        )
        merges = tuple(n for n in layer_names[pos + 1 :] if not weights.get(n))
        replicas = None
        if slices and inputs and len(slices) % len(inputs) == 0:
            replicas = len(slices) // len(inputs)
    parallel = bool(slices) and bool(merges) and not outer
    return Pattern(
        "parallel" if parallel else "wrapped",
        chosen,
        candidates,
        replicas=replicas if parallel else None,
        slices=slices,
        merges=merges,
        inputs=inputs,
        outer_weighted=outer,
    )


def _index(names: Sequence[str], name: str) -> int:
    try:
        return list(names).index(name)
    except ValueError:
        return -1
