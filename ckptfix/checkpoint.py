"""The format-neutral checkpoint: what every reader produces and every writer consumes.

A :class:`Checkpoint` describes a file as a model of layers holding weights, each weight a
*handle* to a stored tensor (where it lies, its dtype, shape and storage options), never its
values. Readers (one per format, :mod:`ckptfix.formats`) build it from metadata; the pattern
around the template (slices, merges, replicas) and the template's layout (which weight belongs
to which layer, and how sure that is) are resolved by the reader with the shared helpers of
:mod:`ckptfix.pattern` and :mod:`ckptfix.layout`. Writers turn the template (or, for a
migration to another format family, the whole model) into a new file and say exactly what they
did in a :class:`~ckptfix.formats.base.Written`, which :mod:`ckptfix.storage` verifies.

N source formats and M target formats meet here: N + M modules, not N x M special cases.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import CkptfixError

#: A JSON object read from a file (a model config, a training config): data, never code.
JSONObject = Mapping[str, Any]

LayoutStatus = Literal["exact", "inferred", "unknown"]
#: Where a layout came from: a live model, a --reference, the file's own config, the object
#: paths of a Keras 3 file or TF checkpoint (exact by structure), or weight names (inferred).
LayoutSource = Literal["model", "reference", "config", "paths", "names"]
PatternKind = Literal["parallel", "wrapped", "single", "container", "ambiguous"]
#: Which Keras wrote the model, i.e. the schema of its configs: ``keras2`` (Keras 2 / tf.keras
#: ``.h5`` files and tf.keras SavedModels), ``keras3``, or ``tf`` for TensorFlow checkpoints,
#: which record an object graph and no Keras config.
Family = Literal["keras2", "keras3", "tf"]
#: How a writer put a tensor in its output (see :class:`~ckptfix.formats.base.WrittenTensor`).
WriteMode = Literal["moved", "copied", "encoded"]


# --- where tensors are stored -----------------------------------------------------------------


@dataclass(frozen=True)
class H5Location:
    """A dataset in an HDF5 file on disk, or in an HDF5 member of a zip (``.keras``)."""

    file: str  # the file on disk (the .h5, or the .keras archive)
    path: str  # absolute dataset path inside the HDF5 file ("/model_weights/model/dense/kernel:0")
    member: str | None = None  # the zip member holding the HDF5 file, None for a plain .h5


@dataclass(frozen=True)
class BundleLocation:
    """A tensor in a TensorFlow bundle data shard (``prefix.data-00000-of-00001``)."""

    file: str  # the data shard on disk
    offset: int
    size: int
    crc32c: int | None = None  # masked crc32c from the index, as TensorFlow stores it
    path: str = ""  # the tensor's key in the index ("layer_with_weights-0/…/VARIABLE_VALUE")


TensorLocation = H5Location | BundleLocation


@dataclass(frozen=True)
class StorageOptions:
    """Everything besides the stored bytes that decides what a stored tensor reads as.

    For HDF5: the layout, chunk shape, filter pipeline and (chunked) fill value; ``kind`` is
    ``"bundle"`` for raw tensor bytes in a TensorFlow data shard.
    """

    kind: str  # "contiguous" | "chunked" | "compact" | "external" | "virtual" | "bundle"
    chunks: tuple[int, ...] | None = None
    filters: tuple[tuple[int, ...], ...] = ()
    fill: bytes | None = None


@dataclass(frozen=True)
class TensorRef:
    """A handle to one stored tensor: where, what dtype and shape, how stored; never values."""

    location: TensorLocation
    dtype: str  # numpy dtype name ("float32", "int64", "bfloat16")
    shape: tuple[int, ...]
    nbytes: int
    storage: StorageOptions

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for s in self.shape:
            n *= s
        return n


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weight:
    """One weight of a layer: its name as the source stores it and the tensor holding it.

    Names are the format's own: ``dense_1/kernel:0`` (Keras 2), ``vars/0`` (Keras 3),
    ``kernel`` (TensorFlow object graph).
    """

    name: str
    tensor: TensorRef
    trainable: bool | None = None


@dataclass(frozen=True)
class Layer:
    """A layer, or a model (a layer with ``layers``), with its weights in load order.

    For a model, ``weights`` is every weight of the model in the order the format stores it
    when the model is loaded as one layer (Keras 2: all trainable weights, then all
    non-trainable ones), and ``layers`` its layers holding weights, in load order, each with
    its own weights; ``layer_names`` lists every layer of the model, weightless ones included.
    ``key`` says where the format keeps the layer (a Keras 2 group, a Keras 3 object path such
    as ``layers/functional/layers/dense``, a TensorFlow object path).
    """

    name: str
    class_name: str | None
    weights: tuple[Weight, ...]
    layers: tuple[Layer, ...] = ()
    layer_names: tuple[str, ...] = ()
    trainable: bool | None = None
    config: JSONObject | None = None  # the layer's config entry (class_name, config, ...)
    key: str | None = None

    @property
    def is_model(self) -> bool:
        """True for a model nested in another (it has layers of its own)."""
        return bool(self.layers)

    def walk(self) -> Iterator[Layer]:
        """This layer's layers, depth first (nested models' layers after the model)."""
        for layer in self.layers:
            yield layer
            yield from layer.walk()

    def leaves(self) -> Iterator[Layer]:
        """The layers that hold weights themselves (nested models flattened)."""
        for layer in self.layers:
            if layer.layers:
                yield from layer.leaves()
            else:
                yield layer


# --- the optimizer --------------------------------------------------------------------------

OptimizerRole = Literal["iterations", "learning_rate", "slot", "other"]


@dataclass(frozen=True)
class OptimizerVariable:
    """One stored optimizer tensor and, for a slot, the model weight it belongs to.

    ``variable`` is the weight's stored tensor location (the same object as that
    :class:`Weight`'s ``tensor.location``) when the reader could tell, else None.
    """

    name: str
    tensor: TensorRef
    role: OptimizerRole
    slot: str | None = None  # "m", "v", "momentum", "velocity_hat", "rms", "accumulator"
    variable: TensorLocation | None = None


@dataclass(frozen=True)
class Optimizer:
    """The optimizer state stored in a file, in stored order."""

    class_name: str | None
    variables: tuple[OptimizerVariable, ...]
    iterations: int | None = None
    config: JSONObject | None = None
    #: Why this state was selected from a larger one, or None when taken whole.
    note: str | None = None

    @property
    def slots(self) -> int:
        """Number of slot tensors (m, v, momentum…), counters and learning rate excluded."""
        return sum(1 for v in self.variables if v.role == "slot")

    @property
    def nbytes(self) -> int:
        """Bytes of every stored optimizer tensor."""
        return sum(v.tensor.nbytes for v in self.variables)


# --- what surrounds the template ----------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """The parallel (``multi_gpu_model``) or wrapped pattern around the template, if any.

    ``kind``: ``parallel`` (slices, one nested template, merges), ``wrapped`` (a model nested
    in another, no slices), ``single`` (no nested model holds weights), ``container`` (a model
    that contains a model beside other weighted layers: single, unless ``--template`` names
    it), ``ambiguous`` (several nested models hold weights and none was chosen).
    ``refusal`` is the error ``convert`` raises when there is no template to lift out.
    """

    kind: PatternKind
    template: str | None
    candidates: tuple[str, ...] = ()
    replicas: int | None = None
    slices: tuple[str, ...] = ()
    merges: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outer_weighted: tuple[str, ...] = ()  # weighted layers outside the template (dropped)
    refusal: CkptfixError | None = field(default=None, compare=False)

    @property
    def parallel(self) -> bool:
        return self.kind == "parallel"

    @property
    def wrapped(self) -> bool:
        """True when a model to lift out is nested in another (parallel or not; or several)."""
        return self.template is not None or self.kind == "ambiguous"


@dataclass(frozen=True)
class Layout:
    """How sure the template's layer layout is, where it came from, and what to do about it.

    ``unknown``: the file shows the order cannot be known (or no source was given with
    ``exact``); ``refusal`` is then the error a conversion raises.
    """

    status: LayoutStatus
    source: LayoutSource | None
    note: str | None = None
    refusal: CkptfixError | None = field(default=None, compare=False)


# --- the checkpoint -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file as one format-neutral model.

    ``model`` is the whole model as stored (for a parallel file: the wrapper, whose layers
    include the nested template); ``template`` the nested model to lift out with its layout
    resolved (None when the file is single, or ambiguous); ``layout`` is the template's
    layout (the model's, when single). ``optimizer`` is all the optimizer state stored;
    ``template_optimizer`` the part that belongs to the template, in the order a single
    template model stores it (None when it cannot be told apart; ``optimizer_note`` says why).
    """

    path: str
    format: str  # "keras2-h5-weights", "keras2-h5-model", "keras3-weights", "keras3-archive", ...
    family: Family
    full_model: bool
    keras_version: str | None
    backend: str | None
    model: Layer
    pattern: Pattern
    layout: Layout
    template: Layer | None = None
    #: the whole model's config, as stored (a weights-only single model: the one reference=
    #: or model= gave)
    model_config: JSONObject | None = None
    training_config: JSONObject | None = None  # Keras 2 training_config / Keras 3 compile_config
    optimizer: Optimizer | None = None
    template_optimizer: Optimizer | None = None
    optimizer_note: str | None = None
    metadata: JSONObject | None = None  # Keras 3 metadata.json, kept as written
    notes: tuple[str, ...] = ()

    @property
    def subject(self) -> Layer:
        """What a conversion writes: the template when there is one, else the whole model."""
        return self.template if self.template is not None else self.model


def weights_in_order(layer: Layer) -> tuple[Weight, ...]:
    """A model's weights in flat single-model load order: each layer's weights, in turn.

    A nested model counts as one layer (its ``weights``: all trainable, then non-trainable),
    which is how a Keras 2 file stores it and how positional loading reads it.
    """
    if not layer.layers:
        return layer.weights
    return tuple(w for sub in layer.layers for w in sub.weights)


def tensor_count(layer: Layer) -> tuple[int, int, int]:
    """(tensors, parameters, bytes) of a layer's weights."""
    ws = layer.weights if not layer.layers else weights_in_order(layer)
    return len(ws), sum(w.tensor.size for w in ws), sum(w.tensor.nbytes for w in ws)
