"""Format-neutral result types returned by the library (frozen dataclasses).

The CLI renders these with rich; ``--json`` serialises them with :func:`to_jsonable`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Layout = Literal["exact", "inferred"]
#: Where a layout came from: a live model, a --reference, the file's own config, the Keras 3
#: object paths (``layers/<name>/vars``, exact by structure), or weight names (inferred).
LayoutSource = Literal["model", "reference", "config", "paths", "names"]


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


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`ckptfix.convert_checkpoint` wrote and checked."""

    source: str
    destination: str
    format: str
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


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of comparing a converted file with its source, tensor by tensor."""

    source: str
    destination: str
    tensors: int
    bytes: int
    ok: bool
    mismatches: tuple[str, ...] = field(default_factory=tuple)


def to_jsonable(obj: Any) -> Any:
    """Turn a result dataclass (or nested containers of them) into JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    return obj
