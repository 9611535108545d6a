"""Each built-in layer's weights, as Keras 2 stores them and as Keras 3 saves them.

:func:`plan_layer` returns the :class:`~ckptfix.keras3.weights.Saveable` of one translated
layer: its own ``vars`` (which Keras 2 weight each is, with a transform where the layout
changed) and its sub-saveables (an RNN's ``cell``, Bidirectional's ``forward_layer`` /
``backward_layer``, TimeDistributed's ``layer``, MultiHeadAttention's dense layers, an
activation object). Keras 2 lists a layer's weights trainable first, then non-trainable,
each group in creation order; Keras 3 saves ``_trainable_variables + _non_trainable_variables``
in creation order: for every built-in layer below the two orders are the same.
"""

from __future__ import annotations

import copy
from typing import Any

from .types import Context, rule
from .weights import Saveable, Var, snake_case

#: Keras 3 cell class per recurrent layer (the ``cell`` sub-saveable) and its default name
CELLS = {
    "SimpleRNN": "simple_rnn_cell",
    "LSTM": "lstm_cell",
    "GRU": "gru_cell",
    "ConvLSTM1D": "conv_lstm_cell",
    "ConvLSTM2D": "conv_lstm_cell",
    "ConvLSTM3D": "conv_lstm_cell",
}
#: Keras 2 conv classes whose kernels Keras 2 flipped when a Theano file met TensorFlow
THEANO_FLIPPED = frozenset({"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D"})


def _vars(cfg: dict[str, Any], k3cls: str) -> list[tuple[str, bool]]:
    """(variable name, trainable) of a built-in Keras 3 layer's own variables, in save order."""
    bias = bool(cfg.get("use_bias", True))
    if k3cls in ("Dense", "EinsumDense") or k3cls.startswith("Conv") and "LSTM" not in k3cls:
        return [("kernel", True)] + ([("bias", True)] if bias else [])
    if k3cls.startswith("DepthwiseConv"):
        return [("depthwise_kernel", True)] + ([("bias", True)] if bias else [])
    if k3cls.startswith("SeparableConv"):
        return [("depthwise_kernel", True), ("pointwise_kernel", True)] + (
            [("bias", True)] if bias else []
        )
    if k3cls == "BatchNormalization":
        out = []
        if cfg.get("scale", True):
            out.append(("gamma", True))
        if cfg.get("center", True):
            out.append(("beta", True))
        return out + [("moving_mean", False), ("moving_variance", False)]
    if k3cls in ("LayerNormalization", "GroupNormalization"):
        out = []
        if cfg.get("scale", True):
            out.append(("gamma", True))
        if cfg.get("center", True):
            out.append(("beta", True))
        return out
    if k3cls == "Embedding":
        return [("embeddings", True)]
    if k3cls == "PReLU":
        return [("alpha", True)]
    if k3cls == "Attention":
        out = [("scale", True)] if cfg.get("use_scale") else []
        if cfg.get("score_mode") == "concat":
            out.append(("concat_score_weight", True))
        return out
    if k3cls == "AdditiveAttention":
        return [("scale", True)] if cfg.get("use_scale", True) else []
    if k3cls == "Normalization":
        if cfg.get("mean") is None:
            return [("mean", False), ("variance", False), ("count", False)]
        return []
    if k3cls in CELLS:
        return [("kernel", True), ("recurrent_kernel", True)] + ([("bias", True)] if bias else [])
    return []


def _activation_children(cfg: dict[str, Any]) -> list[tuple[str, Saveable]]:
    """Sub-saveables of activation objects (Keras 2's hard_sigmoid, a layer as activation)."""
    out = []
    for key in ("activation", "recurrent_activation"):
        obj = cfg.get(key)
        if not isinstance(obj, dict):
            continue
        inner = obj.get("config") or {}
        node = Saveable(str(inner.get("name", key)))
        if obj.get("class_name") == "Sequential":
            layers = [x for x in inner.get("layers", []) if x.get("class_name") != "InputLayer"]
            segs = _segments([str(x["class_name"]) for x in layers])
            node.children = [
                (f"layers/{seg}", Saveable(str((x.get("config") or {}).get("name", seg))))
                for seg, x in zip(segs, layers, strict=True)
            ]
        out.append((key, node))
    return out


def _segments(classes: list[str]) -> list[str]:
    from .weights import list_segments

    return list_segments(classes)


@rule(
    "theano-kernels-flipped",
    change="Theano convolves (flips kernels) while TensorFlow and every Keras 3 backend "
    "correlate; Keras 2.0-2.2 flipped Conv1D/2D/3D/Conv2DTranspose/ConvLSTM2D kernels when a "
    "Theano file was loaded on TensorFlow, tf.keras never did",
    since="tf.keras 2.0 (dropped the conversion)",
    action="the kernels of those layers in a file whose backend is theano are flipped along "
    "their spatial axes (an exact reordering); depthwise/separable kernels are refused",
    test="tests/test_keras3_translate.py::test_theano_conv_kernels_are_flipped",
)
def _theano_transform(k2cls: str, var: str, ctx: Context, where: str) -> str | None:
    if ctx.backend != "theano":
        return None
    if k2cls in THEANO_FLIPPED and var in ("kernel", "recurrent_kernel"):
        if var == "recurrent_kernel" and k2cls != "ConvLSTM2D":
            return None
        ctx.use(
            "theano-kernels-flipped", f"{where}: Theano {var} flipped for Keras 3's correlation"
        )
        return "theano_flip_kernel"
    if k2cls.startswith(("SeparableConv", "DepthwiseConv")):
        ctx.refuse(
            where,
            "a Theano-trained depthwise/separable convolution (Keras 2 never defined how its "
            "kernels convert to TensorFlow's convention)",
            "load the file with Keras 2 on Theano and re-save it with TensorFlow",
        )
    return None


def _cudnn_transform(k2cls: str, var: str) -> str | None:
    if k2cls == "CuDNNLSTM":
        return f"cudnn_lstm_{var}"
    if k2cls == "CuDNNGRU":
        return f"cudnn_gru_{var}"
    return None


def _own(
    k3cls: str,
    k2cls: str,
    cfg: dict[str, Any],
    ctx: Context,
    path: tuple[str, ...],
    where: str,
    offset: int = 0,
) -> list[Var]:
    out = []
    for i, (var, trainable) in enumerate(_vars(cfg, k3cls)):
        transform = _cudnn_transform(k2cls, var) or _theano_transform(k2cls, var, ctx, where)
        out.append(Var(path, (offset + i,), transform, trainable))
    return out


def plan_layer(
    k3cls: str,
    k2cls: str,
    cfg: dict[str, Any],
    ctx: Context,
    path: tuple[str, ...],
    where: str,
    count: int | None,
    wrapped: dict[str, Any],
) -> Saveable:
    """The Saveable of a translated built-in layer (``wrapped``: Bidirectional/TimeDistributed's
    translated inner layers)."""
    name = str(cfg.get("name", path[-1] if path else k3cls))
    trainable = bool(cfg.get("trainable", True))
    if k3cls in CELLS:
        cell = Saveable(CELLS[k3cls], _own(k3cls, k2cls, cfg, ctx, path, where))
        cell.children = _activation_children(cfg)
        node = Saveable(name, [], [("cell", cell)], trainable)
    elif k3cls == "MultiHeadAttention":
        node = _mha(cfg, path, name, trainable)
    elif k3cls == "Bidirectional":
        node = _bidirectional(cfg, wrapped, name, trainable)
    elif k3cls == "TimeDistributed":
        inner = wrapped["layer"].saveable if "layer" in wrapped else Saveable("layer")
        node = Saveable(name, [], [("layer", inner)], trainable)
    else:
        node = Saveable(name, _own(k3cls, k2cls, cfg, ctx, path, where), [], trainable)
        node.children = _activation_children(cfg)
    _check_count(node, count, ctx, where)
    return node


def _mha(cfg: dict[str, Any], path: tuple[str, ...], name: str, trainable: bool) -> Saveable:
    per = 2 if cfg.get("use_bias", True) else 1
    children: list[tuple[str, Saveable]] = [
        ("_dropout_layer", Saveable("dropout")),
        ("_softmax", Saveable("softmax")),
    ]
    for i, (seg, sub) in enumerate(
        (
            ("query_dense", "query"),
            ("key_dense", "key"),
            ("value_dense", "value"),
            ("output_dense", "attention_output"),
        )
    ):
        children.append((seg, Saveable(sub, [Var(path, (i * per + j,)) for j in range(per)])))
    return Saveable(name, [], children, trainable)


def _shift(node: Saveable, offset: int) -> Saveable:
    out = copy.deepcopy(node)

    def walk(n: Saveable) -> None:
        for v in n.vars:
            v.sources = tuple(s + offset for s in v.sources)
        for _, c in n.children:
            walk(c)

    walk(out)
    return out


def _count(node: Saveable) -> int:
    return len(node.vars) + sum(_count(c) for _, c in node.children)


def _bidirectional(
    cfg: dict[str, Any], wrapped: dict[str, Any], name: str, trainable: bool
) -> Saveable:
    fwd = wrapped["layer"].saveable if "layer" in wrapped else Saveable("forward")
    inner = str(fwd.name)
    fwd = copy.deepcopy(fwd)
    fwd.name = f"forward_{inner}"
    if "backward_layer" in wrapped:
        bwd = _shift(wrapped["backward_layer"].saveable, _count(fwd))
    else:
        bwd = _shift(fwd, _count(fwd))
    bwd.name = f"backward_{inner}"
    return Saveable(name, [], [("forward_layer", fwd), ("backward_layer", bwd)], trainable)


def _check_count(node: Saveable, count: int | None, ctx: Context, where: str) -> None:
    if count is None:
        return
    want = _count(node)
    if want != count:
        ctx.refuse(
            where,
            f"its config gives it {want} weights but the file stores {count} for it",
            "check that the file's model_config describes its weights (re-save it with Keras 2)",
        )


def layer_group(cls: str) -> str:
    """The snake-case base name Keras 3 gives a layer of class ``cls`` in a model's list."""
    return snake_case(cls)
