"""Every Keras 2 fixture converts, and Keras itself loads the result.

The oracle is Keras: the converted file goes into a freshly built template through tf_keras's
positional ``load_weights`` and ``load_model`` and Keras 3's ``load_weights``; arrays are
compared bit for bit with the trained template's own file (``template_weights.h5``, loaded by
Keras), predictions with the stored ones within a tolerance (they were recorded on another
CPU: see ``conftest.assert_predictions_close``), and the optimizer's iteration count with the
one the parallel model reached.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import ckptfix
from tests.conftest import FIXTURES, assert_predictions_close, fixture_module, sha256

pytestmark = pytest.mark.tf

K2 = FIXTURES / "keras2"
CASES = (
    sorted(p.name for p in K2.iterdir() if (p / "manifest.json").exists()) if K2.is_dir() else []
)
# layouts that a weights-only file alone cannot give: frozen layers, a model inside the template
NEEDS_REFERENCE = {"frozen", "nested"}


def manifest(case: str) -> dict:
    return json.loads((K2 / case / "manifest.json").read_text())


def inputs(case: str) -> list[np.ndarray]:
    with np.load(K2 / case / "inputs.npz") as z:
        return [z[f"x{i}"] for i in range(len(z.files))]


def predictions(case: str) -> list[np.ndarray]:
    with np.load(K2 / case / "predictions.npz") as z:
        return [z[f"y{i}"] for i in range(len(z.files))]


def as_list(y) -> list[np.ndarray]:
    return [np.asarray(v) for v in (y if isinstance(y, list) else [y])]


def fresh_tf_keras_template(tf_keras, case: str):
    return tf_keras.models.model_from_json((K2 / case / "template.json").read_text())


def reference_arrays(tf_keras, case: str) -> list[np.ndarray]:
    """The trained template's weights, read by Keras from the template's own file."""
    m = fresh_tf_keras_template(tf_keras, case)
    m.load_weights(str(K2 / case / "template_weights.h5"))
    return m.get_weights()


def assert_arrays_equal(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


def assert_predicts(model, case: str) -> None:
    """The model's predictions on the stored inputs are the trained template's (tolerance)."""
    x = inputs(case)
    got = as_list(model.predict(x if len(x) > 1 else x[0], verbose=0))
    assert_predictions_close(got, predictions(case), float16=case == "fp16")


@pytest.mark.parametrize("case", CASES)
def test_full_model_converts_exactly_and_loads_with_optimizer(tf_keras, tmp_path, case):
    src = K2 / case / "parallel_model.h5"
    if not src.exists():
        pytest.skip(f"{case} has no full-model fixture")
    before = sha256(src)
    m = manifest(case)
    out = tmp_path / "single.h5"
    r = ckptfix.convert_checkpoint(src, out)
    assert (r.layout, r.layout_source, r.verified, r.full_model) == ("exact", "config", True, True)
    assert r.template == m["template_name"] and r.replicas == m["replicas"]
    assert r.tensors == m["template_tensors"] and r.bytes == m["template_bytes"]
    assert r.optimizer_kept
    model = tf_keras.models.load_model(str(out))
    assert not any(type(layer).__name__ == "Lambda" for layer in model.layers)
    assert_arrays_equal(model.get_weights(), reference_arrays(tf_keras, case))
    assert_predicts(model, case)
    assert int(model.optimizer.iterations.numpy()) == m["optimizer"]["iterations"]
    assert sha256(src) == before


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("ref", ["template.json", "template_weights.h5", "template_model.h5"])
def test_weights_only_with_reference_is_exact(tf_keras, keras3, tmp_path, case, ref):
    src = K2 / case / "parallel_weights.h5"
    if not (K2 / case / ref).exists():
        pytest.skip(f"{case} has no {ref}")
    before = sha256(src)
    out = tmp_path / "single.h5"
    r = ckptfix.convert_checkpoint(src, out, reference=K2 / case / ref)
    assert (r.layout, r.layout_source) == ("exact", "reference")
    want = reference_arrays(tf_keras, case)
    model = fresh_tf_keras_template(tf_keras, case)
    model.load_weights(str(out))  # positional, as users call it
    assert_arrays_equal(model.get_weights(), want)
    assert_predicts(model, case)
    if ref == "template.json":  # Keras 3 too, on a template built afresh in Keras 3
        models = fixture_module("models.py")

        k3model = models.build(case, keras3)
        k3model.load_weights(str(out))
        assert_arrays_equal([np.asarray(w) for w in k3model.get_weights()], want)
        assert_predicts(k3model, case)
    assert sha256(src) == before


@pytest.mark.parametrize("case", CASES)
def test_weights_only_without_reference(tf_keras, keras3, tmp_path, case):
    """Inferred by default (and said so); refused with exact=True or where names cannot tell."""
    src = K2 / case / "parallel_weights.h5"
    out = tmp_path / "single.h5"
    with pytest.raises(ckptfix.LayoutUnknownError, match="exact=True.*reference="):
        ckptfix.convert_checkpoint(src, out, exact=True)
    assert not out.exists()
    model = fresh_tf_keras_template(tf_keras, case)
    if case == "frozen":
        with pytest.raises(ckptfix.LayoutError, match="frozen"):
            ckptfix.convert_checkpoint(src, out)
        assert not out.exists()
        return
    r = ckptfix.convert_checkpoint(src, out)
    assert r.layout == "inferred" and r.warnings and "layout inferred" in r.warnings[0]
    if case == "nested":
        # the nested encoder cannot be seen in a weights-only file: Keras refuses loudly,
        # never silently, with the symptom the warning names, and --reference is the way out
        assert "Layer count mismatch … found 4 saved layers" in r.warnings[0]
        assert "a weight file containing 4 layers into a model with M layers" in r.warnings[0]
        assert "make it exact with reference=" in r.warnings[0]
        with pytest.raises(ValueError, match="Layer count mismatch.*expected 2 layers, found 4"):
            model.load_weights(str(out))
        models = fixture_module("models.py")
        with pytest.raises(ValueError, match="Layer count mismatch.*expected 2 layers, found 4"):
            models.build(case, keras3).load_weights(str(out))
        return
    want = reference_arrays(tf_keras, case)
    model.load_weights(str(out))
    assert_arrays_equal(model.get_weights(), want)
    assert_predicts(model, case)
    k3model = fixture_module("models.py").build(case, keras3)  # Keras 3's legacy loader too
    k3model.load_weights(str(out))
    assert_arrays_equal([np.asarray(w) for w in k3model.get_weights()], want)


def test_unconverted_file_does_not_load_into_the_template(tf_keras):
    """The problem itself, as users meet it (guards against fixtures that are not parallel)."""
    model = fresh_tf_keras_template(tf_keras, "dense_bn")
    with pytest.raises(ValueError, match="found 1 saved layers|containing 1 layers"):
        model.load_weights(str(K2 / "dense_bn" / "parallel_weights.h5"))


@pytest.mark.parametrize("case", CASES)
def test_cli_convert_and_verify(tmp_path, case):
    from typer.testing import CliRunner

    from ckptfix.cli import app

    src = K2 / case / "parallel_model.h5"
    if not src.exists():
        src = K2 / case / "parallel_weights.h5"
        extra = ["--reference", str(K2 / case / "template.json")]
    else:
        extra = []
    out = tmp_path / "single.h5"
    runner = CliRunner()
    r = runner.invoke(app, ["convert", str(src), str(out), "--json", *extra])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["verified"] is True and data["layout"] == "exact"
    r = runner.invoke(app, ["verify", str(src), str(out)])
    assert r.exit_code == 0 and "OK" in r.stdout
    r = runner.invoke(app, ["convert", str(src), str(out), *extra])
    assert r.exit_code == 6 and "--force" in r.stderr
    r = runner.invoke(app, ["convert", str(out), str(tmp_path / "again.h5")])
    assert r.exit_code == 3 and "nothing to convert" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.h5"]


def test_deep_model_has_chunked_attributes():
    m = manifest("deep600") if "deep600" in CASES else pytest.skip("no deep600 fixture")
    assert m["weight_names_chunked"] and m["template_layers"] >= 600
    import h5py

    with h5py.File(K2 / "deep600" / "parallel_weights.h5") as f:
        assert "weight_names0" in f[m["template_name"]].attrs


def test_every_fixture_is_under_the_size_budget():
    # 8 MiB for every committed fixture: the Keras 2 and 3 parallel files (3.2 MB), the TF
    # formats (1 MB) and the 55 small tf_keras models of the Keras 3 migration (3.8 MB, ~70 KB
    # each); a clone stays small, and a new fixture must stay small too.
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert total < 8 * 1024 * 1024, total


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_weights_only_with_live_model_is_exact(tf_keras, keras3, tmp_path, case, flavour):
    """A migration script passes the template it builds in code: exact for every fixture."""
    models = fixture_module("models.py")

    keras = tf_keras if flavour == "tf_keras" else keras3
    template = models.build(case, keras)
    out = tmp_path / "single.h5"
    r = ckptfix.convert_checkpoint(K2 / case / "parallel_weights.h5", out, model=template)
    assert (r.layout, r.layout_source) == ("exact", "model")
    template.load_weights(str(out))
    assert_arrays_equal(
        [np.asarray(w) for w in template.get_weights()], reference_arrays(tf_keras, case)
    )
    assert_predicts(template, case)


def test_live_model_that_does_not_match_is_refused(tf_keras, tmp_path):
    models = fixture_module("models.py")

    other = models.build("cnn", tf_keras)
    with pytest.raises(ckptfix.ReferenceMismatchError, match="as many weights|shape"):
        ckptfix.convert_checkpoint(
            K2 / "dense_bn" / "parallel_weights.h5", tmp_path / "o.h5", model=other
        )
    assert not (tmp_path / "o.h5").exists()
