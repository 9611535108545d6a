"""The library's results (frozen dataclasses), the one report, and the one JSON policy.

:func:`build_report` describes any :class:`~ckptfix.checkpoint.Checkpoint` the same way,
whatever its format: same meanings, same runnable, quoted fix command. :func:`inspect_checkpoint`
is read + report. :func:`to_json` turns every result (inspect, convert, verify, batch) into the
JSON that ``--json`` prints and the README documents.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .checkpoint import Checkpoint, Layer, LayoutSource, Weight
from .deadline import DEFAULT_TIMEOUT
from .errors import OutputError

if TYPE_CHECKING:
    from .formats.base import LiveModel

Layout = Literal["exact", "inferred"]

#: The placeholder for the template's ``model.to_json()`` file in a suggested command.
TEMPLATE_JSON = "TEMPLATE.json"

#: The version of the ``inspect --json`` object's layout; later additions only add keys.
JSON_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TensorEntry:
    """One stored tensor: its weight name, shape, dtype and size in bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class LayerEntry:
    """One layer of the (template) model, in load order, with its weights in load order.

    ``children`` holds the layers of a nested model (its ``weights`` are then all of its
    weights, in the order the file stores them).
    """

    name: str
    class_name: str | None
    weights: tuple[TensorEntry, ...]
    children: tuple[LayerEntry, ...] = ()
    trainable: bool | None = None


@dataclass(frozen=True)
class OptimizerState:
    """What the file stores of the optimizer."""

    present: bool
    class_name: str | None = None
    iterations: int | None = None
    slots: int = 0  # number of slot tensors (m, v, momentum...), iteration counters excluded
    tensors: int = 0  # every stored optimizer tensor
    bytes: int = 0


@dataclass(frozen=True)
class Keras3Target:
    """Whether a Keras 2 checkpoint converts to a Keras 3 file, and what blocks it."""

    converts: bool
    command: str | None  # the convert command to a .keras / .weights.h5 (when it converts)
    blocker: str | None = None  # the one-line reason convert gives (when it does not)
    custom_objects: tuple[str, ...] = ()  # classes to pass to keras.saving.load_model
    optimizer: bool = False  # the optimizer state would be carried
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckpointReport:
    """What a checkpoint is: the answer of :func:`ckptfix.inspect_checkpoint`."""

    path: str
    format: str  # "keras2-h5-weights" | "keras2-h5-model" | "keras3-weights" | "keras3-archive"
    keras_version: str | None
    backend: str | None
    parallel: bool  # the multi_gpu_model pattern (slices + one nested template + merges)
    wrapped: bool  # a model nested in another (parallel or not): convert lifts it out
    template: str | None
    replicas: int | None
    slices: tuple[str, ...]
    merges: tuple[str, ...]
    candidates: tuple[str, ...]  # nested models holding weights (several: --template chooses)
    layers: tuple[LayerEntry, ...]
    tensors: int
    parameters: int
    bytes: int
    dtypes: dict[str, int]  # dtype -> number of tensors
    optimizer: OptimizerState
    layout: Layout | None
    layout_source: LayoutSource | None
    layout_note: str | None  # why inferred / why it would be refused, and how to make it exact
    convert_command: str | None  # None when already single
    notes: tuple[str, ...] = ()
    keras3: Keras3Target | None = None  # Keras 2 files: the Keras 3 migration


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`ckptfix.convert_checkpoint` wrote and checked."""

    source: str
    destination: str
    format: str  # the source's format id
    template: str
    replicas: int | None
    layers: int  # layers of the template that hold weights
    tensors: int
    bytes: int
    layout: Layout
    layout_source: LayoutSource
    verified: bool
    optimizer_kept: bool
    full_model: bool
    seconds: float
    warnings: tuple[str, ...] = ()
    output_format: str | None = None  # the written file's format id


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of comparing a converted file with its source, tensor by tensor.

    ``tensors`` and ``bytes`` count the model's weights; ``optimizer_tensors`` the optimizer
    tensors compared besides them.
    """

    source: str
    destination: str
    tensors: int
    bytes: int
    ok: bool
    mismatches: tuple[str, ...] = field(default_factory=tuple)
    optimizer_tensors: int = 0


# --- the one report -------------------------------------------------------------------------


def inspect_checkpoint(
    path: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: LiveModel | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> CheckpointReport:
    """Describe a checkpoint: format, parallel pattern, template, layers, sizes, optimizer.

    Only metadata is read (names, shapes, dtypes, attributes; the optimizer's iteration
    counter is the one scalar read), so a file of any size is described in well under a
    second, and TensorFlow is never imported.

    Args:
        path: a Keras 2 ``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` or ``.keras`` file.
        template: the nested model to describe when there are several.
        reference: a layout reference, as for :func:`ckptfix.convert_checkpoint` (a
            ``model.to_json()`` file or a ``.h5`` saved from the template); it makes the
            reported layout of a Keras 2 weights-only file exact.
        model: a live Keras model built like the template (or its
            :class:`~ckptfix.layout.ModelShapes`), as for ``convert_checkpoint``.
        timeout: seconds the file may be read without progress before it is refused as
            damaged (:class:`~ckptfix.errors.DeadlineExceededError`, exit 5). It is read in
            a worker process killed at the deadline (see :mod:`ckptfix.deadline`): HDF5 can
            loop forever on a crafted file. None or 0 reads it in this process, without one.

    Returns:
        A :class:`CheckpointReport` (``report.parallel``, ``report.template``,
        ``report.replicas``, ``report.layers``, ``report.layout``, ``report.convert_command``…).

    Raises:
        NotACheckpointError: not HDF5 or zip, or HDF5 not written by Keras.
        UnsupportedFormatError: a format ckptfix recognises but does not read.
        CorruptCheckpointError: Keras structure that is truncated or inconsistent.
        DeadlineExceededError: reading made no progress for ``timeout`` seconds.
        TemplateNotFoundError: ``template`` names no nested model of the file.
        OptionNotSupportedError: ``reference`` for a format that records its layout itself.

    Example:
        >>> report = ckptfix.inspect_checkpoint("parallel.h5")  # doctest: +SKIP
        >>> report.parallel, report.template, report.replicas  # doctest: +SKIP
        (True, 'model_1', 2)
    """
    from .deadline import resolve_timeout, run_isolated
    from .layout import as_shapes

    return run_isolated(
        _inspect,
        (path,),
        {"template": template, "reference": reference, "model": as_shapes(model)},
        timeout=resolve_timeout(timeout),
        subject=path,
    )


def _inspect(
    path: str | Path,
    *,
    template: str | None,
    reference: str | Path | None,
    model: LiveModel | None,
) -> CheckpointReport:
    from .convert import read_checkpoint

    ck = read_checkpoint(path, template=template, reference=reference, model=model, timeout=None)
    return build_report(ck, template=template, reference=reference)


def keras3_target(
    ck: Checkpoint, template: str | None = None, reference: str | Path | None = None
) -> Keras3Target:
    """Whether ``ck`` (Keras 2) converts to Keras 3: the command, or what blocks it."""
    from .keras3_migration import keras3_readiness

    r = keras3_readiness(ck)
    command = (
        convert_command(ck, template=template, reference=reference, destination=r.output)
        if r.converts
        else None
    )
    return Keras3Target(
        r.converts, command, r.blocker, r.custom_objects, r.optimizer, r.warnings
    )


def build_report(
    ck: Checkpoint, *, template: str | None = None, reference: str | Path | None = None
) -> CheckpointReport:
    """The report of any checkpoint (``template``/``reference``: as the user gave them)."""
    subject = ck.template if ck.template is not None else ck.model
    weights = all_weights(subject)
    dtypes: dict[str, int] = {}
    for w in weights:
        dtypes[w.tensor.dtype] = dtypes.get(w.tensor.dtype, 0) + 1
    pattern = ck.pattern
    notes = list(_pattern_notes(ck, reference))
    if ck.layout.status == "unknown" and ck.template is not None:
        notes.append(
            "the template's layers below are grouped by weight name, in stored order; "
            "their load order is unknown"
        )
    if ck.optimizer_note:
        notes.append(ck.optimizer_note)
    notes.extend(ck.notes)
    opt = ck.optimizer
    return CheckpointReport(
        path=ck.path,
        format=ck.format,
        keras_version=ck.keras_version,
        backend=ck.backend,
        parallel=pattern.parallel,
        wrapped=pattern.wrapped,
        template=pattern.template,
        replicas=pattern.replicas,
        slices=pattern.slices if pattern.wrapped else (),
        merges=pattern.merges if pattern.wrapped else (),
        candidates=pattern.candidates,
        layers=tuple(_entry(layer) for layer in subject.layers if all_weights(layer)),
        tensors=len(weights),
        parameters=sum(w.tensor.size for w in weights),
        bytes=sum(w.tensor.nbytes for w in weights),
        dtypes=dtypes,
        optimizer=OptimizerState(
            present=opt is not None,
            class_name=opt.class_name if opt else None,
            iterations=opt.iterations if opt else None,
            slots=opt.slots if opt else 0,
            tensors=len(opt.variables) if opt else 0,
            bytes=opt.nbytes if opt else 0,
        ),
        layout=None if ck.layout.status == "unknown" else ck.layout.status,
        layout_source=ck.layout.source if ck.layout.status != "unknown" else None,
        layout_note=ck.layout.note,
        convert_command=fix_command(ck, template=template, reference=reference),
        notes=tuple(notes),
        keras3=keras3_target(ck, template, reference) if ck.family == "keras2" else None,
    )


def all_weights(layer: Layer) -> tuple[Weight, ...]:
    """Every weight of a layer or model (a model's own and its layers'), once each."""
    if layer.weights or not layer.layers:
        return layer.weights
    return tuple(w for sub in layer.layers for w in all_weights(sub))


def _entry(layer: Layer) -> LayerEntry:
    return LayerEntry(
        name=layer.name,
        class_name=layer.class_name,
        weights=tuple(
            TensorEntry(w.name, w.tensor.shape, w.tensor.dtype, w.tensor.nbytes)
            for w in all_weights(layer)
        ),
        children=tuple(_entry(c) for c in layer.layers if all_weights(c)),
        trainable=layer.trainable,
    )


def _pattern_notes(ck: Checkpoint, reference: str | Path | None) -> list[str]:
    p = ck.pattern
    if p.kind == "ambiguous":
        return [
            f"{len(p.candidates)} nested models hold weights ({', '.join(p.candidates)}): "
            "choose the template with template=NAME"
        ]
    if p.kind == "container":
        inner = p.candidates[0]
        return [
            f"an ordinary model that contains the model {inner!r} beside other layers with "
            f"weights ({_short_list(p.outer_weighted)}): load it directly; to extract "
            f"{inner!r} alone run: " + convert_command(ck, template=inner, reference=reference)
        ]
    return []


def _short_list(names: Sequence[str], limit: int = 5) -> str:
    more = f", … {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def suggested_output(ck: Checkpoint) -> Path:
    """The default output path of a conversion: ``X.single.<suffix>`` beside the source."""
    from .formats import by_id

    return by_id(ck.format).suggest(Path(ck.path))


def output_path(ck: Checkpoint, dst: str | Path | None) -> Path:
    """Where a conversion of ``ck`` writes, for the ``dst`` a caller gave.

    ``None``: the one default name, :func:`suggested_output` (``X.single.h5`` beside the
    source, as ``inspect``'s fix command and the destination-name errors propose); an existing
    folder: the source's own name inside it, as ``cp`` does (and as a batch keeps names).

    Raises:
        OutputError: ``dst`` ends with a path separator but names no existing folder.
    """
    if dst is None:
        return suggested_output(ck)
    d = Path(dst)
    if d.is_dir():
        return d / Path(ck.path).name
    if str(dst).endswith(("/", os.sep)):
        raise OutputError(
            f"expected an existing output folder; found no folder {dst}; create it first"
        )
    return d


def convert_command(
    ck: Checkpoint,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    destination: str | Path | None = None,
) -> str:
    """The ``ckptfix convert`` command line for ``ck``, quoted for a POSIX shell."""
    dst = destination if destination is not None else suggested_output(ck)
    parts = ["ckptfix", "convert", ck.path, str(dst)]
    if template:
        parts += ["--template", template]
    if reference is not None:
        parts += ["--reference", str(reference)]
    return " ".join(shlex.quote(p) for p in parts)


def fix_command(
    ck: Checkpoint, *, template: str | None = None, reference: str | Path | None = None
) -> str | None:
    """The command that fixes ``ck`` (None when it is already a single model)."""
    p = ck.pattern
    if p.kind == "ambiguous":
        return convert_command(ck, template=p.candidates[0], reference=reference)
    if p.template is None:
        return None
    if ck.layout.status == "unknown" and reference is None and _takes_reference(ck):
        reference = TEMPLATE_JSON  # the one thing that makes this layout known
    return convert_command(ck, template=template, reference=reference)


def _takes_reference(ck: Checkpoint) -> bool:
    from .formats import by_id

    return "reference" in by_id(ck.format).read_options


# --- the one JSON policy ----------------------------------------------------------------------


def to_json(obj: object) -> Any:
    """The documented JSON form of any result (``--json`` of every command, batch reports).

    A :class:`CheckpointReport` gets its documented layout (``schema`` first, layers with
    ``layers`` for nested ones); every other result dataclass its fields, in order; a
    ``BatchReport`` its ``ok`` and ``totals`` (see :mod:`ckptfix.batch`).
    """
    if isinstance(obj, CheckpointReport):
        return _report_json(obj)
    to_dict = getattr(obj, "to_json", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    return obj


#: Kept for callers of the first release: the same as :func:`to_json`.
to_jsonable = to_json


def _report_json(r: CheckpointReport) -> dict[str, Any]:
    """The documented ``inspect --json`` object (schema in the README, tested key by key)."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "path": r.path,
        "format": r.format,
        "keras_version": r.keras_version,
        "backend": r.backend,
        "parallel": r.parallel,
        "wrapped": r.wrapped,
        "template": r.template,
        "replicas": r.replicas,
        "slices": list(r.slices),
        "merges": list(r.merges),
        "candidates": list(r.candidates),
        "layout": r.layout,
        "layout_source": r.layout_source,
        "layout_note": r.layout_note,
        "layers": [_layer_json(layer) for layer in r.layers],
        "tensors": r.tensors,
        "parameters": r.parameters,
        "bytes": r.bytes,
        "dtypes": dict(r.dtypes),
        "optimizer": {
            "present": r.optimizer.present,
            "class_name": r.optimizer.class_name,
            "iterations": r.optimizer.iterations,
            "slots": r.optimizer.slots,
            "tensors": r.optimizer.tensors,
            "bytes": r.optimizer.bytes,
        },
        "convert_command": r.convert_command,
        "notes": list(r.notes),
        "keras3": None
        if r.keras3 is None
        else {
            "converts": r.keras3.converts,
            "command": r.keras3.command,
            "blocker": r.keras3.blocker,
            "custom_objects": list(r.keras3.custom_objects),
            "optimizer": r.keras3.optimizer,
            "warnings": list(r.keras3.warnings),
        },
    }


def _layer_json(layer: LayerEntry) -> dict[str, Any]:
    return {
        "name": layer.name,
        "class_name": layer.class_name,
        "trainable": layer.trainable,
        "weights": [
            {"name": w.name, "shape": list(w.shape), "dtype": w.dtype, "bytes": w.nbytes}
            for w in layer.weights
        ],
        "layers": [_layer_json(c) for c in layer.children],
    }
