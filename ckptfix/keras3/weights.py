"""Where each Keras 2 weight goes in Keras 3's ``model.weights.h5``, and the value transforms.

Keras 3 saves a model by object path (``saving_lib._save_state``): every saveable object
gets a group named after the attribute or list it hangs from (``layers/<snake_case class>[_k]``
for a model's layers, ``cell`` for an RNN's cell, ``forward_layer``, ``query_dense`` ...), and
in it a ``vars`` group holding its own variables as ``0``, ``1``, ... (``_trainable_variables
+ _non_trainable_variables``, in creation order). A :class:`Saveable` tree mirrors that for
one translated model; :func:`flatten` turns it into the groups, datasets and trainable order.

Transforms (:data:`TRANSFORMS`) are numpy only. All of them reorder or reshape bytes exactly,
except ``cudnn_lstm_bias``, which adds cuDNN's two bias halves (one float addition per value,
as Keras 2 itself did when loading a CuDNNLSTM file into an LSTM: cuDNN adds them too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .types import WeightMove

# --- the tree -------------------------------------------------------------------------------


@dataclass
class Var:
    """One Keras 3 variable of a saveable and the Keras 2 weight(s) it is made from."""

    owner: tuple[str, ...]  # Keras 2 layer path of the layer owning the source weights
    sources: tuple[int, ...]
    transform: str | None = None
    trainable: bool = True  # the variable's own trainability (ancestors are applied later)
    guessed: bool = False  # trainability unknown from the config (custom layers)


@dataclass
class Saveable:
    """A Keras 3 saveable (a layer, a cell, a model) in save order."""

    name: str  # the ``name`` attribute Keras 3 writes on the ``vars`` group
    vars: list[Var] = field(default_factory=list)
    #: (path segment, child) in the order Keras 3 tracks sublayers (its weights order)
    children: list[tuple[str, Saveable]] = field(default_factory=list)
    trainable: bool = True


def snake_case(name: str) -> str:
    """Keras 3's ``naming.to_snake_case`` (the group name of a layer in a model's list)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def list_segments(classes: Sequence[str]) -> list[str]:
    """Group names Keras 3 gives the items of a saved list (``dense``, ``dense_1`` ...)."""
    used: dict[str, int] = {}
    out = []
    for cls in classes:
        base = snake_case(cls)
        if base in used:
            used[base] += 1
            out.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            out.append(base)
    return out


@dataclass(frozen=True)
class Flat:
    """A flattened saveable tree: what the writer needs."""

    groups: tuple[str, ...]
    moves: tuple[WeightMove, ...]
    trainable_order: tuple[str, ...]
    group_names: dict[str, str]
    guessed: tuple[str, ...]


def flatten(root: Saveable) -> Flat:
    """Groups (sorted), dataset moves (save order), and the trainable variables' order."""
    groups: set[str] = set()
    moves: list[WeightMove] = []
    order: list[str] = []
    names: dict[str, str] = {}
    guessed: list[str] = []

    def walk(node: Saveable, prefix: str, trainable: bool) -> None:
        vars_group = f"{prefix}/vars" if prefix else "vars"
        parts = vars_group.split("/")
        for i in range(1, len(parts) + 1):
            groups.add("/".join(parts[:i]))
        names[vars_group] = node.name
        live = trainable and node.trainable
        for i, v in enumerate(node.vars):
            path = f"{vars_group}/{i}"
            t = live and v.trainable
            moves.append(WeightMove(path, v.owner, v.sources, v.transform, t))
            if t:
                order.append(path)
            if v.guessed:
                guessed.append(path)
        for seg, child in node.children:
            walk(child, f"{prefix}/{seg}" if prefix else seg, live)

    walk(root, "", True)
    return Flat(tuple(sorted(groups)), tuple(moves), tuple(order), names, tuple(guessed))


# --- transforms -----------------------------------------------------------------------------


def _per_gate(kernel: np.ndarray, gates: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.hstack([fn(k) for k in np.hsplit(kernel, gates)])


def _cudnn_kernel(gates: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    # Keras 2 (hdf5_format._convert_rnn_weights): each gate's input kernel is transposed and
    # re-read in Fortran order: a reordering of the stored values, exact.
    def fn(src: Sequence[np.ndarray]) -> np.ndarray:
        out = _per_gate(np.asarray(src[0]), gates, lambda k: k.T.reshape(k.shape, order="F"))
        return np.ascontiguousarray(out)

    return fn


def _cudnn_recurrent(gates: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    def fn(src: Sequence[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(_per_gate(np.asarray(src[0]), gates, lambda k: k.T))

    return fn


def _cudnn_lstm_bias(src: Sequence[np.ndarray]) -> np.ndarray:
    # cuDNN keeps separate input and recurrent biases (8 * units); Keras's LSTM adds them.
    b = np.asarray(src[0])
    half = b.shape[0] // 2
    return np.ascontiguousarray(b[:half] + b[half:])


def _cudnn_gru_bias(src: Sequence[np.ndarray]) -> np.ndarray:
    # GRU(reset_after=True) keeps the two halves as rows of a (2, 3 * units) array: exact.
    b = np.asarray(src[0])
    return np.ascontiguousarray(b.reshape(2, -1))


def _flip_spatial(src: Sequence[np.ndarray]) -> np.ndarray:
    # Theano convolves (flips the kernel), TensorFlow and Keras 3 correlate: Keras 2's
    # conv_utils.convert_kernel reverses every spatial axis (all axes but the last two).
    k = np.asarray(src[0])
    slices = tuple(slice(None, None, -1) for _ in range(k.ndim - 2)) + (slice(None), slice(None))
    return np.ascontiguousarray(k[slices])


#: name -> function computing a Keras 3 dataset from its Keras 2 source arrays (numpy only)
TRANSFORMS: Mapping[str, Callable[[Sequence[np.ndarray]], np.ndarray]] = {
    "cudnn_lstm_kernel": _cudnn_kernel(4),
    "cudnn_lstm_recurrent_kernel": _cudnn_recurrent(4),
    "cudnn_lstm_bias": _cudnn_lstm_bias,
    "cudnn_gru_kernel": _cudnn_kernel(3),
    "cudnn_gru_recurrent_kernel": _cudnn_recurrent(3),
    "cudnn_gru_bias": _cudnn_gru_bias,
    "theano_flip_kernel": _flip_spatial,
}

#: transforms that compute new values rather than reorder stored ones
INEXACT_TRANSFORMS = frozenset({"cudnn_lstm_bias"})


def apply_transform(move: WeightMove, sources: Sequence[np.ndarray]) -> np.ndarray:
    """The Keras 3 value of ``move`` from its Keras 2 source arrays (in ``move.sources`` order)."""
    if move.transform is None:
        (value,) = sources
        return np.asarray(value)
    return TRANSFORMS[move.transform](sources)
