"""Keras 2 -> Keras 3 config translation, rule by rule (issue 15 item 2).

Every rule registered in :data:`ckptfix.keras3.RULES` names the test that proves it; the rules
naming this file are tested here, each on a small Keras 2 model config written by hand in the
dialect Keras 2 wrote it (standalone Keras 2.0-2.2 list-style Sequential and ``Model``
configs, ``batch_input_shape`` on the first layer, the ``-tf`` builds' ``dtype`` inside
initializer configs, tf.keras 2.x policies, Theano kernels; compare the real files under
``fixtures/keras2_to_3`` and ``../shared/realworld``). Each test runs the public translation
(:func:`ckptfix.keras3.translate_model`), asserts the Keras 3 config fields the rule promises
and that the rule is recorded as used, and, where a rule refuses, that the refusal names the
layer and gives the way out. Where it is cheap, Keras 3 itself (TensorFlow backend, in
process) deserializes the translated config in safe mode, and the layer it builds is checked.

``test_every_rule_names_an_existing_test`` keeps the registry honest: a rule can never again
point at a test that does not exist.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptfix.keras3
from ckptfix.errors import UnsupportedConversionError
from ckptfix.keras3 import RULES, Keras3Model, WeightMove, apply_transform, translate_model
from tests.conftest import ROOT

# --- Keras 2 configs, as Keras 2 wrote them -------------------------------------------------


def glorot(dialect: str = "tf") -> dict[str, Any]:
    """A kernel initializer in the dialect of a Keras 2 writer."""
    if dialect == "standalone":  # Keras 2.0-2.2: VarianceScaling, no dtype
        return {
            "class_name": "VarianceScaling",
            "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None},
        }
    if dialect == "-tf":  # tf.keras in TF 1.x (keras_version "2.1.6-tf"): dtype inside
        return {"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}}
    return {  # tf_keras >= 2.13
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }


def dense(name: str = "dense_1", units: int = 3, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "units": units,
        "activation": "linear",
        "use_bias": True,
        "kernel_initializer": glorot("standalone"),
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "bias_constraint": None,
    }
    cfg.update(extra)
    return {"class_name": "Dense", "config": cfg}


def rnn(cls: str, name: str, units: int = 2, **extra: Any) -> dict[str, Any]:
    """An LSTM/GRU config as tf.keras 2.x wrote it."""
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "return_sequences": False,
        "return_state": False,
        "go_backwards": False,
        "stateful": False,
        "unroll": False,
        "units": units,
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "use_bias": True,
        "kernel_initializer": glorot(),
        "recurrent_initializer": {
            "class_name": "Orthogonal",
            "config": {"gain": 1.0, "seed": None},
        },
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "recurrent_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "recurrent_constraint": None,
        "bias_constraint": None,
        "dropout": 0.0,
        "recurrent_dropout": 0.0,
    }
    if cls == "LSTM":
        cfg["unit_forget_bias"] = True
    cfg.update(extra)
    return {"class_name": cls, "config": cfg}


def sequential(
    layers: list[dict[str, Any]], shape: list[Any], *, name: str = "sequential_1"
) -> dict[str, Any]:
    """A dict-style Sequential (Keras >= 2.2) with batch_input_shape on its first layer."""
    layers = copy.deepcopy(layers)
    layers[0]["config"]["batch_input_shape"] = shape
    return {"class_name": "Sequential", "config": {"name": name, "layers": layers}}


def translate(config: dict[str, Any], version: str = "2.8.0", backend: str = "tensorflow"):
    return translate_model(copy.deepcopy(config), keras_version=version, backend=backend)


def layer(k3: Keras3Model, name: str) -> dict[str, Any]:
    """The translated layer object named ``name`` (searched through nested models)."""

    def find(obj: Any) -> dict[str, Any] | None:
        if isinstance(obj, dict):
            cfg = obj.get("config")
            if isinstance(cfg, dict) and cfg.get("name") == name and "class_name" in obj:
                return obj
            for v in obj.values():
                found = find(v)
                if found is not None:
                    return found
        elif isinstance(obj, list):
            for v in obj:
                found = find(v)
                if found is not None:
                    return found
        return None

    found = find(k3.config["config"]["layers"])
    assert found is not None, f"no layer {name!r} in the translated config"
    return found


def refusal(config: dict[str, Any], version: str = "2.8.0", backend: str = "tensorflow") -> str:
    with pytest.raises(UnsupportedConversionError) as info:
        translate(config, version, backend)
    return str(info.value)


def keras3_model(keras3: Any, k3: Keras3Model) -> Any:
    """The model Keras 3 deserializes from the translated config (safe mode)."""
    with keras3.saving.custom_object_scope({}):
        return keras3.saving.deserialize_keras_object(copy.deepcopy(k3.config), safe_mode=True)


def policy(name: str) -> dict[str, Any]:
    return {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {"name": name},
        "registered_name": None,
    }


# --- the registry ---------------------------------------------------------------------------


def _rule_ids_in_sources() -> set[str]:
    """Every id passed to ``@rule(...)`` in the ckptfix.keras3 sources (read with ast)."""
    ids: set[str] = set()
    for path in (ROOT / "ckptfix" / "keras3").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "rule"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                ids.add(str(node.args[0].value))
    return ids


def test_every_rule_names_an_existing_test() -> None:
    # Every rule defined in the sources is registered once ckptfix.keras3 is imported (a
    # rule in a module imported lazily would be missing from RULES, and from its users).
    assert _rule_ids_in_sources() == set(RULES), "rules defined but not registered on import"
    assert ckptfix.keras3.RULES is RULES
    missing = []
    for r in RULES.values():
        file, _, test = r.test.partition("::")
        name = test.split("[", 1)[0]
        path = ROOT / file
        assert r.id and r.change and r.since and r.action, r
        if not path.is_file():
            missing.append(f"{r.id}: {file} does not exist")
            continue
        tree = ast.parse(path.read_text())
        functions = {
            n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name
        }
        if name not in functions or not name.startswith("test_"):
            missing.append(f"{r.id}: {r.test} names no test function")
            continue
        param = re.fullmatch(r"[^\[]*\[(.+)\]", test)
        if param:
            # a case of a parametrized test (its ids are checked per file below)
            decorators = [ast.unparse(d) for d in functions[name].decorator_list]
            if not any("parametrize" in d for d in decorators):
                missing.append(f"{r.id}: {r.test} names a case of an unparametrized test")
    assert not missing, missing


def test_rules_naming_oracle_cases_name_real_zoo_models() -> None:
    # The oracle test is parametrized over the zoo's model names: a rule naming one of its
    # cases must name a model of the zoo.
    from tests.conftest import fixture_module

    zoo = set(fixture_module("keras2_zoo.py").names())
    for r in RULES.values():
        m = re.fullmatch(r"tests/test_keras3_oracle\.py::test_zoo_\w+\[(\w+)\]", r.test)
        if m:
            assert m.group(1) in zoo, (r.id, r.test)


# --- dtype policies, initializers, regularizers, constraints --------------------------------


def test_dtype_policies(keras3: Any) -> None:
    layers = [
        dense("plain", dtype=None),  # Keras 2.0 configs: no dtype, floatx (float32)
        dense("named", dtype="float64"),
        # tf.keras 2.1-2.3 PolicyV1 with its loss scale
        dense(
            "v1",
            dtype={
                "class_name": "PolicyV1",
                "config": {"name": "mixed_float16", "loss_scale": "dynamic"},
            },
        ),
        dense("infer", dtype={"class_name": "Policy", "config": {"name": "_infer"}}),
        dense("mixed", dtype={"class_name": "Policy", "config": {"name": "mixed_float16"}}),
    ]
    k3 = translate(sequential(layers, [None, 4]), "2.3.0-tf")
    assert "dtype-policy" in k3.rules
    want = {
        "plain": "float32",
        "named": "float64",
        "v1": "mixed_float16",
        "infer": "float32",
        "mixed": "mixed_float16",
    }
    for name, dt in want.items():
        assert layer(k3, name)["config"]["dtype"] == policy(dt), name
    assert any("infer" in n and "float32" in n for n in k3.notes), k3.notes
    # The model's input takes the variable dtype of its first layer's policy.
    assert k3.config["config"]["layers"][0]["config"]["dtype"] == "float32"

    model = keras3_model(keras3, k3)
    got = {lay.name: lay.dtype_policy.name for lay in model.layers}
    assert got == want
    assert model.get_layer("v1").compute_dtype == "float16"

    bad = sequential([dense("odd", dtype={"class_name": "Strange", "config": {}})], [None, 4])
    message = refusal(bad)
    assert (
        "layer 'odd (Dense)'" in message
        and "re-save the model with a standard dtype policy" in message
    )


def test_initializer_regularizer_constraint_dialects(keras3: Any) -> None:
    layers = [
        dense(
            "tf_dialect",  # tf.keras in TF 1.x: dtype inside initializer configs
            kernel_initializer=glorot("-tf"),
            bias_initializer={"class_name": "Zeros", "config": {"dtype": "float32"}},
            kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0, "l2": 0.01}},
            kernel_constraint={"class_name": "MaxNorm", "config": {"max_value": 2, "axis": 0}},
        ),
        dense(
            "standalone",  # Keras 2.0-2.2: 'normal' meant a truncated normal
            kernel_initializer={
                "class_name": "VarianceScaling",
                "config": {"scale": 2.0, "mode": "fan_in", "distribution": "normal", "seed": 3},
            },
            bias_regularizer="l2",
            bias_constraint={"class_name": "NonNeg", "config": {}},
        ),
        dense(
            "tf_keras",  # tf_keras >= 2.13 objects, V2 class names
            kernel_initializer={
                "module": "keras.initializers",
                "class_name": "RandomNormalV2",
                "config": {"mean": 0.0, "stddev": 0.5, "seed": None},
                "registered_name": None,
            },
            kernel_regularizer={
                "module": "keras.regularizers",
                "class_name": "L2",
                "config": {"l2": 0.001},
                "registered_name": None,
            },
            kernel_constraint={"class_name": "RadialConstraint", "config": {}},
        ),
    ]
    k3 = translate(sequential(layers, [None, 4]), "2.1.6-tf")
    for rid in ("initializer-config", "regularizer-config", "constraint-config"):
        assert rid in k3.rules
    a = layer(k3, "tf_dialect")["config"]
    assert a["kernel_initializer"] == {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    assert a["bias_initializer"]["class_name"] == "Zeros"
    assert a["bias_initializer"]["config"] == {}
    assert a["kernel_regularizer"] == {
        "module": "keras.regularizers",
        "class_name": "L1L2",
        "config": {"l1": 0.0, "l2": 0.01},
        "registered_name": None,
    }
    assert a["kernel_constraint"]["class_name"] == "MaxNorm"
    assert a["kernel_constraint"]["config"] == {"max_value": 2, "axis": 0}
    b = layer(k3, "standalone")["config"]
    assert b["kernel_initializer"]["config"] == {
        "scale": 2.0,
        "mode": "fan_in",
        "distribution": "truncated_normal",
        "seed": 3,
    }
    assert b["bias_regularizer"]["class_name"] == "L2"
    assert b["bias_constraint"]["class_name"] == "NonNeg"
    c = layer(k3, "tf_keras")["config"]
    assert c["kernel_initializer"]["class_name"] == "RandomNormal"
    assert c["kernel_regularizer"]["config"] == {"l2": 0.001}
    assert c["kernel_constraint"] is None  # RadialConstraint: none in Keras 3, said in a note
    assert any("RadialConstraint" in n for n in k3.notes), k3.notes

    model = keras3_model(keras3, k3)
    lay = model.get_layer("standalone")
    assert isinstance(lay.kernel_initializer, keras3.initializers.VarianceScaling)
    assert lay.kernel_initializer.distribution == "truncated_normal"
    assert isinstance(model.get_layer("tf_dialect").kernel_regularizer, keras3.regularizers.L1L2)
    assert model.get_layer("tf_dialect").kernel_constraint.max_value == 2

    unknown = sequential([dense("mine", kernel_initializer="my_init")], [None, 4])
    message = refusal(unknown)
    assert "mine" in message and "'my_init'" in message and "custom_objects" in message


# --- removed arguments: dropped where Keras 2 computed the same, refused where not -----------

CONV_BASE = {
    "trainable": True,
    "dtype": "float32",
    "kernel_size": [3, 3],
    "strides": [1, 1],
    "padding": "same",
    "data_format": "channels_last",
    "dilation_rate": [1, 1],
    "activation": "linear",
    "use_bias": True,
    "bias_initializer": {"class_name": "Zeros", "config": {}},
    "bias_regularizer": None,
    "activity_regularizer": None,
    "bias_constraint": None,
}


def conv(cls: str, name: str, **extra: Any) -> dict[str, Any]:
    cfg = dict(CONV_BASE, name=name)
    if cls in ("Conv2DTranspose", "SeparableConv2D"):
        cfg.update(filters=4, groups=1, kernel_initializer=glorot(), kernel_regularizer=None)
        cfg["kernel_constraint"] = None
    if cls == "Conv2DTranspose":
        cfg["output_padding"] = None
    if cls in ("DepthwiseConv2D", "SeparableConv2D"):
        cfg.update(depth_multiplier=2, groups=1, depthwise_initializer=glorot())
        cfg.update(depthwise_regularizer=None, depthwise_constraint=None)
    if cls == "SeparableConv2D":
        cfg.update(pointwise_initializer=glorot(), pointwise_regularizer=None)
        cfg["pointwise_constraint"] = None
    if cls == "DepthwiseConv2D":  # tf.keras < 2.13 wrote the Conv base's arguments too
        cfg.update(filters=None, kernel_initializer=glorot(), kernel_regularizer=None)
        cfg["kernel_constraint"] = None
    cfg.update(extra)
    return {"class_name": cls, "config": cfg}


def batchnorm(name: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "axis": [3],
        "momentum": 0.99,
        "epsilon": 0.001,
        "center": True,
        "scale": True,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
        "moving_variance_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": None,
        "gamma_regularizer": None,
        "beta_constraint": None,
        "gamma_constraint": None,
        # tf.keras 1.x/2.x writes these
        "fused": None,
        "renorm": False,
        "renorm_clipping": None,
        "renorm_momentum": 0.99,
        "virtual_batch_size": None,
        "adjustment": None,
    }
    cfg.update(extra)
    return {"class_name": "BatchNormalization", "config": cfg}


def embedding(name: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "dtype": "float32",
        "input_dim": 20,
        "output_dim": 5,
        "embeddings_initializer": {
            "class_name": "RandomUniform",
            "config": {"minval": -0.05, "maxval": 0.05, "seed": None},
        },
        "embeddings_regularizer": None,
        "activity_regularizer": None,
        "embeddings_constraint": None,
        "mask_zero": False,
        "input_length": 7,
    }
    cfg.update(extra)
    return {"class_name": "Embedding", "config": cfg}


def simple(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {
        "class_name": cls,
        "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
    }


IMAGE = [None, 6, 6, 3]
SEQUENCE = [None, 5, 3]

# rule id -> (the Keras 2 layer with the argument at its neutral value or one Keras 3 computes
# the same way, the input shape, the keys that must be gone, the Keras 3 values expected, a
# note expected (or None), a Keras 2 layer that must be refused with (reason, way out), or None)
REMOVED: dict[str, tuple[Any, ...]] = {
    "dynamic-removed": (
        dense("d", dynamic=True),
        [None, 4],
        ("dynamic",),
        {"units": 3},
        "dynamic=True dropped",
        None,
    ),
    "random-generator-args-removed": (
        simple(
            "Dropout",
            "drop",
            rate=0.25,
            noise_shape=None,
            seed=None,
            force_generator=False,
            rng_type=None,
        ),
        [None, 4],
        ("force_generator", "rng_type"),
        {"rate": 0.25},
        None,
        None,
    ),
    "rnn-time-major-removed": (
        rnn("LSTM", "lstm", time_major=False),
        SEQUENCE,
        ("time_major",),
        {"units": 2},
        None,
        (rnn("LSTM", "lstm", time_major=True), "time_major=True", "Permute((2, 1))"),
    ),
    "rnn-implementation-ignored": (
        rnn("GRU", "gru", implementation=2, reset_after=True),
        SEQUENCE,
        ("implementation",),
        {"reset_after": True},
        None,
        None,
    ),
    "conv-transpose-groups-removed": (
        conv("Conv2DTranspose", "deconv"),
        IMAGE,
        ("groups",),
        {"filters": 4},
        None,
        (conv("Conv2DTranspose", "deconv", groups=2), "groups=2", "without groups"),
    ),
    "depthwise-separable-conv-args": (
        conv("DepthwiseConv2D", "dw"),
        IMAGE,
        ("groups", "filters", "kernel_initializer", "kernel_regularizer", "kernel_constraint"),
        {"depth_multiplier": 2},
        None,
        (conv("SeparableConv2D", "sep", groups=3), "groups=3", "without groups"),
    ),
    "batchnorm-args-removed": (
        batchnorm("bn", virtual_batch_size=2),
        IMAGE,
        (
            "fused",
            "renorm",
            "renorm_clipping",
            "renorm_momentum",
            "virtual_batch_size",
            "adjustment",
        ),
        {"axis": 3},
        "virtual_batch_size dropped",
        (batchnorm("bn", renorm=True), "renorm=True", "rebuild the layer without renorm"),
    ),
    "embedding-input-length-removed": (
        embedding("emb", sparse=False),
        [None, 7],
        ("input_length", "sparse"),
        {"input_dim": 20, "output_dim": 5},
        None,
        (embedding("emb", sparse=True), "sparse=True", "without sparse"),
    ),
    "spatial-dropout-args": (
        simple("SpatialDropout1D", "sdrop", rate=0.2, noise_shape=None, seed=None),
        SEQUENCE,
        ("trainable", "noise_shape"),
        {"rate": 0.2},
        None,
        None,
    ),
    "softmax-robust-masking-removed": (
        simple("Softmax", "soft", axis=[-1], robust_masking=True),
        [None, 4],
        ("robust_masking",),
        {"axis": -1},
        "robust_masking dropped",
        None,
    ),
}


@pytest.mark.parametrize("rule_id", sorted(REMOVED))
def test_removed_arguments_are_dropped_or_refused(rule_id: str, keras3: Any) -> None:
    entry, shape, gone, kept, note, refused = REMOVED[rule_id]
    assert RULES[rule_id].test.endswith("::test_removed_arguments_are_dropped_or_refused")
    name = entry["config"]["name"]
    k3 = translate(sequential([entry], shape))
    assert rule_id in k3.rules
    cfg = layer(k3, name)["config"]
    for key in gone:
        assert key not in cfg, key
    for key, value in kept.items():
        assert cfg[key] == value, key
    if note is not None:
        assert any(note in n and name in n for n in k3.notes), k3.notes
    # Keras 3 builds the layer from the translated config (it refuses any unknown keyword).
    model = keras3_model(keras3, k3)
    assert model.get_layer(name).built
    assert tuple(model.input_shape) == tuple(shape)

    if refused is not None:
        bad, reason, way_out = refused
        message = refusal(sequential([bad], shape))
        assert f"layer '{bad['config']['name']} (" in message, message
        assert reason in message and way_out in message, message


def test_batchnorm_several_axes_are_refused() -> None:
    # The other half of batchnorm-args-removed's axis: one axis becomes the int (above),
    # several axes are refused (Keras 3 normalizes over one).
    message = refusal(sequential([batchnorm("bn2", axis=[1, 3])], IMAGE))
    assert (
        "layer 'bn2 (BatchNormalization)'" in message
        and "[1, 3]" in message
        and "one axis" in message
    )


def test_depthwise_keeps_separable_filters(keras3: Any) -> None:
    # depthwise-separable-conv-args drops filters only for depthwise layers (they have none):
    # a SeparableConv2D keeps its filters and its depthwise/pointwise initializers.
    k3 = translate(sequential([conv("SeparableConv2D", "sep")], IMAGE))
    cfg = layer(k3, "sep")["config"]
    assert cfg["filters"] == 4 and "kernel_initializer" not in cfg
    assert cfg["pointwise_initializer"]["class_name"] == "GlorotUniform"
    sep = keras3_model(keras3, k3).get_layer("sep")
    assert tuple(sep.pointwise_kernel.shape) == (1, 1, 6, 4)


# --- inputs and Sequential configs ------------------------------------------------------------


def input_layer(name: str, shape: list[Any], **extra: Any) -> dict[str, Any]:
    cfg = {"batch_input_shape": shape, "dtype": "float32", "sparse": False, "name": name}
    cfg.update(extra)
    return {"name": name, "class_name": "InputLayer", "config": cfg, "inbound_nodes": []}


def node(*refs: Any) -> list[Any]:
    """One Keras 2 inbound node: [[layer, node index, tensor index, kwargs], ...]."""
    return [[r[0], r[1], r[2], r[3] if len(r) > 3 else {}] for r in refs]


def functional(
    layers: list[dict[str, Any]], inputs: list[Any], outputs: list[Any], *, cls: str = "Model"
) -> dict[str, Any]:
    return {
        "class_name": cls,
        "config": {
            "name": "model_1",
            "layers": layers,
            "input_layers": inputs,
            "output_layers": outputs,
        },
    }


def wired(entry: dict[str, Any], *nodes: list[Any]) -> dict[str, Any]:
    out = copy.deepcopy(entry)
    out["name"] = entry["config"]["name"]
    out["inbound_nodes"] = list(nodes)
    return out


def test_input_layer_and_batch_input_shape(keras3: Any) -> None:
    config = functional(
        [
            # Keras 2.0.8 (no ragged), an int input
            input_layer("tokens", [None, 7], dtype="int32"),
            # tf.keras 2.x: ragged, a type_spec, a policy dict as its dtype
            input_layer(
                "features",
                [None, 4],
                ragged=False,
                sparse=None,
                type_spec=None,
                dtype={"class_name": "Policy", "config": {"name": "float32"}},
            ),
            wired(embedding("emb", input_length=7), node(("tokens", 0, 0))),
            wired(simple("Flatten", "flat", data_format="channels_last"), node(("emb", 0, 0))),
            wired(
                simple("Concatenate", "cat", axis=-1),
                node(("flat", 0, 0), ("features", 0, 0)),
            ),
        ],
        [["tokens", 0, 0], ["features", 0, 0]],
        [["cat", 0, 0]],
    )
    k3 = translate(config, "2.3.0-tf")
    assert "input-layer-batch-shape" in k3.rules
    tokens = layer(k3, "tokens")["config"]
    assert tokens == {
        "batch_shape": [None, 7],
        "dtype": "int32",
        "sparse": False,
        "ragged": False,
        "name": "tokens",
        "optional": False,
    }
    features = layer(k3, "features")["config"]
    assert features["batch_shape"] == [None, 4] and features["dtype"] == "float32"
    assert features["sparse"] is False and features["ragged"] is False
    assert "type_spec" not in features and "batch_input_shape" not in features

    model = keras3_model(keras3, k3)
    assert [tuple(s) for s in model.input_shape] == [(None, 7), (None, 4)]
    assert model.inputs[0].dtype == "int32"
    assert tuple(model.output_shape) == (None, 7 * 5 + 4)

    ragged = functional([input_layer("r", [None, None], ragged=True)], [["r", 0, 0]], [["r", 0, 0]])
    message = refusal(ragged)
    assert "layer 'r (InputLayer)'" in message and "ragged" in message
    assert "re-save it dense" in message


def test_list_style_sequential_and_batch_input_shape(keras3: Any) -> None:
    # Keras 2.1.2 (as mastersthesis__gender_8.hdf5 of ../shared/realworld): the config is the
    # bare list of layers, the first carrying batch_input_shape.
    conv = {
        "class_name": "Conv2D",
        "config": dict(
            CONV_BASE,
            name="conv2d_1",
            filters=4,
            padding="valid",
            activation="relu",
            kernel_initializer=glorot("standalone"),
            kernel_regularizer=None,
            kernel_constraint=None,
            batch_input_shape=[None, 8, 6, 1],
        ),
    }
    config = {
        "class_name": "Sequential",
        "config": [
            conv,
            simple("Flatten", "flatten_1"),
            dense("dense_1", units=2),
        ],
    }
    k3 = translate(config, "2.1.2")
    assert {"list-style-sequential", "batch-input-shape"} <= set(k3.rules)
    assert k3.config["class_name"] == "Sequential"
    cfg = k3.config["config"]
    assert cfg["name"] == "sequential"
    first = cfg["layers"][0]
    assert first["class_name"] == "InputLayer"
    assert first["config"]["name"] == "conv2d_1_input"
    assert first["config"]["batch_shape"] == [None, 8, 6, 1]
    assert first["config"]["dtype"] == "float32"
    assert "batch_input_shape" not in layer(k3, "conv2d_1")["config"]
    assert cfg["build_input_shape"] == [None, 8, 6, 1]

    model = keras3_model(keras3, k3)
    assert tuple(model.input_shape) == (None, 8, 6, 1)
    # the kernel is what Keras 2 stored: no extra dimension from reading the batch shape
    assert tuple(model.get_layer("conv2d_1").kernel.shape) == (3, 3, 1, 4)
    assert tuple(model.output_shape) == (None, 2)

    # Keras 2.0 could give the input's dtype as input_dtype on the first layer.
    first_embedding = embedding("embedding_1", batch_input_shape=[None, 7], input_dtype="int32")
    k3 = translate({"class_name": "Sequential", "config": [first_embedding]}, "2.0.5")
    inp = k3.config["config"]["layers"][0]["config"]
    assert inp["dtype"] == "int32" and inp["batch_shape"] == [None, 7]
    assert "input_dtype" not in layer(k3, "embedding_1")["config"]
    assert keras3_model(keras3, k3).inputs[0].dtype == "int32"

    # A dict-style Sequential (Keras >= 2.2) is not list-style, but its input still moves.
    k3 = translate(sequential([dense("d", units=2)], [None, 4], name="seq"), "2.2.4")
    assert "list-style-sequential" not in k3.rules and "batch-input-shape" in k3.rules
    assert k3.config["config"]["name"] == "seq"
    assert k3.config["config"]["layers"][0]["config"]["batch_shape"] == [None, 4]


def test_real_list_style_sequential_file(realworld: Path) -> None:
    # The real Keras 2.1.2 file (a custom AttentionWithContext layer in it, so Keras 3 would
    # need its class to build it: only the translated config is checked here).
    from tests.keras3_helpers import translate_file

    path = realworld / "mastersthesis__gender_8.hdf5"
    if not path.is_file():
        pytest.skip(f"{path.name} is absent")
    k3, ck = translate_file(path)
    assert isinstance(ck.model_config["config"], list)  # the dialect under test
    assert {"list-style-sequential", "batch-input-shape"} <= set(k3.rules)
    first, second = k3.config["config"]["layers"][:2]
    assert first["class_name"] == "InputLayer"
    assert first["config"]["batch_shape"] == [None, 1107, 20, 1]
    assert first["config"]["name"] == f"{second['config']['name']}_input"
    assert "batch_input_shape" not in second["config"]
    assert k3.custom_objects == ("AttentionWithContext",)


def test_old_functional_and_node_formats(keras3: Any) -> None:
    # Standalone Keras 2.0.8 (as neurowriter__chupitos.h5): class "Model", names beside the
    # configs, four-element inbound refs; one Dense shared by two inputs (nodes 0 and 1), and
    # Keras 1-style three-element refs for the merge.
    shared = dense("shared", units=3)
    config = functional(
        [
            input_layer("a", [None, 4]),
            input_layer("b", [None, 4]),
            wired(shared, node(("a", 0, 0)), node(("b", 0, 0))),
            {
                "name": "add_1",
                "class_name": "Add",
                "config": {"name": "add_1", "trainable": True},
                "inbound_nodes": [[["shared", 0, 0], ["shared", 1, 0]]],
            },
        ],
        [["a", 0, 0], ["b", 0, 0]],
        [["add_1", 0, 0]],
    )
    k3 = translate(config, "2.0.8")
    assert "model-class-renamed" in k3.rules
    assert k3.config["class_name"] == "Functional"
    assert k3.config["module"] == "keras.src.models.functional"
    cfg = k3.config["config"]
    assert cfg["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert cfg["output_layers"] == ["add_1", 0, 0]
    entries = {e["name"]: e for e in cfg["layers"]}
    assert len(entries["shared"]["inbound_nodes"]) == 2
    assert k3.output_names == ("add_1",)

    model = keras3_model(keras3, k3)
    assert [lay.name for lay in model.layers] == ["a", "b", "shared", "add_1"]
    # The shared layer is applied to both inputs and the results added: check the wiring.
    w = model.get_layer("shared").get_weights()
    a = np.arange(8, dtype="float32").reshape(2, 4)
    b = np.ones((2, 4), dtype="float32")
    got = np.asarray(model.predict([a, b], verbose=0))
    want = (a @ w[0] + w[1]) + (b @ w[0] + w[1])
    # computed by TensorFlow vs numpy: float32 rounding differs in the last bits
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    # tf.keras >= 2.4 writes "Functional": nothing to rename.
    k3 = translate(dict(config, class_name="Functional"), "2.8.0")
    assert "model-class-renamed" not in k3.rules
    assert k3.config["class_name"] == "Functional"


# --- layer semantics --------------------------------------------------------------------------


def test_gru_without_reset_after_keeps_reset_before(keras3: Any) -> None:
    # Standalone Keras 2.1.2: GRU has no reset_after argument and applies the reset gate
    # before the recurrent matrix product, with one bias vector (3 * units).
    old = rnn("GRU", "gru_1", units=2, recurrent_activation="sigmoid")
    del old["config"]["dtype"]
    k3 = translate(sequential([old], SEQUENCE), "2.1.2")
    assert "gru-reset-after-default" in k3.rules
    assert layer(k3, "gru_1")["config"]["reset_after"] is False
    assert any("gru_1" in n and "reset_after=False" in n for n in k3.notes), k3.notes
    gru = keras3_model(keras3, k3).get_layer("gru_1")
    assert gru.cell.reset_after is False
    assert tuple(gru.cell.bias.shape) == (3 * 2,)  # the shape Keras 2.1.2 stored

    # tf.keras writes reset_after: kept as written, the rule does not apply.
    new = rnn("GRU", "gru_2", units=2, reset_after=True)
    k3 = translate(sequential([new], SEQUENCE), "2.8.0")
    assert "gru-reset-after-default" not in k3.rules
    assert layer(k3, "gru_2")["config"]["reset_after"] is True
    assert tuple(keras3_model(keras3, k3).get_layer("gru_2").cell.bias.shape) == (2, 3 * 2)


@pytest.mark.parametrize(
    ("alpha", "want"),
    [
        (0.1, 0.1),
        ({"type": "ndarray", "value": 0.2}, 0.2),  # Theano-era Keras 2.0: a 0-d array
        ([0.25], 0.25),  # a one-element array
        (None, 0.3),  # absent: Keras 2's default, written explicitly
    ],
)
def test_leaky_relu_alpha(alpha: Any, want: float, keras3: Any) -> None:
    entry = simple("LeakyReLU", "leaky")
    if alpha is not None:
        entry["config"]["alpha"] = alpha
    k3 = translate(sequential([entry], [None, 3]), "2.0.5")
    assert "leaky-relu-alpha-renamed" in k3.rules
    cfg = layer(k3, "leaky")["config"]
    assert "alpha" not in cfg and cfg["negative_slope"] == want
    model = keras3_model(keras3, k3)
    x = np.array([[-2.0, 0.0, 3.0]], dtype="float32")
    # one float32 multiplication by the slope: Keras computes it with its own rounding
    np.testing.assert_allclose(
        np.asarray(model.predict(x, verbose=0)), [[-2.0 * want, 0.0, 3.0]], rtol=1e-6
    )


def test_leaky_relu_alpha_that_is_no_number_is_refused() -> None:
    entry = simple("LeakyReLU", "leaky", alpha="fast")
    message = refusal(sequential([entry], [None, 3]))
    assert "layer 'leaky (LeakyReLU)'" in message and "'fast'" in message
    assert "re-save the layer" in message


def _attention_model(causal: bool) -> dict[str, Any]:
    return functional(
        [
            input_layer("q", [None, 4, 3]),
            input_layer("v", [None, 4, 3]),
            wired(
                simple("Attention", "att", use_scale=False, causal=causal, dropout=0.0),
                node(("q", 0, 0), ("v", 0, 0)),
            ),
        ],
        [["q", 0, 0], ["v", 0, 0]],
        [["att", 0, 0]],
    )


def test_attention_causal_becomes_a_call_argument(keras3: Any) -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, 3)).astype("float32")
    v = rng.standard_normal((2, 4, 3)).astype("float32")
    reference = keras3.layers.Attention(use_scale=False)
    results = {}
    for causal in (True, False):
        k3 = translate(_attention_model(causal), "2.3.0-tf")  # TF <= 2.4 wrote causal=
        assert "attention-causal-moved" in k3.rules
        entry = next(e for e in k3.config["config"]["layers"] if e["name"] == "att")
        assert "causal" not in entry["config"]
        kwargs = [ref[3] for n in entry["inbound_nodes"] for ref in n]
        assert all(k == ({"use_causal_mask": True} if causal else {}) for k in kwargs), kwargs
        model = keras3_model(keras3, k3)
        got = np.asarray(model.predict([q, v], verbose=0))
        want = np.asarray(reference([q, v], use_causal_mask=causal))
        # the same Keras 3 layer computing the same thing in two call paths
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        results[causal] = got
    assert not np.allclose(results[True], results[False])  # the mask changes the result


# --- removed classes and layers that cannot be carried ----------------------------------------


def _cudnn(cls: str, name: str, units: int) -> dict[str, Any]:
    # standalone Keras 2.2.4's CuDNNLSTM/CuDNNGRU config (no activations: cuDNN fixes them)
    cfg: dict[str, Any] = {
        "name": name,
        "trainable": True,
        "units": units,
        "kernel_initializer": glorot("standalone"),
        "recurrent_initializer": {
            "class_name": "Orthogonal",
            "config": {"gain": 1.0, "seed": None},
        },
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": None,
        "recurrent_regularizer": None,
        "bias_regularizer": None,
        "activity_regularizer": None,
        "kernel_constraint": None,
        "recurrent_constraint": None,
        "bias_constraint": None,
        "return_sequences": False,
        "return_state": False,
        "stateful": False,
        "go_backwards": False,
    }
    if cls == "CuDNNLSTM":
        cfg["unit_forget_bias"] = True
    return {"class_name": cls, "config": cfg}


@pytest.mark.parametrize(("cls", "gates"), [("CuDNNLSTM", 4), ("CuDNNGRU", 3)])
def test_cudnn_layers(cls: str, gates: int, keras3: Any, tf_keras: Any) -> None:
    units, features = 2, 3
    k3 = translate(sequential([_cudnn(cls, "rnn_1", units)], [None, 5, features]), "2.2.4")
    assert "cudnn-rnn-removed" in k3.rules
    obj = layer(k3, "rnn_1")
    target = cls[len("CuDNN") :]
    assert obj["class_name"] == target
    cfg = obj["config"]
    assert cfg["activation"] == "tanh" and cfg["recurrent_activation"] == "sigmoid"
    assert cfg["dropout"] == 0.0 and cfg["recurrent_dropout"] == 0.0 and cfg["use_bias"]
    if target == "GRU":
        assert cfg["reset_after"] is True
    assert any("rnn_1" in n and cls in n for n in k3.notes), k3.notes

    moves = sorted(k3.weights, key=lambda m: m.path)
    assert [m.transform for m in moves] == [
        f"cudnn_{target.lower()}_{v}" for v in ("kernel", "recurrent_kernel", "bias")
    ]
    # The Keras 2 weights of the CuDNN layer, and what tf_keras's own loader makes of them
    # when it loads them into the layer Keras 3 gets (its hdf5 CuDNN conversion).
    rng = np.random.default_rng(0)
    bias = 2 * gates * units  # cuDNN keeps an input and a recurrent bias per gate
    source = [
        rng.standard_normal((features, gates * units)).astype("float32"),
        rng.standard_normal((units, gates * units)).astype("float32"),
        rng.standard_normal((bias,)).astype("float32"),
    ]
    from tf_keras.src.saving.legacy import hdf5_format

    kwargs = {"reset_after": True} if target == "GRU" else {}
    k2layer = getattr(tf_keras.layers, target)(units, **kwargs)
    k2layer.build((None, 5, features))
    want = hdf5_format.preprocess_weights_for_loading(k2layer, list(source))
    model = keras3_model(keras3, k3)
    k3vars = model.get_layer("rnn_1").cell.get_weights()
    for move, w, var in zip(moves, want, k3vars, strict=True):
        got = apply_transform(move, [source[i] for i in move.sources])
        assert got.shape == var.shape == w.shape
        if move.transform == "cudnn_lstm_bias":  # one float32 addition, as tf_keras does
            np.testing.assert_array_equal(got, np.asarray(w, dtype="float32"))
        else:  # a reordering: bit for bit
            assert got.tobytes() == np.ascontiguousarray(w).tobytes(), move.path


def test_lambda_is_refused_with_the_way_out() -> None:
    lam = {
        "function": [
            "4wEAAAAAAAAAAQAAAAIAAABTAAAAcwgAAAB8AGQBGwBTACkCTukCAAAAqQApAdoBeHIBAAAA",
            None,
            None,
        ],
        "function_type": "lambda",
        "module": "__main__",
        "output_shape": None,
        "output_shape_type": "raw",
        "arguments": {},
        "trainable": True,
    }
    config = functional(
        [
            input_layer("x", [None, 4]),
            wired({"class_name": "Lambda", "config": dict(lam, name="halve")}, node(("x", 0, 0))),
            wired(dense("d", units=2), node(("halve", 0, 0))),
            wired({"class_name": "Lambda", "config": dict(lam, name="twice")}, node(("d", 0, 0))),
        ],
        [["x", 0, 0]],
        [["twice", 0, 0]],
    )
    message = refusal(config, "2.2.4")
    assert "layer 'halve (Lambda)'" in message and "Lambda layer" in message
    assert "layers refused: halve (Lambda), twice (Lambda)" in message
    assert "registered custom layer" in message and "then convert that file" in message
    assert RULES["lambda-refused"].test.endswith("::test_lambda_is_refused_with_the_way_out")


def test_theano_conv_kernels_are_flipped() -> None:
    conv2d = {
        "class_name": "Conv2D",
        "config": dict(
            CONV_BASE,
            name="conv2d_1",
            filters=4,
            kernel_initializer=glorot("standalone"),
            kernel_regularizer=None,
            kernel_constraint=None,
        ),
    }
    layers = [conv2d, simple("Flatten", "flatten_1"), dense("dense_1", units=2)]
    k3 = translate(
        {
            "class_name": "Sequential",
            "config": [
                dict(conv2d, config=dict(conv2d["config"], batch_input_shape=IMAGE)),
                *layers[1:],
            ],
        },
        "2.0.5",
        "theano",
    )
    assert "theano-kernels-flipped" in k3.rules
    by_layer = {(m.layer[-1], m.sources): m for m in k3.weights}
    kernel = by_layer[("conv2d_1", (0,))]
    assert kernel.transform == "theano_flip_kernel"
    assert by_layer[("conv2d_1", (1,))].transform is None  # the bias
    assert by_layer[("dense_1", (0,))].transform is None  # only convolutions convolve
    assert any("conv2d_1" in n and "Theano" in n for n in k3.notes), k3.notes
    # Keras 2's conv_utils.convert_kernel: every spatial axis reversed, channels untouched.
    k = np.arange(3 * 3 * 3 * 4, dtype="float32").reshape(3, 3, 3, 4)
    got = apply_transform(kernel, [k])
    assert got.tobytes() == np.ascontiguousarray(k[::-1, ::-1, :, :]).tobytes()
    assert isinstance(kernel, WeightMove)

    # The same model from TensorFlow: nothing flipped.
    same = {
        "class_name": "Sequential",
        "config": copy.deepcopy(
            [dict(conv2d, config=dict(conv2d["config"], batch_input_shape=IMAGE)), *layers[1:]]
        ),
    }
    k3 = translate(same, "2.0.5", "tensorflow")
    assert "theano-kernels-flipped" not in k3.rules
    assert all(m.transform is None for m in k3.weights)

    # Theano depthwise/separable kernels have no defined conversion: refused.
    sep = conv("SeparableConv2D", "sep")
    message = refusal(sequential([sep], IMAGE), "2.0.5", "theano")
    assert "layer 'sep (SeparableConv2D)'" in message and "Theano" in message
    assert "re-save it with TensorFlow" in message
