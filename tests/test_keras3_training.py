"""Keras 2 training state → Keras 3: compile config, optimizer config, optimizer variables.

Each rule of :mod:`ckptfix.keras3_training` has a test named after the Keras 2 → 3 change it
covers. The data-only tests need no TensorFlow; the ``tf`` ones check the tables against the
installed Keras 3 (its optimizers' variable order, its schedules) and tf_keras.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from ckptfix import keras3_training as kt
from ckptfix.convert import read_checkpoint
from tests.conftest import FIXTURES

MIG = FIXTURES / "keras2_to_3"
OPT_CASES = sorted(p.name for p in MIG.glob("opt_*") if (p / "model.h5").exists())


def compile_of(training_config: dict[str, Any], outputs=("out",), version="2.21.0"):
    return kt.translate_training_config(
        training_config, output_names=list(outputs), keras_version=version
    )


ADAM_NEW = {
    "class_name": "Custom>Adam",
    "config": {
        "name": "Adam",
        "weight_decay": None,
        "clipnorm": None,
        "global_clipnorm": None,
        "clipvalue": None,
        "use_ema": False,
        "ema_momentum": 0.99,
        "ema_overwrite_frequency": None,
        "jit_compile": False,
        "is_legacy_optimizer": False,
        "learning_rate": 0.0010000000474974513,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        "amsgrad": False,
    },
}


# --- losses and metrics -------------------------------------------------------------------


def test_string_losses_keep_names_keras3_knows() -> None:
    for k2, k3 in [
        ("mse", "mse"),
        ("mean_squared_error", "mean_squared_error"),
        ("MAE", "mae"),
        ("logcosh", "log_cosh"),
        ("kullback_leibler_divergence", "kl_divergence"),
        ("categorical_crossentropy", "categorical_crossentropy"),
    ]:
        r = compile_of({"loss": k2, "optimizer_config": ADAM_NEW})
        assert r.compile_config is not None and r.compile_config["loss"] == k3, k2


def test_tf_keras_loss_object_keeps_its_arguments_with_keras3_reduction() -> None:
    loss = {
        "class_name": "CategoricalCrossentropy",
        "config": {
            "reduction": "auto",
            "name": "categorical_crossentropy",
            "from_logits": False,
            "label_smoothing": 0.1,
            "axis": -1,
            "fn": "categorical_crossentropy",
        },
    }
    r = compile_of({"loss": loss, "optimizer_config": ADAM_NEW})
    got = r.compile_config["loss"]
    assert got["module"] == "keras.losses" and got["class_name"] == "CategoricalCrossentropy"
    assert got["config"]["label_smoothing"] == 0.1
    assert got["config"]["reduction"] == "sum_over_batch_size"  # Keras 3 has no "auto"
    assert "fn" not in got["config"]


def test_tf_keras_compiled_metrics_keep_function_and_name_per_output() -> None:
    # tf_keras saves compiled metrics: one list per output, names prefixed by the output.
    metrics = [
        [
            {
                "class_name": "MeanMetricWrapper",
                "config": {"name": "a_acc", "dtype": "float32", "fn": "categorical_accuracy"},
            }
        ],
        [
            {
                "class_name": "MeanMetricWrapper",
                "config": {"name": "b_mae", "dtype": "float32", "fn": "mean_absolute_error"},
            }
        ],
    ]
    r = compile_of(
        {
            "loss": {"a": "categorical_crossentropy", "b": "mse"},
            "metrics": metrics,
            "loss_weights": {"a": 1.0, "b": 0.5},
            "optimizer_config": ADAM_NEW,
        },
        outputs=("a", "b"),
    )
    cc = r.compile_config
    assert cc["loss"] == {"a": "categorical_crossentropy", "b": "mse"}
    assert cc["loss_weights"] == {"a": 1.0, "b": 0.5}
    (acc,) = cc["metrics"]["a"]
    assert (acc["class_name"], acc["config"]["name"]) == ("CategoricalAccuracy", "acc")
    (mae,) = cc["metrics"]["b"]
    assert (mae["class_name"], mae["config"]["name"]) == ("MeanAbsoluteError", "mae")


def test_acc_means_what_keras2_chose_from_the_loss() -> None:
    # Keras 2 picked binary accuracy for binary_crossentropy whatever the output width; Keras 3
    # picks by shape (categorical for a multi-label output): pin Keras 2's choice.
    r = compile_of(
        {"loss": "binary_crossentropy", "metrics": ["acc"], "optimizer_config": ADAM_NEW}
    )
    (m,) = r.compile_config["metrics"]
    assert (m["class_name"], m["config"]["name"]) == ("BinaryAccuracy", "acc")
    r = compile_of({"loss": "mse", "metrics": ["accuracy"], "optimizer_config": ADAM_NEW})
    assert r.compile_config["metrics"] == ["accuracy"]  # shape-based in both


def test_list_losses_and_weights_become_dicts_by_output_name() -> None:
    r = compile_of(
        {
            "loss": ["categorical_crossentropy", "mse"],
            "loss_weights": [1.0, 0.5],
            "metrics": [["acc"], ["mae"]],
            "optimizer_config": ADAM_NEW,
        },
        outputs=("label", "score"),
    )
    cc = r.compile_config
    assert cc["loss"] == {"label": "categorical_crossentropy", "score": "mse"}
    assert cc["loss_weights"] == {"label": 1.0, "score": 0.5}
    assert cc["metrics"]["label"][0]["class_name"] == "CategoricalAccuracy"
    assert cc["metrics"]["score"][0]["class_name"] == "MeanAbsoluteError"


def test_weighted_metrics_are_translated_like_metrics() -> None:
    r = compile_of({"loss": "mse", "weighted_metrics": ["mae"], "optimizer_config": ADAM_NEW})
    (m,) = r.compile_config["weighted_metrics"]
    assert (m["class_name"], m["config"]["name"]) == ("MeanAbsoluteError", "mae")


def test_sample_weight_mode_is_gone_from_keras3_and_said() -> None:
    r = compile_of({"loss": "mse", "sample_weight_mode": "temporal", "optimizer_config": ADAM_NEW})
    assert "sample_weight_mode" not in r.compile_config
    assert any("sample_weight_mode" in n for n in r.notes)


def test_unknown_loss_leaves_the_model_uncompiled_and_says_so() -> None:
    r = compile_of({"loss": "my_focal_loss", "optimizer_config": ADAM_NEW})
    assert r.compile_config is None
    assert r.warnings == (
        "training config not carried (loss 'my_focal_loss' is not a Keras 3 loss); "
        "compile the model",
    )


def test_custom_metric_is_dropped_with_a_warning_not_silently() -> None:
    r = compile_of(
        {
            "loss": "mse",
            "metrics": ["mae", {"class_name": "F2", "config": {"name": "f2"}}],
            "optimizer_config": ADAM_NEW,
        }
    )
    assert [m["class_name"] for m in r.compile_config["metrics"]] == ["MeanAbsoluteError"]
    assert r.warnings == ("metric 'f2' not carried: class F2 is not a Keras 3 built-in",)


def test_hinge_before_keras_2_3_took_labels_as_given() -> None:
    r = compile_of(
        {"loss": "hinge", "optimizer_config": {"class_name": "SGD", "config": {}}}, version="2.2.4"
    )
    assert r.compile_config["loss"] == "hinge"
    assert any("0/1 labels" in w for w in r.warnings)
    assert not compile_of({"loss": "hinge", "optimizer_config": ADAM_NEW}).warnings


def test_cosine_proximity_before_keras_2_0_9_took_the_mean() -> None:
    old = compile_of(
        {"loss": "cosine_proximity", "optimizer_config": {"class_name": "SGD", "config": {}}},
        version="2.0.8",
    )
    assert old.compile_config["loss"] == "cosine_similarity"
    assert any("mean over the last axis" in w for w in old.warnings)
    new = compile_of(
        {"loss": "cosine_proximity", "optimizer_config": {"class_name": "SGD", "config": {}}},
        version="2.2.4",
    )
    assert not new.warnings


# --- the optimizer config -----------------------------------------------------------------


def test_tf_keras_new_optimizer_drops_arguments_keras3_lacks() -> None:
    opt = kt.translate_optimizer(ADAM_NEW, "2.21.0")
    assert (opt.class_name, opt.source) == ("Adam", kt.SOURCE_NEW)
    assert "jit_compile" not in opt.config and "is_legacy_optimizer" not in opt.config
    assert opt.config["learning_rate"] == 0.0010000000474974513
    assert opt.serialized()["module"] == "keras.optimizers"


def test_lr_becomes_learning_rate() -> None:
    opt = kt.translate_optimizer(
        {
            "class_name": "SGD",
            "config": {"lr": 0.01, "momentum": 0.9, "decay": 0.0, "nesterov": False},
        },
        "2.1.2",
    )
    assert opt.source == kt.SOURCE_STANDALONE
    assert opt.config["learning_rate"] == 0.01 and "lr" not in opt.config
    assert "decay" not in opt.config


def test_decay_becomes_an_inverse_time_decay_schedule() -> None:
    opt = kt.translate_optimizer(
        {
            "class_name": "Adam",
            "config": {
                "name": "Adam",
                "learning_rate": 0.01,
                "decay": 0.05,
                "beta_1": 0.9,
                "beta_2": 0.999,
                "epsilon": 1e-7,
                "amsgrad": False,
            },
        },
        "2.21.0",
    )
    lr = opt.config["learning_rate"]
    assert lr["class_name"] == "InverseTimeDecay"
    assert lr["config"] == {
        "initial_learning_rate": 0.01,
        "decay_steps": 1,
        "decay_rate": 0.05,
        "staircase": False,
        "name": "InverseTimeDecay",
    }
    assert opt.schedule and kt.keras3_layout(opt).header == ("iterations",)


def test_a_schedule_without_a_name_gets_its_class_name() -> None:
    """tf_keras writes a schedule's name as None; Keras 3 refuses None ("Argument `name` must
    be a string"), so the translation gives the default Keras 3 would (the class name)."""
    schedule = {
        "module": "keras.optimizers.schedules",
        "class_name": "ExponentialDecay",
        "config": {
            "initial_learning_rate": 0.01,
            "decay_steps": 2,
            "decay_rate": 0.5,
            "staircase": False,
            "name": None,
        },
        "registered_name": None,
    }
    opt = kt.translate_optimizer(
        {"class_name": "Adam", "config": {"name": "Adam", "learning_rate": schedule}}, "2.21.0"
    )
    assert opt.config["learning_rate"]["config"]["name"] == "ExponentialDecay"


def test_standalone_epsilon_default_follows_the_writing_version() -> None:
    old = kt.translate_optimizer({"class_name": "Adam", "config": {"lr": 0.001}}, "2.0.5")
    assert old.config["epsilon"] == 1e-8  # Keras <= 2.1.2's default, not Keras 3's 1e-7
    new = kt.translate_optimizer({"class_name": "Adam", "config": {"lr": 0.001}}, "2.2.4")
    assert new.config["epsilon"] == 1e-7
    ada = kt.translate_optimizer({"class_name": "Adagrad", "config": {}}, "2.2.4")
    assert ada.config["initial_accumulator_value"] == 0.0  # Keras 2 started at 0, Keras 3 at 0.1


def test_epsilon_inside_the_root_in_keras3_is_said_for_legacy_adagrad_and_rmsprop() -> None:
    for cls, cfg in [("Adagrad", {}), ("RMSprop", {"momentum": 0.0})]:
        opt = kt.translate_optimizer(
            {"class_name": cls, "config": {"learning_rate": 0.01, **cfg}}, "2.21.0"
        )
        assert opt.source == kt.SOURCE_LEGACY
        assert any("sqrt(v + epsilon)" in w for w in opt.warnings), cls
    # With momentum, legacy RMSprop ran ApplyRMSProp, which already divides by sqrt(v + eps).
    opt = kt.translate_optimizer(
        {"class_name": "RMSprop", "config": {"learning_rate": 0.01, "momentum": 0.5}}, "2.21.0"
    )
    assert not opt.warnings


def test_keras2_nadam_schedule_differs_so_its_state_is_refused() -> None:
    opt = kt.translate_optimizer(
        {"class_name": "Nadam", "config": {"learning_rate": 0.002, "decay": 0.004}}, "2.21.0"
    )
    assert opt.state_refusal is not None and "0.96**(0.004 t)" in opt.state_refusal
    assert "decay" not in opt.config and not isinstance(opt.config["learning_rate"], dict)


def test_an_optimizer_keras3_lacks_is_refused() -> None:
    for cfg in [
        {"class_name": "TFOptimizer", "config": {}},
        {"class_name": "LossScaleOptimizer", "config": {"inner_optimizer": {}}},
        {"class_name": "Adam", "config": {"lr": 0.1, "some_new_argument": 3}},
    ]:
        with pytest.raises(kt.Untranslatable):
            kt.translate_optimizer(cfg, "2.21.0")


def test_u_product_is_keras3_nadams_running_product() -> None:
    # Keras 3: u_product = u_product * beta_1 * (1 - 0.5 * 0.96**t), t = 1..iterations.
    want = np.float32(1.0)
    for t in range(1, 6):
        want = np.float32(np.float32(want * np.float32(0.9)) * np.float32(1 - 0.5 * 0.96**t))
    assert np.isclose(kt.u_product(5, 0.9), want, rtol=1e-6)
    assert kt.u_product(0, 0.9) == np.float32(1.0)
    # Long runs reach a fixed point (0 or a subnormal) and the loop stops there.
    assert kt.u_product(10**9, 0.9) == kt.u_product(20_000, 0.9)


@pytest.mark.tf
def test_u_product_matches_keras3_nadam_after_real_steps(keras3: Any) -> None:
    L = keras3.layers
    inp = keras3.Input((2,))
    model = keras3.Model(inp, L.Dense(1)(inp))
    model.compile(keras3.optimizers.Nadam(0.01), "mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    for _ in range(7):
        model.train_on_batch(x, y)
    got = float(model.optimizer._u_product.numpy())
    assert np.isclose(float(kt.u_product(7, 0.9)), got, rtol=1e-6)


# --- optimizer variable layouts -----------------------------------------------------------


@pytest.mark.parametrize(
    "cls,kwargs",
    [
        ("SGD", {"momentum": 0.9}),
        ("SGD", {}),
        ("Adam", {}),
        ("Adam", {"amsgrad": True}),
        ("RMSprop", {"momentum": 0.5, "centered": True}),
        ("RMSprop", {}),
        ("Adagrad", {}),
        ("Adadelta", {}),
        ("Adamax", {}),
        ("Nadam", {}),
        ("Ftrl", {}),
        ("Adam", {"use_ema": True}),
    ],
)
@pytest.mark.tf
def test_keras3_layout_is_what_keras3_saves(keras3: Any, cls: str, kwargs: dict) -> None:
    """keras3_layout against the installed Keras 3: variable names, order and shapes."""
    L = keras3.layers
    inp = keras3.Input((3,))
    model = keras3.Model(inp, L.Dense(1, name="b")(L.Dense(2, name="a")(inp)))
    optimizer = getattr(keras3.optimizers, cls)(**kwargs)
    model.compile(optimizer, "mse")
    optimizer.build(model.trainable_variables)
    opt = kt.translate_optimizer(
        {"class_name": cls, "config": {**kwargs, "learning_rate": 0.1}}, "2.21.0"
    )
    layout = kt.keras3_layout(opt)
    # Nadam's u_product is an unnamed Variable ("variable", "variable_1", ...: a global count)
    names = [
        "variable" if v.path.split("/")[-1].startswith("variable") else v.path.split("/")[-1]
        for v in optimizer.variables
    ]
    trainable = [v.path.replace("/", "_") for v in model.trainable_variables]
    want = ["iteration", "learning_rate"]
    for kinds in layout.passes:
        want += [f"{t}_{k}" for t in trainable for k in kinds]
    want += ["variable" for _ in layout.tail]
    assert names == want


@pytest.mark.tf
def test_inverse_time_decay_is_keras2_decay(keras3: Any, tf_keras: Any) -> None:
    """Keras 3's InverseTimeDecay(lr, 1, decay) at step t is legacy OptimizerV2's decayed lr."""
    opt = kt.translate_optimizer(
        {"class_name": "SGD", "config": {"learning_rate": 0.1, "decay": 0.01}}, "2.21.0"
    )
    cfg = opt.config["learning_rate"]["config"]
    schedule = keras3.optimizers.schedules.InverseTimeDecay(**cfg)
    legacy = tf_keras.optimizers.legacy.SGD(learning_rate=0.1, decay=0.01)
    for t in (0, 1, 7, 1000):
        legacy.iterations.assign(t)
        want = float(legacy._decayed_lr("float32"))
        assert abs(float(schedule(t)) - want) <= 1e-7 * want


# --- optimizer state from the three Keras 2 layouts ---------------------------------------


def _model(ck):
    from ckptfix import keras3_migration

    return keras3_migration.translate(ck)


@pytest.mark.parametrize("case", OPT_CASES)
def test_optimizer_state_maps_every_slot_to_its_variable(case: str) -> None:
    """Each Keras 3 slot is the stored Keras 2 slot of the same variable (names and shapes)."""
    ck = read_checkpoint(MIG / case / "model.h5")
    tr = kt.translate_training_config(
        ck.training_config, output_names=["head"], keras_version=ck.keras_version
    )
    model = _model(ck)
    plan = kt.plan_optimizer_state(ck.template_optimizer, tr.optimizer, ck.subject, model)
    manifest = json.loads((MIG / case / "manifest.json").read_text())
    if "nadam_legacy" in case:
        assert not plan.kept and "0.96**(0.004 t)" in str(plan.refusal)
        return
    assert plan.kept, plan.refusal
    layout = kt.keras3_layout(tr.optimizer)
    assert len(plan.variables) == layout.size(len(model.trainable_order))
    it = plan.variables[0]
    assert it.source is not None and it.source.location.path.endswith(("iteration:0", "iter:0"))
    with h5py.File(MIG / case / "model.h5") as f:
        assert int(f[it.source.location.path][()]) == manifest["optimizer"]["iterations"]
    slots = [v for v in plan.variables if v.source is not None][1:]
    for v in slots:  # "momentum of e1/kernel" <- Adam/m/e1/kernel:0 or Adam/e1/kernel/m:0
        kind, _, var = v.name.partition(" of ")
        stored = v.source.location.path
        assert var in stored, (v.name, stored)


def _standalone_copy(src: Path, dst: Path, *, cls: str, version: str, dummy_vhats: bool) -> None:
    """A legacy-layout file rewritten as standalone Keras wrote it: positional names.

    Legacy OptimizerV2 and standalone Keras both store ``[iterations] + ms + vs`` pass by
    pass; standalone Keras named the slots ``training/<Opt>/Variable:<i>`` and, from 2.1.3,
    appended one ``(1,)``-shaped dummy ``vhat`` per variable when amsgrad was off.
    """
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        og = f["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in og.attrs["weight_names"]]
        values = [og[n][()] for n in names]
        del f["optimizer_weights"]
        og = f.create_group("optimizer_weights")
        new = [f"{cls}/iterations:0"] + [
            f"training/{cls}/Variable:{i}" for i in range(len(values) - 1)
        ]
        if dummy_vhats:
            n = (len(values) - 1) // 2
            k = len(new) - 1
            new += [f"training/{cls}/Variable:{k + i}" for i in range(n)]
            values += [np.zeros((1,), np.float32) for _ in range(n)]
        for name, value in zip(new, values, strict=True):
            og.create_dataset(name, data=value)
        og.attrs["weight_names"] = [n.encode() for n in new]
        f.attrs["keras_version"] = version.encode()
        tc = json.loads(f.attrs["training_config"])
        cfg = dict(tc["optimizer_config"]["config"])
        cfg["lr"] = cfg.pop("learning_rate")
        tc["optimizer_config"] = {"class_name": cls, "config": cfg}
        f.attrs["training_config"] = json.dumps(tc).encode()


@pytest.mark.parametrize("version,dummies", [("2.1.2", False), ("2.2.4", True)])
def test_standalone_keras_positional_slots_map_like_named_ones(
    tmp_path: Path, version: str, dummies: bool
) -> None:
    """Standalone Keras 2.0–2.3 slots (``training/Adam/Variable:N``) are mapped by position."""
    legacy = MIG / "opt_adam_legacy" / "model.h5"
    pos = tmp_path / "standalone.h5"
    _standalone_copy(legacy, pos, cls="Adam", version=version, dummy_vhats=dummies)
    plans = []
    for path in (legacy, pos):
        ck = read_checkpoint(path)
        tr = kt.translate_training_config(
            ck.training_config, output_names=["head"], keras_version=ck.keras_version
        )
        assert tr.optimizer.source == (kt.SOURCE_LEGACY if path == legacy else kt.SOURCE_STANDALONE)
        plans.append(
            kt.plan_optimizer_state(ck.template_optimizer, tr.optimizer, ck.subject, _model(ck))
        )
    named, positional = plans
    assert named.kept and positional.kept, positional.refusal

    def values(plan, path):
        with h5py.File(path) as f:
            return [f[v.source.location.path][()].tobytes() for v in plan.variables if v.source]

    assert values(named, legacy) == values(positional, pos)


def test_a_stored_order_that_does_not_fit_is_refused_not_guessed(tmp_path: Path) -> None:
    src = MIG / "opt_adam_legacy" / "model.h5"
    bad = tmp_path / "swapped.h5"
    shutil.copyfile(src, bad)
    with h5py.File(bad, "r+") as f:  # swap two slot names: the stored order no longer fits
        og = f["optimizer_weights"]
        names = list(og.attrs["weight_names"])
        names[1], names[2] = names[2], names[1]
        og.attrs["weight_names"] = names
    ck = read_checkpoint(bad)
    tr = kt.translate_training_config(
        ck.training_config, output_names=["head"], keras_version=ck.keras_version
    )
    plan = kt.plan_optimizer_state(ck.template_optimizer, tr.optimizer, ck.subject, _model(ck))
    assert not plan.kept
    assert "stored order" in str(plan.refusal) or "belongs to" in str(plan.refusal)


def test_standalone_sgd_without_momentum_keeps_iterations_only(realworld: Path) -> None:
    """mastersthesis (Keras 2.1.2): SGD(momentum=0) stored moments Keras 3 does not keep."""
    ck = read_checkpoint(realworld / "mastersthesis__gender_8.hdf5")
    tr = kt.translate_training_config(
        ck.training_config, output_names=["dense_1"], keras_version=ck.keras_version
    )
    opt = tr.optimizer
    assert (opt.class_name, opt.source, opt.config["momentum"]) == ("SGD", "standalone", 0.0)
    assert kt.keras3_layout(opt).passes == ()
    assert tr.compile_config["loss"] == "categorical_crossentropy"
    (acc,) = tr.compile_config["metrics"]
    assert acc["class_name"] == "CategoricalAccuracy" and acc["config"]["name"] == "accuracy"
