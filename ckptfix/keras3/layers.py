"""Keras 2 layer configs -> Keras 3 layer configs, one rule per change, and each layer's
weights as Keras 3 saves them.

:func:`translate_layer` turns one Keras 2 layer entry (``{"class_name", "config"}``) into the
Keras 3 serialized object and a :class:`~ckptfix.keras3.weights.Saveable` saying where its
Keras 2 weights go. Models nested as layers are handed to :mod:`ckptfix.keras3.graph`.

Every rule is a function registered with :func:`~ckptfix.keras3.types.rule` and named after
the Keras 2 -> 3 change it covers. After the rules, any keyword Keras 3's constructor does
not accept (:data:`ckptfix.keras3.signatures.LAYER_ARGS`) is refused by name: nothing is
dropped silently.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .objects import (
    activation,
    constraint,
    dtype_policy,
    initializer,
    is_keras2_hard_sigmoid,
    regularizer,
)
from .signatures import LAYER_ARGS
from .types import Context, rule
from .weights import Saveable, Var

MODEL_CLASSES = frozenset({"Model", "Functional", "Sequential"})
RNN_CLASSES = frozenset({"SimpleRNN", "LSTM", "GRU", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})
CONV_CLASSES = frozenset(
    {"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
)
#: arguments handled by the model (they make or describe Input layers), not by the layer
INPUT_ARGS = ("batch_input_shape", "batch_size", "input_shape", "input_dtype")


@dataclass
class Translated:
    """One translated layer: its Keras 3 object and where its weights go."""

    object: dict[str, Any]  # {"module", "class_name", "config", "registered_name"[, ...]}
    saveable: Saveable
    input_spec: dict[str, Any]  # the Keras 2 input arguments it carried (INPUT_ARGS)
    class_name: str  # the Keras 3 class name (its snake case names its group in a model)


# --- rules on every layer -------------------------------------------------------------------


@rule(
    "dynamic-removed",
    change="Layer no longer takes dynamic= (tf.keras's eager-only layers)",
    since="Keras 3.0",
    action="dropped (Keras 3 runs every layer in its backend's own mode)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def drop_dynamic(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if cfg.pop("dynamic", None):
        ctx.use(
            "dynamic-removed", f"{where}: dynamic=True dropped (Keras 3 has no eager-only layers)"
        )
    else:
        ctx.use("dynamic-removed")


@rule(
    "random-generator-args-removed",
    change="dropout and noise layers no longer take tf_keras's force_generator/rng_type",
    since="Keras 3.0",
    action="dropped (they chose TensorFlow's random generator, not what the layer computes)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def drop_rng_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if "force_generator" in cfg or "rng_type" in cfg:
        cfg.pop("force_generator", None)
        cfg.pop("rng_type", None)
        ctx.use("random-generator-args-removed")


# --- per-class rules ------------------------------------------------------------------------

ClassRule = Callable[[dict[str, Any], Context, str], None]
CLASS_RULES: dict[str, list[ClassRule]] = {}


def for_classes(*classes: str) -> Callable[[ClassRule], ClassRule]:
    def add(fn: ClassRule) -> ClassRule:
        for c in classes:
            CLASS_RULES.setdefault(c, []).append(fn)
        return fn

    return add


@for_classes("InputLayer")
@rule(
    "input-layer-batch-shape",
    change="InputLayer's batch_input_shape is batch_shape; type_spec is gone; sparse/ragged are "
    "booleans",
    since="Keras 3.0",
    action="renamed; type_spec dropped; sparse/ragged None become False",
    test="tests/test_keras3_translate.py::test_input_layer_and_batch_input_shape",
)
def input_layer(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("input-layer-batch-shape")
    if "batch_input_shape" in cfg:
        cfg["batch_shape"] = cfg.pop("batch_input_shape")
    if "batch_shape" not in cfg and "input_shape" in cfg:
        cfg["batch_shape"] = [None, *cfg.pop("input_shape")]
    cfg.pop("type_spec", None)
    cfg.pop("trainable", None)
    for k in ("sparse", "ragged"):
        cfg[k] = bool(cfg.get(k) or False)
    if cfg.get("ragged"):
        ctx.refuse(
            where,
            "a ragged input (Keras 3 has ragged inputs on TensorFlow only)",
            "re-save it dense",
        )
    dt = cfg.get("dtype")
    if isinstance(dt, dict):  # a policy written for an input: its variable dtype
        cfg["dtype"] = (dt.get("config") or {}).get("name", "float32")
    elif dt is None:
        cfg["dtype"] = "float32"
    cfg.setdefault("optional", False)


@for_classes(*RNN_CLASSES)
@rule(
    "rnn-time-major-removed",
    change="recurrent layers no longer take time_major (inputs are always batch-major)",
    since="Keras 3.0",
    action="time_major=False dropped; time_major=True refused (the layer's inputs and outputs "
    "would be read with the axes swapped)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def rnn_time_major(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if "time_major" not in cfg:
        return
    ctx.use("rnn-time-major-removed")
    if cfg.pop("time_major"):
        ctx.refuse(
            where,
            "time_major=True (Keras 3 recurrent layers read batch-major inputs only)",
            "rebuild the model with time_major=False and a Permute((2, 1)) around the layer",
        )


@for_classes("SimpleRNN", "LSTM", "GRU")
@rule(
    "rnn-implementation-ignored",
    change="LSTM/GRU's implementation=1|2 (how gates were batched) is accepted but ignored",
    since="Keras 3.0",
    action="dropped: every implementation computes the same function",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def rnn_implementation(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if "implementation" in cfg:
        cfg.pop("implementation")
        ctx.use("rnn-implementation-ignored")


@for_classes("GRU")
@rule(
    "gru-reset-after-default",
    change="GRU's reset_after defaults to True (tf.keras 2.x and Keras 3) but standalone Keras "
    "before 2.1.? had no such argument and applied the reset gate before the matrix product "
    "(reset_after=False)",
    since="Keras 2.1 (argument added), tf.keras 2.0 (default True)",
    action="a GRU config without reset_after is written reset_after=False, what it computed",
    test="tests/test_keras3_translate.py::test_gru_without_reset_after_keeps_reset_before",
)
def gru_reset_after(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if "reset_after" not in cfg:
        cfg["reset_after"] = False
        ctx.use(
            "gru-reset-after-default",
            f"{where}: GRU config without reset_after written reset_after=False (the Keras 2 "
            "computation; Keras 3's default is True)",
        )


@for_classes("Bidirectional")
@rule(
    "bidirectional-inner-layer",
    change="Bidirectional's inner layer config must be a full Keras 3 object (standalone Keras "
    "2.0-2.2 wrote {class_name, config} without module, which Keras 3 cannot locate)",
    since="Keras 3.0",
    action="the inner layer (and backward_layer) are translated like any layer",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[bidirectional]",
)
def bidirectional_marker(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("bidirectional-inner-layer")


@for_classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
@rule(
    "conv-transpose-groups-removed",
    change="transposed convolutions no longer take groups (tf.keras wrote groups=1 in every "
    "config)",
    since="Keras 3.0",
    action="groups=1 dropped; any other value refused (Keras 3 cannot express it)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def conv_transpose_groups(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    _drop_if(cfg, ctx, where, "groups", 1, "conv-transpose-groups-removed")


@for_classes("DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")
@rule(
    "depthwise-separable-conv-args",
    change="DepthwiseConv*/SeparableConv* no longer take the Conv base arguments they ignored "
    "(groups, and for depthwise: filters, kernel_initializer/regularizer/constraint)",
    since="Keras 3.0",
    action="dropped when they hold what Keras 2 ignored (groups=1; the kernel_* of depthwise "
    "and separable layers never reached a weight); any other groups refused",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def depthwise_separable_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    _drop_if(cfg, ctx, where, "groups", 1, "depthwise-separable-conv-args")
    for k in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
        cfg.pop(k, None)
    if "Depthwise" in where.split(" ")[-1] or "filters" in cfg and cfg["filters"] is None:
        cfg.pop("filters", None)
    ctx.use("depthwise-separable-conv-args")


@for_classes("BatchNormalization")
@rule(
    "batchnorm-args-removed",
    change="BatchNormalization no longer takes fused, renorm*, virtual_batch_size or "
    "adjustment, and its axis is one int (tf.keras wrote a list)",
    since="Keras 3.0",
    action="fused dropped (same function); renorm=False, virtual_batch_size=None and "
    "adjustment=None dropped; renorm=True refused (its extra statistics have no place); a "
    "virtual_batch_size is dropped with a note (it only changes training batches); a one-axis "
    "list becomes the int, several axes are refused",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def batchnorm_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("batchnorm-args-removed")
    cfg.pop("fused", None)
    if cfg.pop("renorm", False):
        ctx.refuse(
            where,
            "BatchNormalization(renorm=True) (Keras 3 has no batch renormalization)",
            "rebuild the layer without renorm and retrain, or keep the model on tf_keras",
        )
    for k in ("renorm_clipping", "renorm_momentum"):
        cfg.pop(k, None)
    if cfg.pop("virtual_batch_size", None) is not None:
        ctx.use(
            "batchnorm-args-removed",
            f"{where}: virtual_batch_size dropped (Keras 3 has none; inference is unchanged, "
            "training normalizes whole batches)",
        )
    if cfg.pop("adjustment", None) is not None:
        ctx.refuse(where, "a BatchNormalization adjustment function", "rebuild without it")
    axis = cfg.get("axis")
    if isinstance(axis, list | tuple):
        if len(axis) == 1:
            cfg["axis"] = int(axis[0])
        else:
            ctx.refuse(
                where,
                f"BatchNormalization over several axes {axis} (Keras 3 takes one)",
                "rebuild the layer with one axis",
            )


@for_classes("Embedding")
@rule(
    "embedding-input-length-removed",
    change="Embedding no longer takes input_length (it set the input shape) or sparse",
    since="Keras 3.0",
    action="input_length dropped (the model's Input carries the shape); sparse=False dropped, "
    "sparse=True refused",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def embedding_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("embedding-input-length-removed")
    cfg.pop("input_length", None)
    _drop_if(cfg, ctx, where, "sparse", False, "embedding-input-length-removed")


@for_classes("LeakyReLU")
@rule(
    "leaky-relu-alpha-renamed",
    change="LeakyReLU's alpha is negative_slope (default 0.3 in both; Theano-era files saved "
    "alpha as a one-element array)",
    since="Keras 3.0",
    action="alpha becomes negative_slope, written explicitly; an array alpha becomes its value",
    test="tests/test_keras3_translate.py::test_leaky_relu_alpha",
)
def leaky_relu_alpha(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("leaky-relu-alpha-renamed")
    alpha = cfg.pop("alpha", cfg.pop("negative_slope", 0.3))
    value = _scalar(alpha)
    if value is None:
        ctx.refuse(where, f"LeakyReLU alpha {alpha!r} is not a number", "re-save the layer")
        value = 0.3
    cfg["negative_slope"] = value


@for_classes("ELU", "ReLU")
def scalar_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    for k in ("alpha", "max_value", "negative_slope", "threshold"):
        if k in cfg and cfg[k] is not None:
            v = _scalar(cfg[k])
            if v is not None:
                cfg[k] = v


@for_classes("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
@rule(
    "spatial-dropout-args",
    change="SpatialDropout1D/2D/3D take only rate, seed, name and dtype (no trainable, "
    "noise_shape)",
    since="Keras 3.0",
    action="trainable and noise_shape dropped (the layer has no weights; its noise shape is "
    "fixed by the class, as in Keras 2)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def spatial_dropout_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("spatial-dropout-args")
    cfg.pop("trainable", None)
    cfg.pop("noise_shape", None)
    if "data_format" in cfg and where.endswith("SpatialDropout1D"):
        cfg.pop("data_format")


@for_classes("Softmax")
@rule(
    "softmax-robust-masking-removed",
    change="Softmax no longer takes robust_masking (how masked logits were pushed down)",
    since="Keras 3.0",
    action="robust_masking=False dropped; True dropped with a note (only masked positions, "
    "which receive ~0 probability either way, can differ)",
    test="tests/test_keras3_translate.py::test_removed_arguments_are_dropped_or_refused",
)
def softmax_robust(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if cfg.pop("robust_masking", False):
        ctx.use("softmax-robust-masking-removed", f"{where}: robust_masking dropped")
    if isinstance(cfg.get("axis"), list) and len(cfg["axis"]) == 1:
        cfg["axis"] = cfg["axis"][0]


@for_classes("MultiHeadAttention")
@rule(
    "mha-shape-args-removed",
    change="MultiHeadAttention's config no longer carries query_shape/key_shape/value_shape "
    "(tf.keras built the layer from them) or softmax_robust_masking",
    since="Keras 3.0",
    action="dropped: Keras 3 builds the layer when the model calls it",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[multi_head_attention]",
)
def mha_shapes(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    ctx.use("mha-shape-args-removed")
    for k in ("query_shape", "key_shape", "value_shape"):
        cfg.pop(k, None)
    if cfg.pop("softmax_robust_masking", False):
        ctx.use("mha-shape-args-removed", f"{where}: softmax_robust_masking dropped")


@for_classes("Attention", "AdditiveAttention")
@rule(
    "attention-causal-moved",
    change="Attention/AdditiveAttention's causal= constructor argument (TF <= 2.4) became the "
    "use_causal_mask= call argument",
    since="tf.keras 2.5 / Keras 3.0",
    action="causal=False dropped; causal=True moved onto every call of the layer",
    test="tests/test_keras3_translate.py::test_attention_causal_becomes_a_call_argument",
)
def attention_causal(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    if "causal" in cfg:
        ctx.use("attention-causal-moved")
        if cfg.pop("causal"):
            cfg["__call_kwargs__"] = {"use_causal_mask": True}


@for_classes("Normalization")
def normalization_args(cfg: dict[str, Any], ctx: Context, where: str) -> None:
    axis = cfg.get("axis")
    if isinstance(axis, list):
        cfg["axis"] = tuple(axis) if len(axis) != 1 else axis[0]
    if isinstance(cfg.get("axis"), tuple):
        cfg["axis"] = list(cfg["axis"])


# --- helpers --------------------------------------------------------------------------------


def _scalar(value: Any) -> float | None:
    """A number from a Keras 2 scalar, one-element list, or numpy-JSON dict."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _drop_if(
    cfg: dict[str, Any], ctx: Context, where: str, key: str, neutral: Any, rid: str
) -> None:
    if key not in cfg:
        return
    ctx.use(rid)
    value = cfg.pop(key)
    if value is not None and value != neutral:
        ctx.refuse(
            where,
            f"{key}={value!r}, which Keras 3 cannot express for this layer",
            f"rebuild the layer without {key}",
        )


# --- the translation of one layer -----------------------------------------------------------


@rule(
    "cudnn-rnn-removed",
    change="CuDNNLSTM and CuDNNGRU were removed; LSTM/GRU use cuDNN themselves when they can, "
    "and store weights in Keras's canonical layout",
    since="tf.keras 2.0 / Keras 3.0",
    action="CuDNNLSTM becomes LSTM(activation='tanh', recurrent_activation='sigmoid'), "
    "CuDNNGRU becomes GRU(reset_after=True, the same activations); kernels are re-laid out as "
    "Keras 2's own loader did (exact reordering); CuDNNLSTM's two bias halves are added (the "
    "only value computed, as cuDNN does)",
    test="tests/test_keras3_translate.py::test_cudnn_layers",
)
def cudnn_to_keras(cls: str, cfg: dict[str, Any], ctx: Context, where: str) -> str:
    ctx.use(
        "cudnn-rnn-removed",
        f"{where}: {cls} written as {cls[5:]} (Keras 3 picks cuDNN itself); weights re-laid out",
    )
    cfg.update(
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        dropout=0.0,
        recurrent_dropout=0.0,
        unroll=False,
    )
    if cls == "CuDNNGRU":
        cfg["reset_after"] = True
    return cls[5:]


@rule(
    "thresholded-relu-removed",
    change="ThresholdedReLU(theta) was removed",
    since="Keras 3.0",
    action="written as ReLU(threshold=theta): x where x > theta, else 0, the same function",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[activations]",
)
def thresholded_relu(cfg: dict[str, Any], ctx: Context, where: str) -> str:
    ctx.use("thresholded-relu-removed")
    theta = _scalar(cfg.pop("theta", 1.0))
    cfg.update(threshold=theta if theta is not None else 1.0, max_value=None, negative_slope=0.0)
    return "ReLU"


@rule(
    "lambda-refused",
    change="Lambda layers hold marshalled Python bytecode; Keras 3 refuses it in safe mode and "
    "it cannot run across Python versions",
    since="Keras 3.0 (safe_mode=True by default)",
    action="refused with the layer names; the way out is to define the function in Python and "
    "replace the Lambda (or a custom layer) before converting",
    test="tests/test_keras3_translate.py::test_lambda_is_refused_with_the_way_out",
)
def refuse_lambda(ctx: Context, where: str) -> None:
    ctx.use("lambda-refused")
    ctx.refuse(
        where,
        "a Lambda layer (marshalled Python bytecode, which Keras 3 refuses to load in safe "
        "mode and ckptfix never runs)",
        "rebuild the model in Python with the function as a registered custom layer, load "
        "the weights into it and save it, then convert that file",
    )


@rule(
    "custom-class",
    change="a layer class that is not a Keras built-in needs its Python class to load, in Keras 3 "
    "as in Keras 2",
    since="Keras 2.0",
    action="kept with its class name, config and weights (vars/0.. in Keras 2 order); listed in "
    "custom_objects for the user to pass to keras.saving.load_model",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[custom_layer]",
)
def custom_layer(
    entry: dict[str, Any], ctx: Context, where: str, path: tuple[str, ...], count: int | None
) -> Translated:
    cls = str(entry.get("class_name"))
    cfg = copy.deepcopy(dict(entry.get("config") or {}))
    short = cls.rsplit(">", 1)[-1]
    if short not in ctx.custom:
        ctx.custom.append(short)
    ctx.use("custom-class", f"{where}: custom class {short!r}: pass it in custom_objects")
    spec = {k: cfg.pop(k) for k in INPUT_ARGS if k in cfg}
    if "dtype" in cfg:
        cfg["dtype"] = dtype_policy(cfg["dtype"], ctx, where)
    obj = {
        "module": entry.get("module") if str(entry.get("module", "")).startswith("keras") else None,
        "class_name": short,
        "config": cfg,
        "registered_name": cls if ">" in cls else short,
    }
    if count is None:
        ctx.refuse(
            where,
            f"custom layer class {short!r} whose weight count the config cannot tell",
            "pass the Keras 2 layer tree (source=) so its weights can be placed",
        )
        count = 0
    save = Saveable(
        str(cfg.get("name", path[-1])),
        [Var(path, (i,), None, True, guessed=True) for i in range(count)],
        trainable=bool(cfg.get("trainable", True)),
    )
    return Translated(obj, save, spec, short)


_NESTED_OBJECT_SUFFIXES: tuple[tuple[str, Any], ...] = (
    ("_initializer", initializer),
    ("_regularizer", regularizer),
    ("_constraint", constraint),
)


def translate_layer(
    entry: dict[str, Any],
    ctx: Context,
    path: tuple[str, ...],
    counts: Callable[[tuple[str, ...]], int | None] | None = None,
) -> Translated:
    """One Keras 2 layer entry as Keras 3's object and its weights' Saveable.

    ``path`` is the Keras 2 layer path (model names down to this layer); ``counts`` the number
    of stored weights per layer path when known (from the file), used for custom layers and
    to check every plan.
    """
    cls = entry.get("class_name")
    name = _layer_name(entry, path)
    where = f"{name} ({cls})"
    if cls in MODEL_CLASSES:
        from .graph import translate_nested_model

        return translate_nested_model(entry, ctx, path, counts)
    count = counts(path) if counts is not None else None
    if not isinstance(cls, str):
        ctx.refuse(name, "a layer entry without class_name", "check the file's model_config")
        return Translated({}, Saveable(name), {}, "Layer")
    if cls == "Lambda":
        refuse_lambda(ctx, where)
        return Translated({}, Saveable(name), {}, "Lambda")
    cfg = copy.deepcopy(dict(entry.get("config") or {}))
    if cls in ("CuDNNLSTM", "CuDNNGRU"):
        k3cls = cudnn_to_keras(cls, cfg, ctx, where)
    elif cls == "ThresholdedReLU":
        k3cls = thresholded_relu(cfg, ctx, where)
    else:
        k3cls = cls
    if k3cls not in LAYER_ARGS:
        return custom_layer(entry, ctx, where, path, count)
    cfg["name"] = name
    cfg.setdefault("trainable", True)
    spec: dict[str, Any] = {}
    if k3cls != "InputLayer":
        spec = {k: cfg.pop(k) for k in INPUT_ARGS if k in cfg}
        cfg["dtype"] = dtype_policy(cfg.get("dtype"), ctx, where)
    drop_dynamic(cfg, ctx, where)
    drop_rng_args(cfg, ctx, where)
    for fn in CLASS_RULES.get(k3cls, ()):
        fn(cfg, ctx, f"{name} ({k3cls})")
    call_kwargs = cfg.pop("__call_kwargs__", None)
    for key in list(cfg):
        for suffix, fn in _NESTED_OBJECT_SUFFIXES:
            if key.endswith(suffix):
                cfg[key] = fn(cfg[key], ctx, f"{where} {key}")
    for key in ("activation", "recurrent_activation"):
        if key in cfg and k3cls != "InputLayer":
            cfg[key] = activation(cfg[key], ctx, f"{where} {key}", f"{name}_{key}")
    wrapped: dict[str, Translated] = {}
    if k3cls in ("Bidirectional", "TimeDistributed"):
        wrapped = _translate_wrapped(cfg, ctx, path, k3cls, where)
    accepted = LAYER_ARGS[k3cls]
    for key in sorted(set(cfg) - accepted):
        ctx.refuse(
            where,
            f"argument {key}={cfg[key]!r}, which Keras 3's {k3cls} does not take",
            "rebuild the layer without it",
        )
        cfg.pop(key)
    obj: dict[str, Any] = {
        "module": "keras.layers",
        "class_name": k3cls,
        "config": cfg,
        "registered_name": None,
    }
    if call_kwargs:
        obj["__call_kwargs__"] = call_kwargs
    from .plans import plan_layer

    save = plan_layer(k3cls, cls, cfg, ctx, path, where, count, wrapped)
    return Translated(obj, save, spec, k3cls)


def _translate_wrapped(
    cfg: dict[str, Any], ctx: Context, path: tuple[str, ...], cls: str, where: str
) -> dict[str, Translated]:
    """Translate the inner layer(s) of Bidirectional/TimeDistributed in place."""
    out: dict[str, Translated] = {}
    for key in ("layer", "backward_layer"):
        inner = cfg.get(key)
        if inner is None:
            continue
        if not isinstance(inner, dict) or "class_name" not in inner:
            ctx.refuse(where, f"its {key} is not a layer config", "check the file's model_config")
            continue
        # The inner layer's weights belong to the wrapper in Keras 2 (one weight list, the
        # backward layer's after the forward one's): the plan is made with the wrapper's path.
        t = translate_layer(inner, ctx, path)
        cfg[key] = t.object
        out[key] = t
    if cls == "Bidirectional" and "layer" in out:
        bidirectional_marker(cfg, ctx, where)
        inner_cfg = out["layer"].object.get("config", {})
        if inner_cfg.get("return_sequences") and "zero_output_for_mask" in LAYER_ARGS.get(
            out["layer"].class_name, frozenset()
        ):
            inner_cfg["zero_output_for_mask"] = True
    return out


def _layer_name(entry: dict[str, Any], path: tuple[str, ...]) -> str:
    cfg = entry.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        return str(cfg["name"])
    if isinstance(entry.get("name"), str):
        return str(entry["name"])
    return path[-1] if path else "layer"


def translate_object(value: dict[str, Any], ctx: Context, where: str) -> dict[str, Any]:
    """A layer given as an object inside another config (an activation layer)."""
    t = translate_layer(value, ctx, (where,))
    return t.object


def uses_keras2_hard_sigmoid(cfg: dict[str, Any]) -> list[str]:
    """The activation keys of a translated config holding the Keras 2 hard_sigmoid object."""
    return [k for k in ("activation", "recurrent_activation") if is_keras2_hard_sigmoid(cfg.get(k))]
