"""A Keras 2 checkpoint as a Keras 3 file: what goes where (the plan the Keras 3 writers follow).

The Keras 2 model config is translated by :mod:`ckptfix.keras3` (the model and its
weight map), the training config and the optimizer's variables by
:mod:`ckptfix.keras3_training`; this module puts the two together for one
:class:`~ckptfix.checkpoint.Checkpoint` of the Keras 2 family (a ``.h5`` file, or a SavedModel
read into the same shape) and says, for every dataset of the Keras 3 weights file, which
stored tensor it copies or how its values are derived. The format modules
(:mod:`ckptfix.formats.keras3_archive`, :mod:`ckptfix.formats.keras3_weights`) write the plan;
the verifier checks the written file against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import keras3_training as kt
from .checkpoint import Checkpoint, H5Location, JSONObject, Layer, TensorRef, WriteMode
from .errors import LayoutError
from .formats.base import WrittenTensor
from .storage import Derivation

if TYPE_CHECKING:
    from .keras3 import Keras3Model

#: The Keras 3 release whose format and semantics the translation targets (metadata.json).
KERAS3_VERSION = "3.15.1"
#: metadata.json's date: fixed, so that the same input always gives the same bytes.
DATE_SAVED = "1980-01-01@00:00:00"


@dataclass(frozen=True)
class Keras3Plan:
    """Everything a Keras 3 writer writes for one Keras 2 checkpoint.

    ``tensors`` are the model's datasets in the weight map's order, ``optimizer`` the
    ``optimizer/vars/<i>`` datasets in order (empty when the state is not carried);
    ``groups`` every group Keras 3's own writer creates (with the ``name`` attribute of each
    ``vars`` group in ``names``).
    """

    config: dict[str, Any]  # config.json (compile_config included when compiled)
    metadata: dict[str, Any]  # metadata.json
    groups: tuple[str, ...]
    names: Mapping[str, str]
    tensors: tuple[WrittenTensor, ...]
    optimizer: tuple[WrittenTensor, ...] = ()
    custom_objects: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors + self.optimizer)


def subject_config(ck: Checkpoint) -> JSONObject:
    """The Keras 2 config of the model a conversion writes (the template's, or the file's).

    Raises:
        LayoutError: the file does not record the model's config (weights only) and no
            reference gave one.
    """
    subject = ck.subject
    config = subject.config if ck.template is not None else (subject.config or ck.model_config)
    if not isinstance(config, Mapping) or not isinstance(config.get("config"), (dict, list)):
        raise LayoutError(
            f"expected the model's config to write a Keras 3 file; found none in "
            f"{ck.path.rsplit('/', 1)[-1]} (a weights-only file); pass reference= with a "
            "model.to_json() file or a full-model .h5 of the same model"
        )
    return config


def translate(ck: Checkpoint) -> Keras3Model:
    """The translation of the checkpoint's model (:func:`ckptfix.keras3.translate_model`).

    Raises:
        LayoutError: no config to translate. UnsupportedConversionError: refused.
    """
    from .keras3 import translate_model

    return translate_model(
        subject_config(ck), keras_version=ck.keras_version, backend=ck.backend, source=ck.subject
    )


def plan_keras3(ck: Checkpoint, *, full_model: bool) -> Keras3Plan:
    """The Keras 3 file for ``ck``: a ``.keras`` archive (``full_model``) or a ``.weights.h5``.

    Raises:
        LayoutError: no model config to translate (weights only, no reference).
        UnsupportedConversionError: the model cannot be expressed in Keras 3 faithfully
            (the message names the layers, the reason and the way out).
    """
    model = translate(ck)
    subject = ck.subject
    tensors = tuple(_weight_tensors(subject, model))
    config: dict[str, Any] = dict(model.config)
    notes = list(model.notes)
    warnings: list[str] = []
    optimizer: tuple[WrittenTensor, ...] = ()
    names = dict(model.group_names)
    name = str((config.get("config") or {}).get("name") or subject.name)
    names.setdefault("vars", name)
    if full_model:
        training = kt.translate_training_config(
            ck.training_config, output_names=model.output_names, keras_version=ck.keras_version
        )
        notes += training.notes
        warnings += training.warnings
        config["compile_config"] = training.compile_config or {}
        if training.optimizer is not None and ck.template_optimizer is not None:
            state = kt.plan_optimizer_state(
                ck.template_optimizer, training.optimizer, subject, model
            )
            if state.kept:
                optimizer = tuple(_optimizer_tensor(v) for v in state.variables)
                names["optimizer/vars"] = str(training.optimizer.config.get("name"))
                notes += state.notes
            elif state.fresh:
                notes += state.notes
            else:
                warnings.append(
                    f"optimizer state not carried ({state.refusal}); fit starts "
                    "with a fresh optimizer"
                )
        if ck.optimizer_note:
            warnings.append(ck.optimizer_note)
    elif ck.template_optimizer is not None:
        notes.append("a .weights.h5 holds no optimizer state: convert to .keras to keep it")
    if model.custom_objects:
        warnings.append(
            "custom classes: load with custom_objects={"
            + ", ".join(f"'{c}': {c}" for c in model.custom_objects)
            + "}"
        )
    groups = set(model.groups) | {"vars"}
    if optimizer:
        groups |= {"optimizer", "optimizer/vars"}
    metadata = {
        "keras_version": KERAS3_VERSION,
        "date_saved": DATE_SAVED,
        "converted_from": {
            "format": ck.format,
            "keras_version": ck.keras_version,
            "backend": ck.backend,
            "by": "ckptfix",
        },
    }
    return Keras3Plan(
        config=config,
        metadata=metadata,
        groups=tuple(sorted(groups)),
        names=names,
        tensors=tensors,
        optimizer=optimizer,
        custom_objects=tuple(model.custom_objects),
        notes=tuple(notes),
        warnings=tuple(warnings) + _layout_warnings(ck),
    )


@dataclass(frozen=True)
class Keras3Readiness:
    """Whether a Keras 2 checkpoint converts to Keras 3, and what blocks it or must be known.

    ``blocker`` is the one-line reason ``convert`` would give (None when it converts);
    ``custom_objects`` the classes Keras 3 needs at load; ``optimizer`` says whether the
    optimizer state would be carried; ``output`` the suggested destination.
    """

    converts: bool
    output: str | None
    blocker: str | None = None
    custom_objects: tuple[str, ...] = ()
    optimizer: bool = False
    warnings: tuple[str, ...] = ()


def keras3_readiness(ck: Checkpoint) -> Keras3Readiness:
    """What converting ``ck`` to Keras 3 would do (metadata only; nothing is written)."""
    from .errors import CkptfixError

    output = suggested_keras3_name(ck)
    if ck.layout.status == "unknown" and ck.layout.refusal is not None:
        return Keras3Readiness(False, output, str(ck.layout.refusal))
    if ck.template is None and ck.pattern.kind == "ambiguous" and ck.pattern.refusal is not None:
        return Keras3Readiness(False, output, str(ck.pattern.refusal))
    try:
        plan = plan_keras3(ck, full_model=ck.full_model)
    except CkptfixError as exc:
        return Keras3Readiness(False, output, str(exc))
    return Keras3Readiness(
        True,
        output,
        None,
        plan.custom_objects,
        bool(plan.optimizer),
        plan.warnings,
    )


def suggested_keras3_name(ck: Checkpoint) -> str:
    """``x.h5`` → ``x.keras`` (full model) or ``x.weights.h5`` (weights only), beside it."""
    name = ck.path
    for suffix in (".hdf5", ".h5", ".HDF5", ".H5"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name + (".keras" if ck.full_model else ".weights.h5")


def _layout_warnings(ck: Checkpoint) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if ck.layout.status == "inferred" and ck.layout.note:
        out += (ck.layout.note,)
    if ck.pattern.outer_weighted and ck.template is not None:
        out += (
            "dropped the weights of layers outside the template: "
            + ", ".join(ck.pattern.outer_weighted),
        )
    return out


def _weight_tensors(subject: Layer, model: Keras3Model) -> list[WrittenTensor]:
    """Every dataset of the model: copied from its Keras 2 tensor, or derived by a transform."""
    from .keras3 import TRANSFORMS, source_weights

    out = []
    for move in model.weights:
        weights = source_weights(subject, move)
        refs = tuple(w.tensor for w in weights)
        label = "/".join(move.layer) + ":" + ",".join(w.name for w in weights)
        path = "/" + move.path.lstrip("/")
        if move.transform is None:
            ref = refs[0]
            how: WriteMode = "copied" if isinstance(ref.location, H5Location) else "encoded"
            out.append(WrittenTensor(path, ref, how, label))
        else:
            fn = TRANSFORMS[move.transform]
            derived = Derivation(refs, fn, f"transform {move.transform}", None, None)
            out.append(WrittenTensor(path, refs[0], "encoded", label, derived))
    return out


def _optimizer_tensor(v: kt.StateVariable) -> WrittenTensor:
    path = f"/optimizer/vars/{v.index}"
    label = f"optimizer/vars/{v.index} ({v.name})"
    if v.derived is not None:
        src = v.derived.inputs[0] if v.derived.inputs else None
        return WrittenTensor(path, src, "encoded", label, v.derived)
    assert v.source is not None
    mode: WriteMode = "copied" if isinstance(v.source.location, H5Location) else "encoded"
    return WrittenTensor(path, v.source, mode, label)


def tensor_value(t: WrittenTensor) -> np.ndarray:
    """The values to write for an encoded tensor (a derivation's result, or a bundle tensor)."""
    if t.derived is not None:
        return t.derived.value()
    from .storage import H5Files, read_tensor

    assert t.source is not None
    with H5Files() as files:
        return read_tensor(t.source, files)


def config_json(plan: Keras3Plan) -> str:
    """config.json's text (compact, key order kept: the same input gives the same bytes)."""
    return json.dumps(plan.config)


def metadata_json(plan: Keras3Plan) -> str:
    return json.dumps(plan.metadata)


def source_refs(plan: Keras3Plan) -> list[TensorRef]:
    """Every stored tensor the plan reads."""
    out: list[TensorRef] = []
    for t in plan.tensors + plan.optimizer:
        if t.derived is not None:
            out.extend(t.derived.inputs)
        elif t.source is not None:
            out.append(t.source)
    return out


__all__ = [
    "KERAS3_VERSION",
    "Keras3Plan",
    "Keras3Readiness",
    "keras3_readiness",
    "plan_keras3",
    "subject_config",
    "translate",
]
