"""Objects nested in layer configs: dtype policies, initializers, regularizers, constraints,
activations. Each Keras 2 spelling becomes the object Keras 3 itself serializes.

Keras 2 wrote these in several dialects: bare strings (``"glorot_uniform"``), ``{"class_name",
"config"}`` (standalone Keras 2.0-2.3, tf.keras in TF 1.x/2.x, with ``dtype`` inside the config
in the ``-tf`` builds), and ``{"module", "class_name", "config", "registered_name"}`` (tf_keras
>= 2.13). Keras 3 writes ``{"module": "keras.initializers", "class_name": ..., "config": ...,
"registered_name": None}`` and builds the object with ``cls(**config)``, so any keyword it does
not know fails: the config is cut to the keywords Keras 3 accepts (from
:mod:`ckptfix.keras3.signatures`), and what is cut is said in a note when it matters.
"""

from __future__ import annotations

from typing import Any

from .signatures import CONSTRAINT_ARGS, INITIALIZER_ARGS, REGULARIZER_ARGS
from .types import Context, rule

# --- dtype policies -------------------------------------------------------------------------

#: Keras 2 policy class names (tf.keras 2.1-2.3 ``PolicyV1``, 2.4+ ``Policy``, Keras 3 names)
_POLICY_CLASSES = {"Policy", "PolicyV1", "DTypePolicy", "FloatDTypePolicy", "_infer"}
#: what a layer without a dtype computed in Keras 2: floatx, float32 unless keras.json said else
KERAS2_FLOATX = "float32"


def policy_object(name: str) -> dict[str, Any]:
    """The Keras 3 serialization of the dtype policy ``name``."""
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": name},
        "registered_name": None,
    }


@rule(
    "dtype-policy",
    change="mixed-precision policies are keras.DTypePolicy objects; Keras 2's Policy/PolicyV1 "
    "dicts (with loss_scale in TF 2.1-2.3) and dtype None are not read by Keras 3",
    since="Keras 3.0",
    action="every dtype becomes DTypePolicy(name); None becomes float32 (Keras 2's floatx); "
    "a policy's loss_scale is dropped (loss scaling belongs to the optimizer in Keras 3)",
    test="tests/test_keras3_translate.py::test_dtype_policies",
)
def dtype_policy(value: Any, ctx: Context, where: str) -> dict[str, Any]:
    """A Keras 2 layer ``dtype`` (None, a string or a policy dict) as a Keras 3 policy."""
    ctx.use("dtype-policy")
    if value is None:
        return policy_object(KERAS2_FLOATX)
    if isinstance(value, str):
        return policy_object(value)
    if isinstance(value, dict):
        cls = value.get("class_name")
        cfg = value.get("config")
        if cls in _POLICY_CLASSES and isinstance(cfg, dict):
            name = cfg.get("name")
            if name == "_infer" or name is None:
                # TF 2.0-2.3 "_infer": the layer took its inputs' dtype; floatx in practice
                ctx.use(
                    "dtype-policy",
                    f"{where}: dtype policy '_infer' (TF 2.0-2.3) written as float32",
                )
                return policy_object(KERAS2_FLOATX)
            if isinstance(name, str):
                return policy_object(name)
    ctx.refuse(
        where,
        f"dtype {value!r} is not a dtype or a Keras dtype policy",
        "re-save the model with a standard dtype policy",
    )
    return policy_object(KERAS2_FLOATX)


# --- initializers, regularizers, constraints --------------------------------------------------

# Keras 2 spellings (class names, tf.keras V2 aliases, function names) -> Keras 3 class names.
_INITIALIZER_NAMES = {
    "zeros": "Zeros",
    "zero": "Zeros",
    "ones": "Ones",
    "one": "Ones",
    "constant": "Constant",
    "randomnormal": "RandomNormal",
    "random_normal": "RandomNormal",
    "normal": "RandomNormal",
    "randomuniform": "RandomUniform",
    "random_uniform": "RandomUniform",
    "uniform": "RandomUniform",
    "truncatednormal": "TruncatedNormal",
    "truncated_normal": "TruncatedNormal",
    "variancescaling": "VarianceScaling",
    "variance_scaling": "VarianceScaling",
    "orthogonal": "Orthogonal",
    "orthogonalinitializer": "Orthogonal",
    "identity": "Identity",
    "identityinitializer": "Identity",
    "glorotnormal": "GlorotNormal",
    "glorot_normal": "GlorotNormal",
    "glorotuniform": "GlorotUniform",
    "glorot_uniform": "GlorotUniform",
    "henormal": "HeNormal",
    "he_normal": "HeNormal",
    "heuniform": "HeUniform",
    "he_uniform": "HeUniform",
    "lecunnormal": "LecunNormal",
    "lecun_normal": "LecunNormal",
    "lecununiform": "LecunUniform",
    "lecun_uniform": "LecunUniform",
}
# Keras 2 argument names that Keras 3 spells differently, per class.
_INITIALIZER_RENAMES = {"RandomUniform": {"minval": "minval", "maxval": "maxval"}}
_REGULARIZER_NAMES = {
    "l1l2": "L1L2",
    "l1_l2": "L1L2",
    "l1": "L1",
    "l2": "L2",
    "orthogonalregularizer": "OrthogonalRegularizer",
}
_CONSTRAINT_NAMES = {
    "maxnorm": "MaxNorm",
    "max_norm": "MaxNorm",
    "nonneg": "NonNeg",
    "non_neg": "NonNeg",
    "unitnorm": "UnitNorm",
    "unit_norm": "UnitNorm",
    "minmaxnorm": "MinMaxNorm",
    "min_max_norm": "MinMaxNorm",
}


def _key(name: str) -> str:
    name = name.rsplit(">", 1)[-1]
    if name.endswith("V2"):
        name = name[:-2]
    return name.lower()


def _object(kind: str, cls: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"module": f"keras.{kind}", "class_name": cls, "config": config, "registered_name": None}


def _split(value: Any) -> tuple[str | None, dict[str, Any]]:
    """(class or function name, config) of a Keras 2 object spelled as a string or a dict."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict):
        cls = value.get("class_name")
        cfg = value.get("config")
        return (cls if isinstance(cls, str) else None), (dict(cfg) if isinstance(cfg, dict) else {})
    return None, {}


@rule(
    "initializer-config",
    change="initializer configs no longer accept dtype (written by the -tf builds of Keras "
    "2.1-2.3) and Keras 2.0-2.2 spelled truncated normal VarianceScaling distribution='normal'",
    since="Keras 3.0",
    action="initializers become Keras 3 objects with only the keywords Keras 3 accepts; "
    "distribution 'normal' becomes 'truncated_normal' (what Keras 2 drew)",
    test="tests/test_keras3_translate.py::test_initializer_regularizer_constraint_dialects",
)
def initializer(value: Any, ctx: Context, where: str) -> Any:
    """A Keras 2 initializer (string or dict) as Keras 3 serializes it."""
    if value is None:
        return None
    name, cfg = _split(value)
    cls = _INITIALIZER_NAMES.get(_key(name)) if name else None
    if cls is None:
        ctx.refuse(
            where,
            f"initializer {name or value!r} is not one Keras 3 knows",
            "define it in Keras 3 and load with custom_objects, or re-save with a built-in "
            "initializer",
        )
        return value
    ctx.use("initializer-config")
    cfg.pop("dtype", None)
    if cls == "VarianceScaling" and cfg.get("distribution") == "normal":
        cfg["distribution"] = "truncated_normal"
    accepted = INITIALIZER_ARGS.get(cls, frozenset())
    return _object("initializers", cls, {k: v for k, v in cfg.items() if k in accepted})


@rule(
    "regularizer-config",
    change="regularizers are keras.regularizers objects (L1, L2, L1L2); Keras 2 configs may be "
    "strings or {class_name, config} dicts",
    since="Keras 3.0",
    action="regularizers become Keras 3 objects with the same factors",
    test="tests/test_keras3_translate.py::test_initializer_regularizer_constraint_dialects",
)
def regularizer(value: Any, ctx: Context, where: str) -> Any:
    """A Keras 2 regularizer as Keras 3 serializes it."""
    if value is None:
        return None
    name, cfg = _split(value)
    cls = _REGULARIZER_NAMES.get(_key(name)) if name else None
    if cls is None:
        ctx.refuse(
            where,
            f"regularizer {name or value!r} is not one Keras 3 knows",
            "define it in Keras 3 and load with custom_objects",
        )
        return value
    ctx.use("regularizer-config")
    if isinstance(value, str):
        return _object("regularizers", cls, {})
    accepted = REGULARIZER_ARGS.get(cls, frozenset())
    out = {k: float(v) if isinstance(v, int | float) else v for k, v in cfg.items()}
    return _object("regularizers", cls, {k: v for k, v in out.items() if k in accepted})


@rule(
    "constraint-config",
    change="constraints are keras.constraints objects; tf.keras's RadialConstraint was removed",
    since="Keras 3.0",
    action="MaxNorm, MinMaxNorm, NonNeg and UnitNorm carry over; a RadialConstraint is dropped "
    "with a note (it acts only when training updates the weights)",
    test="tests/test_keras3_translate.py::test_initializer_regularizer_constraint_dialects",
)
def constraint(value: Any, ctx: Context, where: str) -> Any:
    """A Keras 2 constraint as Keras 3 serializes it (None when Keras 3 has no counterpart)."""
    if value is None:
        return None
    name, cfg = _split(value)
    cls = _CONSTRAINT_NAMES.get(_key(name)) if name else None
    if cls is None and name and _key(name) == "radialconstraint":
        ctx.use(
            "constraint-config",
            f"{where}: RadialConstraint dropped (none in Keras 3); it only shaped training updates",
        )
        return None
    if cls is None:
        ctx.refuse(
            where,
            f"constraint {name or value!r} is not one Keras 3 knows",
            "define it in Keras 3 and load with custom_objects",
        )
        return value
    ctx.use("constraint-config")
    accepted = CONSTRAINT_ARGS.get(cls, frozenset())
    return _object("constraints", cls, {k: v for k, v in cfg.items() if k in accepted})


# --- activations ------------------------------------------------------------------------------

#: Keras 2 activation names whose Keras 3 function of the same name computes the same thing
SAME_ACTIVATIONS = frozenset(
    {
        "linear",
        "relu",
        "relu6",
        "elu",
        "selu",
        "softmax",
        "softplus",
        "softsign",
        "tanh",
        "sigmoid",
        "exponential",
        "gelu",
        "mish",
        "swish",
        "silu",
        "log_softmax",
        "leaky_relu",
    }
)


def keras2_hard_sigmoid(name: str) -> dict[str, Any]:
    """Keras 2's hard_sigmoid, clip(0.2 x + 0.5, 0, 1), as a Keras 3 object safe mode loads.

    A Sequential of ``Rescaling(0.2, offset=0.5)`` and ``ReLU(max_value=1.0)``: the same float
    operations as Keras 2 (multiply, add, clip), usable wherever Keras 3 takes an activation
    (``activations.get`` deserializes a dict into any callable Keras object).
    """
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": f"{name}_keras2_hard_sigmoid",
            "trainable": True,
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "Rescaling",
                    "config": {
                        "name": f"{name}_keras2_hard_sigmoid_scale",
                        "trainable": True,
                        "dtype": policy_object("float32"),
                        "scale": 0.2,
                        "offset": 0.5,
                    },
                    "registered_name": None,
                },
                {
                    "module": "keras.layers",
                    "class_name": "ReLU",
                    "config": {
                        "name": f"{name}_keras2_hard_sigmoid_clip",
                        "trainable": True,
                        "dtype": policy_object("float32"),
                        "max_value": 1.0,
                        "negative_slope": 0.0,
                        "threshold": 0.0,
                    },
                    "registered_name": None,
                },
            ],
        },
        "registered_name": None,
    }


def is_keras2_hard_sigmoid(value: Any) -> bool:
    """True for the object :func:`keras2_hard_sigmoid` writes."""
    return (
        isinstance(value, dict)
        and value.get("class_name") == "Sequential"
        and str(value.get("config", {}).get("name", "")).endswith("_keras2_hard_sigmoid")
    )


@rule(
    "hard-sigmoid-redefined",
    change="hard_sigmoid was clip(0.2x + 0.5, 0, 1) in Keras 2 and is relu6(x + 3) / 6 in "
    "Keras 3 (slope 1/6 instead of 0.2); it was the default recurrent_activation of LSTM/GRU in "
    "standalone Keras 2.0-2.2 and of ConvLSTM2D in every Keras 2",
    since="Keras 3.0",
    action="every 'hard_sigmoid' activation (layer activations, RNN recurrent_activation, "
    "Activation layers) becomes a Sequential(Rescaling(0.2, offset=0.5), ReLU(max_value=1)) "
    "object: Keras 2's function, loadable in safe mode",
    test="tests/test_keras3_oracle.py::test_zoo_predictions_match_tf_keras[activations]",
)
def activation(value: Any, ctx: Context, where: str, owner: str) -> Any:
    """A Keras 2 activation as Keras 3 must be told it, computing what Keras 2 computed.

    ``owner`` names the layer (used to name the objects written for Keras 2 functions).
    """
    if value is None:
        return "linear"
    name: str | None
    if isinstance(value, str):
        name = value
    elif isinstance(value, dict) and value.get("class_name") == "function":
        cfg = value.get("config")
        name = cfg if isinstance(cfg, str) else None
    elif isinstance(value, dict) and isinstance(value.get("class_name"), str):
        # an activation given as a layer object (tf.keras): translated like any layer
        from .layers import translate_object

        return translate_object(value, ctx, where)
    else:
        name = None
    if name is None:
        ctx.refuse(where, f"activation {value!r} cannot be read", "re-save with a named activation")
        return value
    if name == "hard_sigmoid":
        ctx.use(
            "hard-sigmoid-redefined",
            f"{where}: Keras 2 hard_sigmoid kept as clip(0.2x + 0.5, 0, 1) (Keras 3's "
            "hard_sigmoid is relu6(x + 3) / 6)",
        )
        return keras2_hard_sigmoid(owner)
    if name in SAME_ACTIVATIONS:
        return name
    ctx.custom.append(name)
    ctx.use(
        "custom-class",
        f"{where}: activation {name!r} is not a Keras built-in; pass it in custom_objects",
    )
    return name
