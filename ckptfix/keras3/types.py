"""The result of a Keras 2 -> Keras 3 model translation, and the rule registry.

:class:`Keras3Model` is what :func:`ckptfix.keras3.translate_model` returns: the Keras 3
``config.json`` object, every HDF5 group and dataset Keras 3's ``save_weights`` writes for the
model, and for each dataset the Keras 2 weight(s) it is made from (:class:`WeightMove`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import UnsupportedConversionError


@dataclass(frozen=True)
class WeightMove:
    """One Keras 3 dataset of ``model.weights.h5`` and the Keras 2 weight(s) it is made from.

    ``layer`` is the path of Keras 2 layer names from the converted model down to the layer
    that owns the weights, through every nested model (``("block", "inner", "dense")``);
    :func:`ckptfix.keras3.source_weights` resolves it in a reader's layer tree, whether that
    tree keeps the nesting or flattens a nested model's layers under it. ``sources`` index
    that layer's weights in Keras 2 load order (trainable first, then non-trainable).
    """

    path: str  # Keras 3 dataset path, e.g. "layers/functional/layers/dense/vars/0"
    layer: tuple[str, ...]
    sources: tuple[int, ...]
    transform: str | None = None  # None: bytes unchanged; else a name in TRANSFORMS
    trainable: bool = True  # whether Keras 3 treats the variable as trainable


@dataclass(frozen=True)
class Keras3Model:
    """A Keras 2 model translated to Keras 3 (config, weights layout, what the user must know)."""

    config: dict[str, Any]  # config.json's model object, without compile_config
    groups: tuple[str, ...]  # every HDF5 group save_weights writes ("vars" groups included)
    weights: tuple[WeightMove, ...]  # every dataset of the model (not the optimizer)
    trainable_order: tuple[str, ...]  # dataset paths of model.trainable_variables, in order
    output_names: tuple[str, ...]  # the Keras 3 model's output names, in order
    custom_objects: tuple[str, ...]  # class names the user must pass as custom_objects
    notes: tuple[str, ...]  # one-line facts the user should know (what was translated)
    #: the ``name`` attribute Keras 3 writes on each ``vars`` group (metadata it never reads;
    #: names of sublayers Keras 3 creates itself, such as cells, are its defaults)
    group_names: dict[str, str] = field(default_factory=dict)
    #: dataset paths whose trainability the config cannot tell (custom layers): guessed
    #: trainable; an optimizer that holds slots for the source weight settles it
    trainable_guessed: tuple[str, ...] = ()
    #: rule ids applied, in order of first use (see ``ckptfix.keras3.RULES``)
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One Keras 2 -> Keras 3 change and how ckptfix translates it."""

    id: str  # short name, e.g. "lstm-time-major-removed"
    change: str  # what changed between Keras 2 and Keras 3, in one sentence
    since: str  # the Keras version that introduced the change
    action: str  # what ckptfix does about it
    test: str  # the test that proves the translation


RULES: dict[str, Rule] = {}


_F = TypeVar("_F", bound=Callable[..., Any])


def rule(id: str, *, change: str, since: str, action: str, test: str) -> Callable[[_F], _F]:
    """Register a translation rule (a function or table named after the change it covers)."""
    RULES[id] = Rule(id, change, since, action, test)

    def mark(fn: _F) -> _F:
        fn.rule_id = id  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass
class Refusal:
    """A layer the translation cannot express faithfully, and why."""

    layer: str
    reason: str
    way_out: str


class Context:
    """What one translation learns as it goes: notes, refusals, custom classes, rules used."""

    def __init__(self, keras_version: str | None, backend: str | None) -> None:
        self.keras_version = keras_version
        self.backend = (backend or "").lower() or None
        self.version = parse_version(keras_version)
        self.notes: list[str] = []
        self.refusals: list[Refusal] = []
        self.custom: list[str] = []
        self.used: list[str] = []

    @property
    def standalone(self) -> bool:
        """True for a file written by standalone Keras (keras-team/keras 2.x, not tf.keras)."""
        v = self.keras_version or ""
        return not v.endswith("-tf") and self.version is not None and self.version < (2, 4)

    def use(self, rule_id: str, note: str | None = None) -> None:
        if rule_id not in RULES:  # pragma: no cover - a programming error
            raise KeyError(rule_id)
        if rule_id not in self.used:
            self.used.append(rule_id)
        if note and note not in self.notes:
            self.notes.append(note)

    def refuse(self, layer: str, reason: str, way_out: str) -> None:
        self.refusals.append(Refusal(layer, reason, way_out))

    def raise_refusals(self) -> None:
        if not self.refusals:
            return
        first = self.refusals[0]
        names = ", ".join(dict.fromkeys(r.layer for r in self.refusals))
        more = "" if len(self.refusals) == 1 else f" ({len(self.refusals) - 1} more after it)"
        raise UnsupportedConversionError(
            "expected every layer to have a faithful Keras 3 counterpart; found layer "
            f"{first.layer!r}: {first.reason}{more}; layers refused: {names}; {first.way_out}"
        )


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``"2.2.4-tf"`` -> (2, 2, 4); None when absent or unreadable."""
    if not text:
        return None
    head = str(text).split("-")[0].split("+")[0]
    parts: list[int] = []
    for p in head.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        return None
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])
