"""The committed Keras 2 fixtures match their manifests and reproduce their predictions.

The h5py tests prove the files are what ``manifest.json`` says (hashes, layer and weight names,
chunking, replicas, optimizer iterations) and that the template tensors inside each parallel file
are bit-identical to the template's own file. The TF tests load ``template_weights.h5`` into a
model from ``fixtures/models.py`` with tf_keras and with Keras 3, and ``template_model.h5`` with
``tf_keras.models.load_model``, and compare with ``predictions.npz`` within a tolerance (they
were recorded on another CPU). The generator test reruns ``make_fixtures.py`` and checks what it
promises: the same structure, names, shapes, dtypes, counts and optimizer iterations, and values
within a tolerance (training runs on this CPU, whose arithmetic differs in the last bits).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
import pytest

from tests.conftest import FIXTURES, assert_predictions_close, fixture_module, sha256

KERAS2 = FIXTURES / "keras2"
CASES = sorted(p.name for p in KERAS2.iterdir() if (p / "manifest.json").is_file())


def load_models() -> ModuleType:
    """``fixtures/models.py`` (not a package: loaded by path)."""
    return fixture_module("models.py")


def manifest(case: str) -> dict[str, Any]:
    return json.loads((KERAS2 / case / "manifest.json").read_text())


def decoded(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def list_attr(group: h5py.Group, name: str) -> tuple[list[str], bool]:
    """A legacy list attribute joined over its chunks, and whether it was chunked."""
    if name in group.attrs:
        return decoded(group.attrs[name]), False
    values: list[str] = []
    k = 0
    while f"{name}{k}" in group.attrs:
        values.extend(decoded(group.attrs[f"{name}{k}"]))
        k += 1
    assert k > 0, f"no {name} attribute on {group.name}"
    return values, True


def same_listing(listed: list[str] | dict[str, Any], names: list[str]) -> bool:
    """Compare a manifest listing (a list, or a summary of a long list) with ``names``."""
    if isinstance(listed, list):
        return listed == names
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return (
        listed["count"] == len(names)
        and listed["first"] == names[:3]
        and listed["last"] == names[-3:]
        and listed["sha256"] == digest
    )


def layer_tensors(group: h5py.Group) -> list[np.ndarray]:
    names, _ = list_attr(group, "weight_names")
    return [group[n][()] for n in names]


def test_every_case_is_present() -> None:
    models = load_models()
    assert CASES == sorted(models.CASES)
    replicas = {manifest(c)["replicas"] for c in CASES}
    assert {2, 3, 4, 8} <= replicas


@pytest.mark.parametrize("case", CASES)
def test_files_match_manifest_hashes(case: str) -> None:
    m = manifest(case)
    for name, meta in m["files"].items():
        path = KERAS2 / case / name
        assert path.stat().st_size == meta["bytes"], name
        assert sha256(path) == meta["sha256"], name


@pytest.mark.parametrize("case", CASES)
def test_parallel_weights_structure(case: str) -> None:
    m = manifest(case)
    with h5py.File(KERAS2 / case / "parallel_weights.h5", "r") as f:
        layer_names, _ = list_attr(f, "layer_names")
        assert same_listing(m["parallel_layer_names"], layer_names)
        # Only the template group holds weights; the slice and merge layers hold none.
        with_weights = [n for n in layer_names if list_attr(f[n], "weight_names")[0]]
        assert with_weights == [m["template_name"]]
        assert len(m["slice_layer_names"]) == m["replicas"] * len(m["input_names"])
        assert m["merge_layer_names"] == m["output_names"]  # the naming trap of multi_gpu_model
        group = f[m["template_name"]]
        weight_names, chunked = list_attr(group, "weight_names")
        assert chunked == m["weight_names_chunked"]
        assert same_listing(m["parallel_weight_names"], weight_names)
        assert len(weight_names) == m["template_tensors"]
        tensors = [group[n] for n in weight_names]
        assert sum(t.size for t in tensors) == m["template_params"]
        assert sum(t.nbytes for t in tensors) == m["template_bytes"]
        assert sorted({t.dtype.name for t in tensors}) == m["dtypes"]


def test_deep600_weight_names_are_chunked() -> None:
    m = manifest("deep600")
    assert m["template_layers"] >= 600
    assert m["weight_names_chunked"] is True
    with h5py.File(KERAS2 / "deep600" / "parallel_weights.h5", "r") as f:
        attrs = f[m["template_name"]].attrs
        assert "weight_names" not in attrs and "weight_names1" in attrs


@pytest.mark.parametrize("case", CASES)
def test_parallel_tensors_equal_template_file(case: str) -> None:
    """The parallel checkpoint holds exactly the trained template's tensors (bit for bit)."""
    m = manifest(case)
    with (
        h5py.File(KERAS2 / case / "parallel_weights.h5", "r") as par,
        h5py.File(KERAS2 / case / "template_weights.h5", "r") as tpl,
    ):
        layer_names, _ = list_attr(tpl, "layer_names")
        assert same_listing(m["template_layer_names"], layer_names)
        flat = {}
        for layer in layer_names:
            for name in list_attr(tpl[layer], "weight_names")[0]:
                flat[name] = tpl[layer][name][()]
        group = par[m["template_name"]]
        weight_names, _ = list_attr(group, "weight_names")
        assert sorted(weight_names) == sorted(flat)
        for name in weight_names:
            a, b = group[name][()], flat[name]
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


@pytest.mark.parametrize("case", CASES)
def test_full_model_files(case: str) -> None:
    m = manifest(case)
    if not m["full_model"]:
        assert not (KERAS2 / case / "parallel_model.h5").exists()
        pytest.skip(f"{case} is saved weights-only (size)")
    with h5py.File(KERAS2 / case / "parallel_model.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        classes = [layer["class_name"] for layer in config["config"]["layers"]]
        assert classes.count("Lambda") == len(m["slice_layer_names"])
        assert classes.count("Concatenate") == len(m["merge_layer_names"])
        assert json.loads(f.attrs["training_config"])["optimizer_config"]
        opt = f["optimizer_weights"]
        names, _ = list_attr(opt, "weight_names")
        assert same_listing(m["optimizer"]["weight_names"], names)
        iters = [n for n in names if n.split("/")[-1].startswith("iter")]
        assert int(opt[iters[0]][()]) == m["optimizer"]["iterations"] == 2 * m["steps_per_epoch"]
        # model_weights of the full file equal the weights-only checkpoint of the same epoch.
        with h5py.File(KERAS2 / case / "parallel_weights.h5", "r") as w:
            name = m["template_name"]
            for a, b in zip(
                layer_tensors(f["model_weights"][name]), layer_tensors(w[name]), strict=True
            ):
                assert a.tobytes() == b.tobytes()
    with h5py.File(KERAS2 / case / "template_model.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        classes = [layer["class_name"] for layer in config["config"]["layers"]]
        assert "Lambda" not in classes


# --- with TensorFlow: Keras's own loaders are the oracle -----------------------------------


def inputs_and_predictions(case: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xs = np.load(KERAS2 / case / "inputs.npz")
    ys = np.load(KERAS2 / case / "predictions.npz")
    return [xs[f"x{i}"] for i in range(len(xs))], [ys[f"y{i}"] for i in range(len(ys))]


def predict(model: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o) for o in out]


def assert_predictions(case: str, got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert_predictions_close(got, want, float16=case == "fp16")


@pytest.mark.tf
@pytest.mark.parametrize("case", CASES)
def test_tf_keras_template_weights_reproduce_predictions(case: str, tf_keras: Any) -> None:
    models = load_models()
    inputs, want = inputs_and_predictions(case)
    model = models.build(case, tf_keras)
    before = predict(model, inputs)
    model.load_weights(str(KERAS2 / case / "template_weights.h5"))
    assert_predictions(case, predict(model, inputs), want)
    # The fixture is really broken: the parallel file does not load into the template.
    assert not all(np.allclose(b, w) for b, w in zip(before, want, strict=True))
    with pytest.raises(ValueError, match="layers"):
        models.build(case, tf_keras).load_weights(str(KERAS2 / case / "parallel_weights.h5"))


@pytest.mark.tf
@pytest.mark.parametrize("case", CASES)
def test_tf_keras_template_model_reproduces_predictions(case: str, tf_keras: Any) -> None:
    if not manifest(case)["full_model"]:
        pytest.skip(f"{case} is saved weights-only (size)")
    inputs, want = inputs_and_predictions(case)
    model = tf_keras.models.load_model(str(KERAS2 / case / "template_model.h5"))
    assert_predictions(case, predict(model, inputs), want)


@pytest.mark.tf
@pytest.mark.parametrize("case", CASES)
def test_keras3_builds_the_same_architecture(case: str, keras3: Any) -> None:
    """A Keras 3 model from models.py loads the tf_keras template file positionally."""
    models = load_models()
    inputs, want = inputs_and_predictions(case)
    model = models.build(case, keras3)
    model.load_weights(str(KERAS2 / case / "template_weights.h5"))
    assert_predictions(case, predict(model, inputs), want)
    with pytest.raises(ValueError, match="Layer count mismatch"):
        models.build(case, keras3).load_weights(str(KERAS2 / case / "parallel_weights.h5"))


@pytest.mark.tf
def test_models_reject_unknown_case(tf_keras: Any) -> None:
    models = load_models()
    with pytest.raises(ValueError, match="unknown case 'nope'"):
        models.build("nope", tf_keras)
    with pytest.raises(ValueError, match="unknown case 'nope'"):
        models.make_data("nope", 4)


def test_make_data_is_deterministic() -> None:
    models = load_models()
    for case in models.CASES:
        a_in, a_out = models.make_data(case, 8, seed=3)
        b_in, b_out = models.make_data(case, 8, seed=3)
        for a, b in zip(a_in + a_out, b_in + b_out, strict=True):
            assert a.shape[0] == 8 and np.array_equal(a, b)


def test_fixture_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in KERAS2.rglob("*") if p.is_file())
    assert total < 3_200_000, f"fixtures/keras2 is {total} bytes; keep it under ~3 MB"


def test_generator_files_listed() -> None:
    """Every file in a case folder is in its manifest (no stale leftovers get committed)."""
    for case in CASES:
        on_disk = {p.name for p in (KERAS2 / case).iterdir()} - {"manifest.json"}
        assert on_disk == set(manifest(case)["files"]), case


# Training differs in the last bits between CPUs (and with TF_ENABLE_ONEDNN_OPTS), and 8 Adam
# steps carry those differences into every trained value: measured on an AMD EPYC against the
# committed files (another CPU), up to 1.2e-07 absolute on weights and optimizer slots of order
# 0.5, 1.5e-07 relative on the loss. 100 times that still fails any value a real change moves.
TRAINED = {"rtol": 1e-4, "atol": 1e-5}
# Manifest keys that describe the machine or the run, not what the generator promises.
MACHINE_KEYS = {"writer", "command", "final_loss", "files"}


@pytest.mark.tf
@pytest.mark.slow
def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    """Provenance: rerunning the generator rewrites dense_bn as committed, up to the CPU's bits.

    Names, structure, shapes, dtypes, counts, configs, optimizer state and iterations must be
    the same; trained values and predictions equal within ``TRAINED``; the seeded numpy inputs
    bit for bit. Output hashes are not compared: they hold trained floats.
    """
    import subprocess
    import sys

    pytest.importorskip("tf_keras")
    subprocess.run(
        [sys.executable, str(FIXTURES / "make_fixtures.py"), "--only", "dense_bn"]
        + ["--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    new_dir, old_dir = tmp_path / "dense_bn", KERAS2 / "dense_bn"
    new = json.loads((new_dir / "manifest.json").read_text())
    old = manifest("dense_bn")
    assert set(new) == set(old)
    for key in sorted(set(old) - MACHINE_KEYS):
        assert new[key] == old[key], key
    assert new["optimizer"]["iterations"] == new["optimizer"]["iterations_in_file"] == 8
    assert new["command"] == "python fixtures/make_fixtures.py --only dense_bn"
    assert new["writer"].keys() == old["writer"].keys()
    np.testing.assert_allclose(new["final_loss"], old["final_loss"], **TRAINED)
    assert set(new["files"]) == set(old["files"])
    assert sorted(p.name for p in new_dir.iterdir()) == sorted(p.name for p in old_dir.iterdir())

    for name in ("parallel_weights.h5", "parallel_model.h5", "template_weights.h5"):
        assert_same_h5(new_dir / name, old_dir / name)
    assert_same_h5(new_dir / "template_model.h5", old_dir / "template_model.h5")
    assert json.loads((new_dir / "template.json").read_text()) == json.loads(
        (old_dir / "template.json").read_text()
    )
    with np.load(new_dir / "inputs.npz") as a, np.load(old_dir / "inputs.npz") as b:
        assert a.files == b.files
        for k in a.files:  # numpy's seeded generator, no TensorFlow: bit for bit
            assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    with np.load(new_dir / "predictions.npz") as a, np.load(old_dir / "predictions.npz") as b:
        assert a.files == b.files
        for k in a.files:  # the trained template's forward pass: trained values, this CPU
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_allclose(a[k], b[k], **TRAINED, err_msg=k)


def assert_same_h5(new: Path, old: Path) -> None:
    """Same groups, datasets, shapes, dtypes and attributes; float values within ``TRAINED``."""
    a, b = h5_tree(new), h5_tree(old)
    assert list(a) == list(b), new.name  # same objects, in the same order
    with h5py.File(new, "r") as fa, h5py.File(old, "r") as fb:
        for path, (kind, attrs) in a.items():
            assert (kind, attrs) == b[path], f"{new.name}:{path}"
            if kind == "group":
                continue
            x, y = fa[path][()], fb[path][()]
            if np.issubdtype(x.dtype, np.floating):
                np.testing.assert_allclose(x, y, **TRAINED, err_msg=f"{new.name}:{path}")
            else:  # counters (optimizer iterations): exact
                assert np.array_equal(x, y), f"{new.name}:{path}"


def h5_tree(path: Path) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Every object of an HDF5 file: path -> (``"group"`` or (shape, dtype), attributes)."""
    out: dict[str, tuple[Any, dict[str, Any]]] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, obj: Any) -> None:
            kind = "group" if isinstance(obj, h5py.Group) else (obj.shape, obj.dtype.str)
            out[name] = (kind, {k: _attr(k, v) for k, v in sorted(obj.attrs.items())})

        visit("/", f)
        f.visititems(visit)
    return out


def _attr(key: str, value: Any) -> Any:
    """An attribute as plain data; a model config without the Lambda's recorded bytecode."""
    if isinstance(value, np.ndarray):
        return [_attr(key, v) for v in value.tolist()]
    if isinstance(value, bytes):
        value = value.decode()
    if key == "model_config":
        return _without_bytecode(value)
    return value


def _without_bytecode(model_config: str) -> dict[str, Any]:
    """The config with each Lambda's marshalled bytecode blanked: it records the generator's
    path (co_filename), which differs between clones."""
    cfg = json.loads(model_config)
    for layer in cfg["config"]["layers"]:
        if layer["class_name"] == "Lambda":
            layer["config"]["function"] = "<bytecode>"
    return dict(cfg)
