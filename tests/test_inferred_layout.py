"""Weights-only files convert by default, with the layout inferred from weight names.

What is proven here, with real tf_keras models wrapped in the fixtures' re-creation of
``multi_gpu_model`` and Keras's own positional ``load_weights`` as the judge:

- a custom layer that creates a non-trainable weight before a trainable one of the same shape
  converts *correctly* by inference, because Keras 2 stores and loads every layer's weights
  trainable first whatever the creation order; the line names the layer all the same;
- a layer holding only non-trainable weights (a custom state-only layer, Keras's
  ``Normalization``) cannot be placed from names: the weights-only file lists it after every
  trainable weight. Unchecked, that order loads *silently wrong* into the template (proven
  below with Keras's loader); inference refuses it, and ``reference=`` makes it exact;
- the command line: one line says the layout was inferred and how to make it exact;
  ``--exact`` refuses; ``--infer`` (deprecated) changes nothing; ``inspect`` puts the
  ``--reference`` command first; ``--help`` says all this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import ckptfix
from ckptfix.cli import app
from tests.conftest import FIXTURES, ROOT, assert_predictions_close, fixture_module, sha256

DENSE_BN = FIXTURES / "keras2" / "dense_bn"
NESTED = FIXTURES / "keras2" / "nested"
FROZEN = FIXTURES / "keras2" / "frozen"
FEATURES = 4


# --- templates with unusual non-trainable weights ------------------------------------------------


def _layers(keras: Any) -> dict[str, type]:
    """Custom tf_keras layers, defined against the given Keras module."""

    class StateFirst(keras.layers.Layer):
        """Creates a non-trainable weight, then a trainable one of the same shape."""

        def build(self, input_shape: Any) -> None:
            n = int(input_shape[-1])
            self.state = self.add_weight(
                name="state", shape=(n,), initializer="random_normal", trainable=False
            )
            self.scale = self.add_weight(
                name="scale", shape=(n,), initializer="random_normal", trainable=True
            )

        def call(self, x: Any) -> Any:
            return x * self.scale + self.state

    class FixedProjection(keras.layers.Layer):
        """Only non-trainable weights, shaped like a Dense layer's (a fixed random projection)."""

        def build(self, input_shape: Any) -> None:
            n = int(input_shape[-1])
            self.kernel = self.add_weight(
                name="kernel", shape=(n, n), initializer="orthogonal", trainable=False
            )
            self.bias = self.add_weight(
                name="bias", shape=(n,), initializer="random_normal", trainable=False
            )

        def call(self, x: Any) -> Any:
            return x @ self.kernel + self.bias

    return {"StateFirst": StateFirst, "FixedProjection": FixedProjection}


def build(kind: str, keras: Any) -> Any:
    """A template: ``state_first``, ``state_only``, ``normalization``, ``adapted_first``."""
    keras.backend.clear_session()
    L, custom = keras.layers, _layers(keras)
    inp = keras.Input((FEATURES,))
    if kind == "state_first":  # dense -> custom (state made first) -> dense
        h = L.Dense(FEATURES, name="dense")(inp)
        h = custom["StateFirst"](name="state_first")(h)
        out = L.Dense(FEATURES, name="head")(h)
    elif kind == "state_only":  # a fixed projection before the (trainable) output layer
        h = custom["FixedProjection"](name="projection")(inp)
        out = L.Dense(FEATURES, name="head")(h)
    elif kind in ("normalization", "adapted_first"):
        # Keras's own state-only layer; the output layer holds no weights. Adapted before it is
        # called, its weights are created outside its name scope: "mean:0", not
        # "normalization/mean:0".
        norm = L.Normalization(name="normalization")
        data = np.random.default_rng(0).normal(size=(64, FEATURES)).astype("float32")
        if kind == "adapted_first":
            norm.adapt(data)
        h = norm(inp)
        if kind == "normalization":
            norm.adapt(data)
        h = L.Dense(FEATURES, name="hidden")(h)
        h = L.Dense(FEATURES, name="head")(h)
        out = L.Activation("tanh", name="out")(h)
    else:
        raise ValueError(kind)
    return keras.Model(inp, out, name="template")


@pytest.fixture(scope="module")
def made(tf: Any, tf_keras: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Per kind: the trained-looking template, its parallel weights file, its JSON config."""
    mgm = fixture_module("make_fixtures.py").multi_gpu_model
    folder = tmp_path_factory.mktemp("inferred")
    out: dict[str, Any] = {}
    for kind in ("state_first", "state_only", "normalization", "adapted_first"):
        template = build(kind, tf_keras)
        rng = np.random.default_rng(7)  # distinct values everywhere: a swap cannot go unseen
        # (positive, so that Normalization's variance is one)
        template.set_weights(
            [(0.1 + rng.random(w.shape)).astype(w.dtype) for w in template.get_weights()]
        )
        parallel = mgm(template, 2, tf, tf_keras)
        src = folder / f"{kind}_parallel.h5"
        parallel.save_weights(str(src))  # what ModelCheckpoint(save_weights_only=True) writes
        ref = folder / f"{kind}_template.json"
        ref.write_text(template.to_json())
        saved = folder / f"{kind}_template.h5"
        template.save_weights(str(saved))
        x = np.random.default_rng(1).normal(size=(6, FEATURES)).astype("float32")
        out[kind] = {"template": template, "src": src, "reference": ref, "saved": saved, "x": x}
    return out


def nested_weight_names(path: Path, template: str = "template") -> list[str]:
    with h5py.File(path, "r") as f:
        return [text(n) for n in f[template].attrs["weight_names"]]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_same_model(loaded: Any, template: Any, x: np.ndarray) -> None:
    """Bit for bit the template's arrays, and its predictions (same process, tolerance)."""
    got, want = loaded.get_weights(), template.get_weights()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape and g.tobytes() == w.tobytes()
    assert_predictions_close(loaded.predict(x, verbose=0), template.predict(x, verbose=0))


@pytest.mark.tf
def test_state_created_first_converts_correctly_and_is_named(made, tf_keras, tmp_path):
    m = made["state_first"]
    # Keras 2 stores the layer's trainable weight first, though the layer created state first
    names = nested_weight_names(m["src"])
    assert names.index("state_first/scale:0") < names.index("state_first/state:0")
    before = sha256(m["src"])
    out = tmp_path / "single.h5"
    r = ckptfix.convert_checkpoint(m["src"], out)
    assert r.layout == "inferred" and len(r.warnings) == 1
    assert "layout inferred from weight names" in r.warnings[0]
    assert r.warnings[0].endswith("as Keras stores and loads them: state_first")
    fresh = build("state_first", tf_keras)
    fresh.load_weights(str(out))  # positional, as users load it
    assert_same_model(fresh, m["template"], m["x"])
    exact = tmp_path / "exact.h5"
    r = ckptfix.convert_checkpoint(m["src"], exact, reference=m["reference"])
    assert (r.layout, r.layout_source, r.warnings) == ("exact", "reference", ())
    fresh = build("state_first", tf_keras)
    fresh.load_weights(str(exact))
    assert_same_model(fresh, m["template"], m["x"])
    assert sha256(m["src"]) == before


@pytest.mark.tf
def test_layer_with_only_non_trainable_weights_is_refused(made, tf_keras, tmp_path):
    m = made["state_only"]
    # The weights-only file lists the projection after the head: names alone say [head, projection]
    assert nested_weight_names(m["src"]) == [
        "head/kernel:0",
        "head/bias:0",
        "projection/kernel:0",
        "projection/bias:0",
    ]
    out = tmp_path / "single.h5"
    with pytest.raises(ckptfix.LayoutError) as info:
        ckptfix.convert_checkpoint(m["src"], out)
    message = str(info.value)
    assert "layer 'projection' holds only non-trainable weights" in message
    assert "listed after the output layer 'head'" in message and "reference=" in message
    assert not out.exists()

    # The exact conversion, and what the names' order would have given: Keras's positional
    # loader takes that too, without a word, and the model is wrong.
    exact = tmp_path / "exact.h5"
    r = ckptfix.convert_checkpoint(m["src"], exact, reference=m["reference"])
    assert (r.layout, r.layout_source) == ("exact", "reference")
    fresh = build("state_only", tf_keras)
    fresh.load_weights(str(exact))
    assert_same_model(fresh, m["template"], m["x"])
    by_names = tmp_path / "by_names.h5"
    by_names.write_bytes(exact.read_bytes())
    with h5py.File(by_names, "r+") as f:
        stored = f.attrs["layer_names"]
        assert [text(n) for n in stored[1:]] == ["projection", "head"]
        f.attrs["layer_names"] = stored[[0, 2, 1]]  # [input, head, projection]
    silent = build("state_only", tf_keras)
    silent.load_weights(str(by_names))  # no error: same shapes in the other order
    got, want = silent.get_weights(), m["template"].get_weights()
    assert any(not np.array_equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.tf
def test_normalization_layer_is_refused_without_an_output_anchor(made, tf_keras, tmp_path):
    """Keras's Normalization holds mean, variance and count, all non-trainable: refused."""
    m = made["normalization"]
    names = nested_weight_names(m["src"])
    assert names[-3:] == [
        "normalization/mean:0",
        "normalization/variance:0",
        "normalization/count:0",
    ]
    out = tmp_path / "single.h5"
    with pytest.raises(ckptfix.LayoutError, match="layer 'normalization' holds only non-trainable"):
        ckptfix.convert_checkpoint(m["src"], out)
    assert not out.exists()
    r = ckptfix.convert_checkpoint(m["src"], out, reference=m["reference"])
    assert r.layout == "exact"
    fresh = build("normalization", tf_keras)
    fresh.load_weights(str(out))
    assert_same_model(fresh, m["template"], m["x"])


@pytest.mark.tf
def test_weights_without_a_layer_name_are_refused(made, tf_keras, tmp_path):
    """Normalization adapted before use names its weights "mean:0": no owner to infer."""
    m = made["adapted_first"]
    assert nested_weight_names(m["src"])[-3:] == ["mean:0", "variance:0", "count:0"]
    out = tmp_path / "single.h5"
    with pytest.raises(ckptfix.LayoutError, match="weight 'mean:0' carries no layer name"):
        ckptfix.convert_checkpoint(m["src"], out)
    assert not out.exists()
    # the JSON config cannot place it either (no layer owns "mean:0"); the template's own file can
    with pytest.raises(ckptfix.ReferenceMismatchError, match="'mean:0' matches none"):
        ckptfix.convert_checkpoint(m["src"], out, reference=m["reference"])
    r = ckptfix.convert_checkpoint(m["src"], out, reference=m["saved"])
    assert r.layout == "exact"
    fresh = build("adapted_first", tf_keras)
    fresh.load_weights(str(out))
    assert_same_model(fresh, m["template"], m["x"])


# --- the command line -------------------------------------------------------------------------


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_cli_converts_a_weights_only_file_by_default_and_says_so_in_one_line(tmp_path):
    out = tmp_path / "single.h5"
    res = run("convert", str(DENSE_BN / "parallel_weights.h5"), str(out))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(
        line.split() == ["layout", "inferred", "(from", "weight", "names", "only)"]
        for line in lines
    )
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and not any(line.startswith(" ") for line in lines[-2:])
    line = warnings[0]
    assert line.startswith("warning: layout inferred from weight names")
    assert "make it exact with --reference (the template's model.to_json()" in line
    assert "'Layer count mismatch … found 3 saved layers'" in line
    assert "'a weight file containing 3 layers into a model with M layers'" in line
    assert lines[-1] == line  # the last line, whole
    assert ckptfix.verify_conversion(DENSE_BN / "parallel_weights.h5", out).ok

    res = run("convert", str(DENSE_BN / "parallel_weights.h5"), str(tmp_path / "j.h5"), "--json")
    data = json.loads(res.stdout)
    assert (data["layout"], data["layout_source"]) == ("inferred", "names")
    assert data["warnings"][0].startswith("layout inferred from weight names")
    assert "--reference" in data["warnings"][0] and "reference=" not in data["warnings"][0]


def test_cli_exact_refuses_what_is_only_inferred(tmp_path):
    out = tmp_path / "single.h5"
    res = run("convert", str(DENSE_BN / "parallel_weights.h5"), str(out), "--exact")
    assert res.exit_code == 4
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: expected a known layout")
    assert "(--exact)" in res.stderr and "--reference" in res.stderr
    assert not out.exists()
    res = run(
        "convert",
        str(DENSE_BN / "parallel_weights.h5"),
        str(out),
        "--exact",
        "--reference",
        str(DENSE_BN / "template.json"),
    )
    assert res.exit_code == 0 and "exact (from --reference)" in res.stdout
    res = run("convert", str(DENSE_BN / "parallel_model.h5"), str(tmp_path / "m.h5"), "--exact")
    assert res.exit_code == 0  # a full model records its layout


def test_cli_infer_is_still_accepted_and_changes_nothing(tmp_path):
    res = run("convert", str(DENSE_BN / "parallel_weights.h5"), str(tmp_path / "a.h5"), "--infer")
    assert res.exit_code == 0 and "inferred (from weight names only)" in res.stdout


def test_cli_frozen_fixture_is_refused_and_nested_converts_with_the_warning(tmp_path):
    res = run("convert", str(FROZEN / "parallel_weights.h5"), str(tmp_path / "f.h5"))
    assert res.exit_code == 4 and res.stderr.count("\n") == 1
    assert "found layer 'dense_1' holds only non-trainable weights (a frozen layer" in res.stderr
    assert "--reference" in res.stderr and not (tmp_path / "f.h5").exists()
    res = run("convert", str(NESTED / "parallel_weights.h5"), str(tmp_path / "n.h5"))
    assert res.exit_code == 0
    line = res.stdout.splitlines()[-1]
    assert "'Layer count mismatch … found 4 saved layers'" in line
    assert line in (ROOT / "README.md").read_text(encoding="utf-8")  # the README shows it


def test_inspect_puts_the_reference_command_first_for_an_inferred_layout():
    src = NESTED / "parallel_weights.h5"
    res = run("inspect", str(src))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("fix (exact"))
    plain = f"ckptfix convert {src} {NESTED / 'parallel_weights.single.h5'}"
    assert lines[i + 1] == f"{plain} --reference TEMPLATE.json"
    assert lines[i + 2] == "or, with the layout inferred from weight names:"
    assert lines[i + 3] == plain and i + 4 == len(lines)
    # a layout the file records: one command, as before
    res = run("inspect", str(NESTED / "parallel_model.h5"))
    assert res.stdout.splitlines()[-2] == "fix:"


def test_convert_help_says_weights_only_files_are_inferred():
    res = run("convert", "--help")
    text = " ".join(res.stdout.split())
    assert "inferred from weight names by default" in text
    assert "--exact" in text and "--reference" in text
