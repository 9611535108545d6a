"""Keras 2 training state → Keras 3: the compile config, the optimizer and its variables.

Data to data, without TensorFlow or Keras. Three parts, each a set of small tables and
functions named after the Keras 2 → 3 change they cover:

1. :func:`translate_training_config`: a Keras 2 ``training_config`` (standalone Keras 2.0–2.3,
   tf.keras, tf_keras) becomes Keras 3's ``compile_config``: loss and metric names
   (``'mse'``, ``'acc'``, Keras 2 function names, tf_keras's compiled ``MeanMetricWrapper``
   entries), dict and list losses of multi-output models, ``loss_weights``,
   ``weighted_metrics``; ``sample_weight_mode`` is gone from Keras 3.
2. :func:`translate_optimizer`: the optimizer's class and config (``lr`` → ``learning_rate``,
   ``decay`` → an ``InverseTimeDecay`` schedule, Keras 2 defaults where Keras 3's differ) and
   where Keras 3 computes something else under the same name (said in a warning).
3. :func:`plan_optimizer_state`: every variable Keras 3's optimizer saves
   (``optimizer/vars/<i>``: iterations, learning rate, then the slots of each trainable
   variable, pass by pass) from the stored Keras 2 tensor it is, in any of the three Keras 2
   layouts: tf_keras ≥ 2.11 optimizers (``Adam/m/dense/kernel:0``), legacy ``OptimizerV2``
   (``Adam/dense/kernel/m:0``) and standalone Keras 2.0–2.3 (``training/Adam/Variable:3``,
   positional). Where the mapping is not certain the state is refused, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .checkpoint import JSONObject, Layer, Optimizer, OptimizerVariable, TensorRef
from .storage import Derivation

if TYPE_CHECKING:
    from .keras3 import Keras3Model, WeightMove

# --- versions -------------------------------------------------------------------------------


def keras_release(version: str | None) -> tuple[int, int, int] | None:
    """``"2.2.4-tf"`` → ``(2, 2, 4)``; None when not a version."""
    if not version:
        return None
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def is_standalone_keras(version: str | None) -> bool:
    """True for standalone (multi-backend) Keras 2.0–2.3, False for tf.keras and tf_keras."""
    release = keras_release(version)
    return (
        release is not None
        and release[0] == 2
        and release < (2, 4, 0)
        and not (version or "").endswith("-tf")
    )


# --- losses and metrics ---------------------------------------------------------------------

#: Keras 2 loss names (strings users passed, and function names) → Keras 3's name.
LOSS_NAMES: Mapping[str, str] = {
    **{
        n: n
        for n in (
            "mse mae mape msle mean_squared_error mean_absolute_error "
            "mean_absolute_percentage_error "
            "mean_squared_logarithmic_error squared_hinge hinge categorical_hinge "
            "categorical_crossentropy sparse_categorical_crossentropy binary_crossentropy kld "
            "kl_divergence poisson huber cosine_similarity"
        ).split()
    },
    **{n: n.lower() for n in ("MSE", "MAE", "MAPE", "MSLE", "KLD")},
    "logcosh": "log_cosh",
    "log_cosh": "log_cosh",
    "kullback_leibler_divergence": "kl_divergence",
    "huber_loss": "huber",
    # Keras >= 2.0.9: -sum(l2n(y_true) * l2n(y_pred)), as Keras 3's cosine_similarity loss.
    "cosine_proximity": "cosine_similarity",
    "cosine": "cosine_similarity",
}

#: Keras 2 loss classes (tf.keras, tf_keras) that Keras 3 has with the same arguments.
LOSS_CLASSES = frozenset(
    (
        "MeanSquaredError MeanAbsoluteError MeanAbsolutePercentageError "
        "MeanSquaredLogarithmicError BinaryCrossentropy CategoricalCrossentropy "
        "SparseCategoricalCrossentropy Hinge SquaredHinge CategoricalHinge Poisson KLDivergence "
        "LogCosh Huber CosineSimilarity"
    ).split()
)

#: Metric functions (a tf_keras ``MeanMetricWrapper``'s ``fn``, a standalone Keras name) →
#: the Keras 3 metric class computing the same, and the keyword arguments it keeps.
METRIC_FUNCTIONS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "accuracy": ("Accuracy", ()),
    "binary_accuracy": ("BinaryAccuracy", ("threshold",)),
    "categorical_accuracy": ("CategoricalAccuracy", ()),
    "sparse_categorical_accuracy": ("SparseCategoricalAccuracy", ()),
    "top_k_categorical_accuracy": ("TopKCategoricalAccuracy", ("k",)),
    "sparse_top_k_categorical_accuracy": ("SparseTopKCategoricalAccuracy", ("k",)),
    "mean_squared_error": ("MeanSquaredError", ()),
    "mse": ("MeanSquaredError", ()),
    "mean_absolute_error": ("MeanAbsoluteError", ()),
    "mae": ("MeanAbsoluteError", ()),
    "mean_absolute_percentage_error": ("MeanAbsolutePercentageError", ()),
    "mape": ("MeanAbsolutePercentageError", ()),
    "mean_squared_logarithmic_error": ("MeanSquaredLogarithmicError", ()),
    "msle": ("MeanSquaredLogarithmicError", ()),
    "cosine_similarity": ("CosineSimilarity", ("axis",)),
    "hinge": ("Hinge", ()),
    "squared_hinge": ("SquaredHinge", ()),
    "categorical_hinge": ("CategoricalHinge", ()),
    "binary_crossentropy": ("BinaryCrossentropy", ("from_logits", "label_smoothing")),
    "categorical_crossentropy": ("CategoricalCrossentropy", ("from_logits", "label_smoothing")),
    "sparse_categorical_crossentropy": ("SparseCategoricalCrossentropy", ("from_logits",)),
    "kullback_leibler_divergence": ("KLDivergence", ()),
    "kl_divergence": ("KLDivergence", ()),
    "kld": ("KLDivergence", ()),
    "poisson": ("Poisson", ()),
    "logcosh": ("LogCoshError", ()),
    "log_cosh": ("LogCoshError", ()),
}

#: Keras 2 metric classes Keras 3 has under the same name with the same arguments.
METRIC_CLASSES = frozenset({cls for cls, _ in METRIC_FUNCTIONS.values()}) | frozenset(
    (
        "AUC Precision Recall TruePositives TrueNegatives FalsePositives FalseNegatives "
        "PrecisionAtRecall RecallAtPrecision SensitivityAtSpecificity SpecificityAtSensitivity "
        "RootMeanSquaredError MeanIoU Mean Sum"
    ).split()
)
#: What "acc"/"accuracy" meant next to each loss (Keras 2 picked it from the loss and output).
_ACCURACY_FOR_LOSS = {
    "binary_crossentropy": "BinaryAccuracy",
    "categorical_crossentropy": "CategoricalAccuracy",
    "sparse_categorical_crossentropy": "SparseCategoricalAccuracy",
}


def keras3_object(module: str, class_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A serialized Keras 3 object, as ``keras.saving.serialize_keras_object`` writes it."""
    return {
        "module": module,
        "class_name": class_name,
        "config": dict(config),
        "registered_name": None,
    }


class Untranslatable(Exception):
    """A part of a training config that Keras 3 cannot express faithfully (the message says why)."""


def _loss(entry: Any, release: tuple[int, int, int] | None, warnings: list[str]) -> Any:
    """One Keras 2 loss (a name or a serialized loss object) as Keras 3 compiles it."""
    if isinstance(entry, str):
        name = LOSS_NAMES.get(entry)
        if name is None:
            raise Untranslatable(f"loss {entry!r} is not a Keras 3 loss")
        if entry in ("cosine_proximity", "cosine") and release is not None and release < (2, 0, 9):
            warnings.append(
                f"loss {entry!r}: Keras < 2.0.9 took the mean over the last axis where Keras 3's "
                "cosine_similarity takes the sum; training steps are scaled by the output size"
            )
        if entry in ("hinge", "squared_hinge") and release is not None and release < (2, 3, 0):
            warnings.append(
                f"loss {entry!r}: Keras 3 converts 0/1 labels to -1/1 where Keras < 2.3 did not; "
                "training on 0/1 labels now optimises another objective"
            )
        return name
    if isinstance(entry, dict) and isinstance(entry.get("class_name"), str):
        cls = entry["class_name"]
        cfg = dict(entry.get("config") or {})
        if cls in LOSS_CLASSES:
            reduction = cfg.pop("reduction", None)
            cfg.pop("fn", None)
            if reduction in ("auto", "sum_over_batch_size", None):
                cfg["reduction"] = "sum_over_batch_size"
            elif reduction in ("sum", "none"):
                cfg["reduction"] = reduction
            else:
                raise Untranslatable(f"loss {cls} with reduction {reduction!r}")
            return keras3_object("keras.losses", cls, cfg)
        if cls == "function" or cls in LOSS_NAMES:
            return _loss(entry.get("config") if cls == "function" else cls, release, warnings)
        raise Untranslatable(f"loss class {cls!r} (a custom loss) is not a Keras 3 built-in")
    raise Untranslatable(f"loss {entry!r} is not a loss name or a serialized loss")


def _metric(entry: Any, output: str | None, loss: Any, warnings: list[str]) -> Any | None:
    """One Keras 2 metric as Keras 3 compiles it; None (with a warning) when it cannot be."""
    if isinstance(entry, str):
        if entry in ("acc", "accuracy"):
            cls = _ACCURACY_FOR_LOSS.get(loss) if isinstance(loss, str) else None
            # Keras 2 chose the accuracy from the loss; Keras 3 from shapes only.
            return keras3_object("keras.metrics", cls, {"name": entry}) if cls else entry
        found = METRIC_FUNCTIONS.get(entry) or METRIC_FUNCTIONS.get(LOSS_NAMES.get(entry, ""))
        if found is None:
            warnings.append(f"metric {entry!r} not carried: not a Keras 3 metric")
            return None
        return keras3_object("keras.metrics", found[0], {"name": entry})
    if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)):
        warnings.append(f"metric {entry!r} not carried: not a metric name or object")
        return None
    cls = entry["class_name"]
    cfg = dict(entry.get("config") or {})
    name = str(cfg.get("name") or cls)
    if output is not None and name.startswith(output + "_"):
        name = name[len(output) + 1 :]  # tf_keras saved names with the output prefix
    if cls == "MeanMetricWrapper":
        fn = cfg.get("fn")
        fn_name = fn.get("config") if isinstance(fn, dict) else fn
        found = METRIC_FUNCTIONS.get(str(fn_name))
        if found is None:
            warnings.append(
                f"metric {name!r} not carried: its function {fn_name!r} is not Keras 3's"
            )
            return None
        target, kwargs = found
        out = {"name": name}
        if "dtype" in cfg:
            out["dtype"] = cfg["dtype"]
        out.update({k: cfg[k] for k in kwargs if k in cfg})
        return keras3_object("keras.metrics", target, out)
    if cls in METRIC_CLASSES:
        cfg["name"] = name
        return keras3_object("keras.metrics", cls, cfg)
    warnings.append(f"metric {name!r} not carried: class {cls} is not a Keras 3 built-in")
    return None


def _per_output(value: Any, outputs: Sequence[str]) -> dict[str, Any] | None:
    """A per-output structure (dict by name, or list in output order) as a dict by name."""
    if isinstance(value, dict) and "class_name" not in value:
        return dict(value)
    if isinstance(value, list) and len(outputs) > 1 and len(value) == len(outputs):
        return dict(zip(outputs, value, strict=True))
    return None


def _metrics(config: Any, outputs: Sequence[str], losses: Any, warnings: list[str]) -> Any:
    """Keras 2 metrics (flat, per output as a dict, or tf_keras's compiled list per output)."""
    if config is None:
        return None
    per = _per_output(config, outputs)
    if (
        per is None
        and isinstance(config, list)
        and config
        and all(isinstance(x, list) for x in config)
    ):
        if len(config) == 1 and len(outputs) <= 1:
            per = None
            config = config[0]
        elif len(config) == len(outputs):
            per = dict(zip(outputs, config, strict=True))
    if per is not None:
        out: dict[str, Any] = {}
        for name, ms in per.items():
            loss = losses.get(name) if isinstance(losses, dict) else losses
            items = ms if isinstance(ms, list) else [ms]
            kept = [m for x in items if (m := _metric(x, name, loss, warnings)) is not None]
            if kept:
                out[name] = kept
        return out or None
    items = config if isinstance(config, list) else [config]
    single = outputs[0] if len(outputs) == 1 else None
    kept = [m for x in items if (m := _metric(x, single, losses, warnings)) is not None]
    return kept or None


@dataclass(frozen=True)
class CompileTranslation:
    """A Keras 2 training config in Keras 3's terms.

    ``compile_config`` is None when the model must be written uncompiled (``warnings`` say
    why); ``optimizer`` describes the Keras 3 optimizer it holds.
    """

    compile_config: dict[str, Any] | None
    optimizer: OptimizerTranslation | None
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def translate_training_config(
    training_config: JSONObject | None,
    *,
    output_names: Sequence[str],
    keras_version: str | None,
) -> CompileTranslation:
    """Keras 2 ``training_config`` → Keras 3 ``compile_config`` (never raises for content).

    Args:
        training_config: the ``training_config`` attribute of a Keras 2 full-model file.
        output_names: the model's outputs in order (per-output losses and metrics).
        keras_version: the file's ``keras_version`` (standalone Keras and tf.keras differ).

    Returns:
        A :class:`CompileTranslation`; its ``compile_config`` is None, with a warning saying
        why, when the loss or the optimizer has no faithful Keras 3 form (the model is then
        written uncompiled, as ``model.save(include_optimizer=False)`` would).
    """
    if not training_config:
        return CompileTranslation(None, None)
    release = keras_release(keras_version)
    warnings: list[str] = []
    notes: list[str] = []
    try:
        optimizer = translate_optimizer(training_config.get("optimizer_config"), keras_version)
    except Untranslatable as exc:
        return CompileTranslation(
            None, None, warnings=(f"training config not carried ({exc}); compile the model",)
        )
    warnings.extend(optimizer.warnings)
    loss_cfg = training_config.get("loss")
    try:
        per = _per_output(loss_cfg, output_names)
        if per is not None:
            loss: Any = {k: _loss(v, release, warnings) for k, v in per.items() if v is not None}
        else:
            loss = None if loss_cfg is None else _loss(loss_cfg, release, warnings)
    except Untranslatable as exc:
        return CompileTranslation(
            None, None, warnings=(f"training config not carried ({exc}); compile the model",)
        )
    plain_losses: Any = {k: per.get(k) for k in per} if per is not None else loss_cfg
    metrics = _metrics(training_config.get("metrics"), output_names, plain_losses, warnings)
    weighted = _metrics(
        training_config.get("weighted_metrics"), output_names, plain_losses, warnings
    )
    weights = training_config.get("loss_weights")
    if isinstance(weights, list) and len(output_names) > 1 and len(weights) == len(output_names):
        weights = dict(zip(output_names, weights, strict=True))
    mode = training_config.get("sample_weight_mode")
    if mode:
        notes.append(
            f"sample_weight_mode={mode!r} is gone from Keras 3, which takes sample weights of "
            "any rank as given"
        )
    compile_config = {
        "optimizer": optimizer.serialized(),
        "loss": loss,
        "loss_weights": weights,
        "metrics": metrics,
        "weighted_metrics": weighted,
        "run_eagerly": False,
        "steps_per_execution": 1,
        "jit_compile": False,
    }
    return CompileTranslation(compile_config, optimizer, tuple(notes), tuple(warnings))


# --- the optimizer --------------------------------------------------------------------------

#: Keras 3 optimizer arguments every optimizer takes.
_BASE_ARGS = (
    "name",
    "learning_rate",
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
)
#: Keras 3 arguments of each optimizer besides the base ones.
OPTIMIZER_ARGS: Mapping[str, tuple[str, ...]] = {
    "SGD": ("momentum", "nesterov"),
    "Adam": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("beta_1", "beta_2", "epsilon", "amsgrad"),
    "RMSprop": ("rho", "momentum", "epsilon", "centered"),
    "Adagrad": ("initial_accumulator_value", "epsilon"),
    "Adadelta": ("rho", "epsilon"),
    "Adamax": ("beta_1", "beta_2", "epsilon"),
    "Nadam": ("beta_1", "beta_2", "epsilon"),
    "Ftrl": (
        "learning_rate_power",
        "initial_accumulator_value",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    ),
}
#: Keras 2 names of optimizer classes (standalone lower-case aliases, tf.keras spellings).
_OPTIMIZER_ALIASES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "RMSProp": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
    "nadam": "Nadam",
    "Nadam": "Nadam",
    "ftrl": "Ftrl",
}
#: Keras 2 defaults that differ from Keras 3's, for a config that omits the key (standalone
#: Keras stored every value; these matter for hand-written or partial configs only).
_STANDALONE_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "SGD": {"learning_rate": 0.01},
    "RMSprop": {"learning_rate": 0.001},
    "Adagrad": {"learning_rate": 0.01, "initial_accumulator_value": 0.0},
    "Adadelta": {"learning_rate": 1.0},
    "Adamax": {"learning_rate": 0.002},
    "Nadam": {"learning_rate": 0.002},
}
_OLD_EPSILON = 1e-8  # standalone Keras <= 2.1.2's default epsilon (later: K.epsilon() = 1e-7)
#: tf_keras learning-rate schedules that Keras 3 has with the same arguments.
SCHEDULES = frozenset(
    "ExponentialDecay PiecewiseConstantDecay PolynomialDecay InverseTimeDecay CosineDecay "
    "CosineDecayRestarts".split()
)

#: Which Keras 2 optimizer implementation wrote the state (decides names, order, semantics).
SOURCE_STANDALONE = "standalone"  # keras.optimizers of Keras 2.0–2.3 (and TF 1 tf.keras)
SOURCE_LEGACY = "legacy"  # OptimizerV2: tf.keras 2.0–2.10, tf_keras.optimizers.legacy
SOURCE_NEW = "new"  # tf_keras.optimizers (Keras >= 2.11), the ancestors of Keras 3's


@dataclass(frozen=True)
class OptimizerTranslation:
    """A Keras 2 optimizer as a Keras 3 one, and what carrying its state requires."""

    class_name: str  # Keras 3 class ("Adam")
    config: dict[str, Any]  # Keras 3 config (learning_rate a float or a serialized schedule)
    source: str  # SOURCE_STANDALONE | SOURCE_LEGACY | SOURCE_NEW
    source_class: str  # the Keras 2 class name as stored
    #: why the stored state cannot be carried whatever the file holds (None: it may be)
    state_refusal: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def schedule(self) -> bool:
        """True when the learning rate is a schedule (Keras 3 then stores no variable for it)."""
        return isinstance(self.config.get("learning_rate"), dict)

    def serialized(self) -> dict[str, Any]:
        """The optimizer entry of ``compile_config``."""
        return keras3_object("keras.optimizers", self.class_name, self.config)


def _source_kind(config: Mapping[str, Any], class_name: str, keras_version: str | None) -> str:
    if class_name.startswith("Custom>") or "is_legacy_optimizer" in config:
        return SOURCE_NEW if not config.get("is_legacy_optimizer") else SOURCE_LEGACY
    if is_standalone_keras(keras_version):
        return SOURCE_STANDALONE
    release = keras_release(keras_version)
    if release is not None and release < (2, 3, 0):  # TF 1 tf.keras ("2.1.6-tf")
        return SOURCE_STANDALONE
    return SOURCE_LEGACY


def translate_optimizer(config: Any, keras_version: str | None) -> OptimizerTranslation:
    """A Keras 2 ``optimizer_config`` → the Keras 3 optimizer that computes the same.

    Raises:
        Untranslatable: no Keras 3 optimizer does what this one did (a TF optimizer, a
            LossScaleOptimizer, a custom class, an argument Keras 3 lacks).
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise Untranslatable("no optimizer config")
    stored = str(config["class_name"])
    plain = stored.removeprefix("Custom>")
    cls = _OPTIMIZER_ALIASES.get(plain, plain)
    if cls not in OPTIMIZER_ARGS:
        raise Untranslatable(f"optimizer {stored!r} has no Keras 3 counterpart")
    src = dict(config.get("config") or {})
    kind = _source_kind(src, stored, keras_version)
    release = keras_release(keras_version)
    warnings: list[str] = []
    refusal: str | None = None
    out: dict[str, Any] = {}
    if "lr" in src and "learning_rate" not in src:
        src["learning_rate"] = src.pop("lr")  # Keras 2.0–2.2 (and 2.3 configs still read it)
    src.pop("lr", None)
    if kind == SOURCE_STANDALONE:
        for key, value in _STANDALONE_DEFAULTS.get(cls, {}).items():
            src.setdefault(key, value)
        if "epsilon" in OPTIMIZER_ARGS[cls] and src.get("epsilon") is None:
            src["epsilon"] = _OLD_EPSILON if release and release <= (2, 1, 2) else 1e-7
    if cls == "Nadam" and kind != SOURCE_NEW:
        src.pop("schedule_decay", None)
        src.pop("decay", None)  # OptimizerV2 Nadam keeps schedule_decay in ``decay``
        refusal = (
            "Keras 3's Nadam follows the momentum schedule 0.96**t where Keras 2's used "
            "0.96**(0.004 t)"
        )
        warnings.append(f"optimizer Nadam: {refusal}; its state is not carried")
    decay = src.pop("decay", 0.0) or 0.0
    lr = src.get("learning_rate")
    if isinstance(lr, dict):
        lr = _schedule(lr)
    elif lr is not None:
        lr = float(lr)
    if decay:
        if not isinstance(lr, float):
            raise Untranslatable("decay on top of a learning-rate schedule")
        # Keras 2: lr / (1 + decay * iterations), iterations counted before the step.
        lr = keras3_object(
            "keras.optimizers.schedules",
            "InverseTimeDecay",
            {
                "initial_learning_rate": lr,
                "decay_steps": 1,
                "decay_rate": float(decay),
                "staircase": False,
                "name": "InverseTimeDecay",
            },
        )
    if lr is not None:
        out["learning_rate"] = lr
    if kind == SOURCE_NEW:
        if src.get("use_ema") and src.get("ema_overwrite_frequency") is not None:
            pass  # same meaning in Keras 3
        src.pop("jit_compile", None)
        src.pop("is_legacy_optimizer", None)
    for key in ("clipnorm", "clipvalue", "global_clipnorm"):
        if src.get(key) is not None:
            out[key] = float(src[key])
    allowed = set(_BASE_ARGS) | set(OPTIMIZER_ARGS[cls])
    dropped = []
    for key, value in src.items():
        if key in out or key in ("learning_rate",):
            continue
        if key in allowed:
            out[key] = value
        elif value not in (None, False, 0, 0.0):
            dropped.append(key)
    if dropped:
        raise Untranslatable(f"optimizer {cls} argument(s) {', '.join(sorted(dropped))}")
    out.setdefault("name", str(src.get("name") or cls))
    warnings.extend(_semantic_warnings(cls, kind, out))
    return OptimizerTranslation(cls, out, kind, plain, refusal, tuple(warnings))


def _schedule(entry: Mapping[str, Any]) -> dict[str, Any]:
    cls = entry.get("class_name")
    if cls not in SCHEDULES:
        raise Untranslatable(f"learning-rate schedule {cls!r}")
    config = dict(entry.get("config") or {})
    if config.get("name") is None:
        # tf_keras writes name=None; Keras 3 refuses a None name ("Argument `name` must be a
        # string") and defaults it to the class name, as tf_keras did when it ran.
        config["name"] = str(cls)
    return keras3_object("keras.optimizers.schedules", str(cls), config)


def _semantic_warnings(cls: str, kind: str, config: Mapping[str, Any]) -> list[str]:
    """Where Keras 3's optimizer of the same name computes something else (said, not hidden)."""
    eps_outside = (
        cls == "Adagrad"
        and kind in (SOURCE_LEGACY, SOURCE_STANDALONE)
        or cls == "RMSprop"
        and (kind == SOURCE_STANDALONE or (kind == SOURCE_LEGACY and not config.get("momentum")))
    )
    if eps_outside:
        return [
            f"optimizer {cls}: Keras 3 divides by sqrt(v + epsilon) where this Keras 2 "
            "optimizer divided by sqrt(v) + epsilon; resumed training differs slightly"
        ]
    return []


# --- optimizer variable layouts -------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The variables an optimizer stores: a header, passes over the trainable variables, a tail.

    Each pass holds, per trainable variable in turn, one slot of each of its kinds (Keras 3
    names: ``momentum``, ``velocity``...): Keras 3's Adam has one pass ``(momentum,
    velocity)``, interleaved; legacy Adam two, ``(momentum,)`` then ``(velocity,)``.
    """

    header: tuple[str, ...]
    passes: tuple[tuple[str, ...], ...]
    tail: tuple[str, ...] = ()

    def size(self, n: int) -> int:
        """Number of stored variables for ``n`` trainable variables."""
        return len(self.header) + n * sum(len(p) for p in self.passes) + len(self.tail)


def keras3_layout(opt: OptimizerTranslation) -> Layout:
    """What Keras 3.15's optimizer saves in ``optimizer/vars``, in order (read from its build)."""
    c = opt.config
    header = ("iterations",) if opt.schedule else ("iterations", "learning_rate")
    passes: list[tuple[str, ...]] = [("average",)] if c.get("use_ema") else []
    cls = opt.class_name
    if cls in ("Adam", "AdamW"):
        passes.append(("momentum", "velocity"))
        if c.get("amsgrad"):
            passes.append(("velocity_hat",))
    elif cls == "SGD":
        if c.get("momentum"):
            passes.append(("momentum",))
    elif cls == "RMSprop":
        passes.append(("velocity",))
        if (c.get("momentum") or 0) > 0:
            passes.append(("momentum",))
        if c.get("centered"):
            passes.append(("average_gradient",))
    elif cls == "Adagrad":
        passes.append(("accumulator",))
    elif cls == "Adadelta":
        passes.append(("accumulated_grad", "accumulated_delta_var"))
    elif cls == "Adamax":
        passes.append(("momentum", "norm"))
    elif cls == "Nadam":
        passes.append(("momentum", "velocity"))
        return Layout(header, tuple(passes), ("u_product",))
    elif cls == "Ftrl":
        passes.append(("accumulator", "linear"))
    return Layout(header, tuple(passes))


#: Keras 2 slot names → Keras 3 slot kinds, per optimizer (all three Keras 2 layouts).
_SLOT_KINDS: Mapping[str, Mapping[str, str]] = {
    "Adam": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "AdamW": {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"},
    "SGD": {"m": "momentum", "momentum": "momentum"},
    "RMSprop": {
        "rms": "velocity",
        "velocity": "velocity",
        "momentum": "momentum",
        "mg": "average_gradient",
        "average_gradient": "average_gradient",
    },
    "Adagrad": {"accumulator": "accumulator"},
    "Adadelta": {
        "accum_grad": "accumulated_grad",
        "accumulated_grad": "accumulated_grad",
        "accum_var": "accumulated_delta_var",
        "accumulated_delta_var": "accumulated_delta_var",
    },
    "Adamax": {"m": "momentum", "v": "norm", "u": "norm"},
    "Nadam": {"m": "momentum", "v": "velocity"},
    "Ftrl": {"accumulator": "accumulator", "linear": "linear"},
}


def _keras2_passes(cls: str, c: Mapping[str, Any], source: str) -> list[tuple[str, ...]]:
    """The slot passes a Keras 2 optimizer stores (kinds in Keras 3 names), per implementation.

    tf_keras >= 2.11 interleaves an optimizer's slots per variable as Keras 3 does; the
    legacy OptimizerV2 and standalone Keras store one pass per slot kind (Ftrl's V2 excepted).

    Raises:
        Untranslatable: an optimizer that implementation did not have.
    """
    momentum = (c.get("momentum") or 0) > 0
    interleaved = source == SOURCE_NEW
    if cls in ("Adam", "AdamW", "Nadam", "Adamax"):
        second = "norm" if cls == "Adamax" else "velocity"
        out: list[tuple[str, ...]] = (
            [("momentum", second)] if interleaved else [("momentum",), (second,)]
        )
        if cls in ("Adam", "AdamW") and c.get("amsgrad"):
            out.append(("velocity_hat",))
        return out
    if cls == "SGD":
        # tf_keras >= 2.11 and standalone Keras made momentum slots even at momentum 0.
        return [("momentum",)] if momentum or source != SOURCE_LEGACY else []
    if cls == "RMSprop":
        kinds: list[tuple[str, ...]] = [("velocity",)]
        if source == SOURCE_STANDALONE:
            return kinds
        if momentum:
            kinds.append(("momentum",))
        if c.get("centered"):
            kinds.append(("average_gradient",))
        return kinds
    if cls == "Adagrad":
        return [("accumulator",)]
    if cls == "Adadelta":
        both = ("accumulated_grad", "accumulated_delta_var")
        return [both] if interleaved else [(k,) for k in both]
    if cls == "Ftrl" and source != SOURCE_STANDALONE:
        return [("accumulator", "linear")]
    raise Untranslatable(f"a {source} Keras 2 {cls} optimizer")


def keras2_layout(opt: OptimizerTranslation, stored: int, n: int) -> tuple[Layout, int]:
    """The Keras 2 layout of the stored optimizer variables (kinds in Keras 3 names).

    Returns the layout and the number of trailing dummy slots to skip (standalone Adam's
    ``(1,)``-shaped ``vhats`` when ``amsgrad`` is off).

    Raises:
        Untranslatable: the stored count fits no layout this optimizer writes.
    """
    c = opt.config
    cls = opt.class_name
    passes = _keras2_passes(cls, c, opt.source)
    if opt.source == SOURCE_NEW:
        ema: list[tuple[str, ...]] = [("average",)] if c.get("use_ema") else []
        layout = Layout(("iterations",), tuple(ema + passes))
    elif opt.source == SOURCE_LEGACY:
        header = ("iterations", "momentum_cache") if cls == "Nadam" else ("iterations",)
        layout = Layout(header, tuple(passes))
    else:
        # Keras < 2.3 stored no iteration counter for RMSprop/Adagrad/Adadelta, Keras 2.3's
        # Nadam stores m_schedule after it, Keras >= 2.1.3's Adam stores vhats (dummies of
        # shape (1,) without amsgrad): the stored count tells which.
        candidates = [
            (Layout(h, tuple(passes)), 0)
            for h in (("iterations",), (), ("iterations", "momentum_cache"))
        ]
        if cls == "Adam" and not c.get("amsgrad"):
            candidates.append((Layout(("iterations",), tuple(passes)), n))
        elif cls == "Adam":
            candidates = [(Layout(("iterations",), tuple(passes)), 0)]
        fits = [(lay, d) for lay, d in candidates if lay.size(n) + d == stored]
        if len(fits) == 1:
            return fits[0]
        layout = candidates[0][0]
    if layout.size(n) != stored:
        raise Untranslatable(
            f"{stored} stored optimizer variables where a {opt.source_class} optimizer of "
            f"{n} trainable variables stores {layout.size(n)}"
        )
    return layout, 0


# --- the state plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class StateVariable:
    """One Keras 3 optimizer variable (``optimizer/vars/<index>``) and where it comes from.

    ``source`` is the stored Keras 2 tensor whose bytes it keeps; otherwise ``derived`` says
    how its value follows from the stored ones or from the config (the learning rate).
    """

    index: int
    name: str
    source: TensorRef | None = None
    derived: Derivation | None = None


@dataclass(frozen=True)
class StatePlan:
    """Keras 3's optimizer variables in order, or why the stored state is not carried."""

    variables: tuple[StateVariable, ...] = ()
    refusal: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: the source's optimizer holds no state yet (never built): nothing to carry or refuse
    fresh: bool = False

    @property
    def kept(self) -> bool:
        return self.refusal is None and bool(self.variables)


def _var_name(w_name: str) -> str:
    return w_name.rsplit(":", 1)[0]


def _slot_name(stored: str, source: str) -> tuple[str, str] | None:
    """(slot, variable name) from a stored optimizer variable name, when it says them."""
    base = _var_name(stored)
    parts = base.split("/")
    if len(parts) < 3:
        return None
    if source == SOURCE_NEW:  # Adam/m/dense/kernel
        return parts[1], "/".join(parts[2:])
    if source == SOURCE_LEGACY:  # Adam/dense/kernel/m
        return parts[-1], "/".join(parts[1:-1])
    return None


def keras2_trainable(
    subject: Layer, moves: Sequence[WeightMove], settled: Mapping[str, bool] | None = None
) -> list[tuple[str, TensorRef]]:
    """The Keras 2 model's trainable weights in its ``trainable_weights`` order.

    Keras 2 builds its optimizer's slots over ``model.trainable_weights``: each layer's
    trainable weights in ``model.layers`` order, a nested model's in its own order; a
    layer stores its trainable weights before its non-trainable ones. Whether a weight is
    trainable comes from the weight map (Keras 3 keeps Keras 2's trainable flags), or from
    ``settled`` (variable name -> trainable) where the map could only guess.

    Raises:
        Untranslatable: a stored weight whose trainability the map does not tell.
    """
    from .keras3 import source_weights

    flags: dict[Any, bool] = {}
    for move in moves:
        for w in source_weights(subject, move):
            flag = move.trainable
            if settled is not None and _var_name(w.name) in settled:
                flag = settled[_var_name(w.name)]
            flags[w.tensor.location] = flag
    out: list[tuple[str, TensorRef]] = []
    for layer in subject.layers:
        for w in layer.weights:
            known = flags.get(w.tensor.location)
            if known is None:
                raise Untranslatable(f"weight {w.name!r} of {layer.name!r} has no place in the map")
            if known:
                out.append((w.name, w.tensor))
    return out


def plan_optimizer_state(
    optimizer: Optimizer | None,
    opt: OptimizerTranslation,
    subject: Layer,
    model: Keras3Model,
) -> StatePlan:
    """Map every variable Keras 3's optimizer will load to its Keras 2 source (or refuse).

    Args:
        optimizer: the stored optimizer state (``Checkpoint.template_optimizer``).
        opt: the translated optimizer.
        subject: the Keras 2 model written (``Checkpoint.subject``), weights in load order.
        model: k3cfg's translation of it (weight map and Keras 3 trainable order).

    Returns:
        A :class:`StatePlan`; ``refusal`` (one line) says why no state is written.
    """
    if optimizer is None or not optimizer.variables:
        return StatePlan(refusal="the file stores no optimizer state")
    if opt.state_refusal:
        return StatePlan(refusal=opt.state_refusal)
    try:
        return _plan(optimizer, opt, subject, model)
    except Untranslatable as exc:
        return StatePlan(refusal=str(exc))


def _plan(
    optimizer: Optimizer, opt: OptimizerTranslation, subject: Layer, model: Keras3Model
) -> StatePlan:
    from .keras3 import source_weights

    moves = {m.path: m for m in model.weights}
    settled = _settle_guessed(optimizer, opt, subject, model)
    trainable2 = keras2_trainable(subject, model.weights, settled)
    loc_index = {ref.location: i for i, (_, ref) in enumerate(trainable2)}
    stored = list(optimizer.variables)
    if trainable2 and all(v.role == "iterations" for v in stored) and not optimizer.iterations:
        return StatePlan(
            notes=(
                "the source's optimizer was never built (no training step): Keras 3 builds "
                "it fresh, as tf_keras would",
            ),
            fresh=True,
        )
    layout2, dummies = keras2_layout(opt, len(stored), len(trainable2))
    if dummies:
        tail = stored[len(stored) - dummies :]
        if any(v.tensor.shape != (1,) for v in tail):
            raise Untranslatable("standalone Adam's trailing vhats are not the (1,) dummies")
        stored = stored[: len(stored) - dummies]
    header = {role: stored[i] for i, role in enumerate(layout2.header)}
    slots2: dict[tuple[str, int], OptimizerVariable] = {}
    pos = len(layout2.header)
    for kinds in layout2.passes:
        for j, (wname, ref) in enumerate(trainable2):
            for kind in kinds:
                v = stored[pos]
                pos += 1
                _check_slot(v, kind, wname, ref, opt)
                slots2[(kind, j)] = v
    # Keras 3: its trainable variables, each from one Keras 2 weight moved unchanged.
    order3: list[int] = []
    for path in model.trainable_order:
        move = moves.get(path)
        if move is not None and path in model.trainable_guessed:
            (w,) = source_weights(subject, move)[:1]
            if settled is not None and not settled.get(_var_name(w.name), True):
                continue  # a custom layer's weight its optimizer never trained
        if move is None:
            raise Untranslatable(f"Keras 3 trains {path}, which the weight map does not fill")
        if move.transform is not None or len(move.sources) != 1:
            raise Untranslatable(
                f"{path} is computed from Keras 2 weights ({move.transform}), and so would "
                "its slots be"
            )
        ref = source_weights(subject, move)[0].tensor
        k = loc_index.get(ref.location)
        if k is None:
            raise Untranslatable(f"{path} is trained in Keras 3 but was not in Keras 2")
        order3.append(k)
    if len(set(order3)) != len(order3):
        raise Untranslatable("two Keras 3 variables come from one Keras 2 weight")
    layout3 = keras3_layout(opt)
    out: list[StateVariable] = []
    notes: list[str] = []

    def add(name: str, source: TensorRef | None = None, derived: Derivation | None = None) -> None:
        out.append(StateVariable(len(out), name, source, derived))

    it = header.get("iterations")
    for role in layout3.header:
        if role == "iterations":
            if it is None:
                add("iterations", derived=constant(np.int64(0), "iterations: not stored, 0"))
                notes.append(
                    "the file stores no iteration count (Keras < 2.3 "
                    f"{opt.source_class}); Keras 3 starts counting at 0"
                )
            elif it.tensor.dtype == "int64" and it.tensor.shape == ():
                add("iterations", source=it.tensor)
            else:
                add("iterations", derived=_as_int64(it.tensor))
        else:
            lr = opt.config.get("learning_rate")
            if not isinstance(lr, float):
                raise Untranslatable("no learning rate value in the optimizer config")
            add(
                "learning_rate",
                derived=constant(np.float32(lr), f"learning_rate {lr!r} from the config"),
            )
    for kinds in layout3.passes:
        for j in order3:
            for kind in kinds:
                slot = slots2.get((kind, j))
                if slot is None:
                    raise Untranslatable(f"no stored {kind} slot for {trainable2[j][0]!r}")
                add(f"{kind} of {_var_name(trainable2[j][0])}", source=slot.tensor)
    for role in layout3.tail:
        if role == "u_product":
            out.append(_u_product(len(out), it, opt))
            notes.append("Nadam's u_product is not stored by tf_keras: recomputed from iterations")
    if opt.source == SOURCE_NEW and opt.class_name == "SGD" and not opt.config.get("momentum"):
        notes.append("SGD without momentum: Keras 3 keeps no momentum slots (unused in Keras 2)")
    return StatePlan(tuple(out), None, tuple(notes))


def _settle_guessed(
    optimizer: Optimizer, opt: OptimizerTranslation, subject: Layer, model: Keras3Model
) -> dict[str, bool] | None:
    """Trainability of the weights the map could only guess (custom layers), from the state.

    A variable is trainable in Keras 2 exactly when its optimizer holds slots for it: the
    tf_keras layouts name the variable in each slot's name; a positional (standalone Keras)
    layout tells it by the number of slots when all guessed weights are trainable, or none.

    Raises:
        Untranslatable: the stored state does not settle it.
    """
    if not model.trainable_guessed:
        return None
    from .keras3 import source_weights

    moves = {m.path: m for m in model.weights}
    guessed = [
        _var_name(w.name)
        for path in model.trainable_guessed
        for w in source_weights(subject, moves[path])
    ]
    named = {said[1] for v in optimizer.variables if (said := _slot_name(v.name, opt.source))}
    if named:
        return {name: name in named for name in guessed}
    fits = []
    for flag in (True, False):
        settled = dict.fromkeys(guessed, flag)
        n = len(keras2_trainable(subject, model.weights, settled))
        try:
            keras2_layout(opt, len(optimizer.variables), n)
        except Untranslatable:
            continue
        fits.append(settled)
    if len(fits) != 1:
        raise Untranslatable(
            "custom layer weights whose trainability neither the config nor the stored "
            "(positional) optimizer variables tell: " + ", ".join(model.trainable_guessed[:3])
        )
    return fits[0]


def _check_slot(
    v: OptimizerVariable, kind: str, wname: str, ref: TensorRef, opt: OptimizerTranslation
) -> None:
    """A stored slot must have its variable's shape and, where its name says it, its names."""
    if v.tensor.shape != ref.shape:
        raise Untranslatable(
            f"optimizer variable {v.name!r} has shape {v.tensor.shape}, its variable "
            f"{wname!r} {ref.shape}: the stored order is not the one assumed"
        )
    said = _slot_name(v.name, opt.source)
    if said is None:
        return
    slot, var = said
    kinds = _SLOT_KINDS.get(opt.class_name, {})
    if kinds.get(slot, slot) != kind and not (kind == "average" and slot == "average"):
        raise Untranslatable(f"optimizer variable {v.name!r} is not a {kind} slot")
    if var != _var_name(wname):
        raise Untranslatable(
            f"optimizer variable {v.name!r} belongs to {var!r}, not to {_var_name(wname)!r}"
        )


# --- derived values -------------------------------------------------------------------------


def constant(value: np.generic, what: str) -> Derivation:
    """A value from the config, not from a stored tensor."""
    arr = np.asarray(value)
    return Derivation((), lambda _arrays: arr, what, arr.dtype.name, arr.shape)


def _as_int64(ref: TensorRef) -> Derivation:
    def compute(arrays: Sequence[np.ndarray]) -> np.ndarray:
        x = np.asarray(arrays[0]).reshape(())
        return np.asarray(int(round(float(x))), dtype=np.int64)

    return Derivation((ref,), compute, f"iterations as int64 (stored as {ref.dtype})", "int64", ())


def u_product(iterations: int, beta_1: float) -> np.ndarray:
    """Keras 3 Nadam's ``u_product`` after ``iterations`` steps, as its update computes it.

    ``u_product = u_product * beta_1 * (1 - 0.5 * 0.96 ** t)`` for t = 1..iterations, in
    float32. Within a few thousand steps the factor is ``beta_1`` to the last bit and the
    product sits at 0 or at a fixed point among the subnormals, so the loop stops there.
    """
    u = np.float32(1.0)
    b1 = np.float32(beta_1)
    half, one, base = np.float32(0.5), np.float32(1.0), np.float32(0.96)
    for t in range(1, iterations + 1):
        factor = one - half * np.power(base, np.float32(t))
        new = np.float32(np.float32(u * b1) * factor)
        if new == u and factor == one:
            break
        u = new
    return np.asarray(u, dtype=np.float32)


def _u_product(
    index: int, it: OptimizerVariable | None, opt: OptimizerTranslation
) -> StateVariable:
    if it is None:
        raise Untranslatable("Nadam's u_product needs the stored iteration count")
    beta_1 = float(opt.config.get("beta_1", 0.9))

    def compute(arrays: Sequence[np.ndarray]) -> np.ndarray:
        steps = int(np.asarray(arrays[0]).reshape(()))
        return u_product(max(steps, 0), beta_1)

    derived = Derivation((it.tensor,), compute, "Nadam u_product from iterations", "float32", ())
    return StateVariable(index, "u_product", None, derived)


def describe(plan: StatePlan) -> str:
    """One line for a report: how many variables and from where."""
    if not plan.kept:
        return f"optimizer state not carried: {plan.refusal}"
    derived = sum(1 for v in plan.variables if v.derived is not None)
    return f"{len(plan.variables)} optimizer variables ({derived} derived)"


__all__ = [
    "CompileTranslation",
    "OptimizerTranslation",
    "StatePlan",
    "StateVariable",
    "Untranslatable",
    "keras2_layout",
    "keras3_layout",
    "plan_optimizer_state",
    "translate_optimizer",
    "translate_training_config",
    "u_product",
]
