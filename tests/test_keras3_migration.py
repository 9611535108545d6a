"""Keras 2 → Keras 3 end to end: tf_keras-written files, converted, loaded by Keras 3.

Every fixture of ``fixtures/keras2_to_3`` (the zoo's layer families, every optimizer in the
tf_keras >= 2.11 and legacy layouts, parallel checkpoints) and the parallel full models of
``fixtures/keras2`` are converted with ``ckptfix`` (no TensorFlow or Keras in that process),
then loaded by ``keras.saving.load_model`` in safe mode in a FRESH process per backend
(TensorFlow; JAX and torch where installed), which reports predictions, optimizer variables
and one resumed training step. The tests compare them with what tf_keras recorded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import ckptfix
from ckptfix import keras3_migration
from ckptfix.convert import read_checkpoint
from ckptfix.errors import CkptfixError
from tests import realworld_layers
from tests.conftest import FIXTURES, ROOT, sha256

MIG = FIXTURES / "keras2_to_3"
CUDNN = FIXTURES / "keras2_cudnn"  # fixtures/make_cudnn_fixture.py
CUDNN_SRC = CUDNN / "model.h5"
K2 = FIXTURES / "keras2"
LOADER = ROOT / "tests" / "keras3_loader.py"
MIG_CASES = sorted(p.name for p in MIG.iterdir() if (p / "manifest.json").exists())
K2_CASES = sorted(p.name for p in K2.iterdir() if (p / "parallel_model.h5").exists())
CASES = MIG_CASES + [f"k2_{c}" for c in K2_CASES]
BACKENDS = ("tensorflow", "jax", "torch")

#: cases the translation refuses, and the reason its message must give
REFUSED: dict[str, str] = {}

# Predictions are computed by Keras on the user's CPU and backend: compared with a tolerance.
# float32: rtol 1e-5 / atol 1e-6 (last bits differ between CPUs, oneDNN on/off, backends).
FLOAT32 = (1e-5, 1e-6)
# float16 layers (mixed_float16, fp16): 11-bit mantissa, ~3 decimal digits per operation.
FLOAT16 = (1e-2, 1e-3)
# One resumed training step, then predictions: gradients are computed by another backend's
# kernels; 1e-4 relative is still 10-100x below what a lost or misplaced optimizer state does
# to one step at these learning rates (1e-3..5e-2), which the negative control proves.
STEP = (1e-4, 1e-5)
# On JAX and torch the gradients come from other kernels than tf_keras's and differ in the last
# bits; Adam, Adamax and Nadam divide each gradient by its own running magnitude, so after 3
# iterations an element whose gradient is near zero moves by up to +-lr whatever its rounding:
# measured here, predictions after the step differ by up to 3e-3 relative (Adamax). A lost or
# misplaced state (the negative control) is still 50x beyond this tolerance.
STEP_OTHER_BACKEND = (5e-3, 5e-4)
#: (backend, case) that Keras 3 itself cannot run on that backend, built natively too
KERAS3_CANNOT = {
    ("jax", "zoo_multi_head_attention"): (
        "Keras 3.15.1 on JAX fails to call MultiHeadAttention(key_dim=2, value_dim=3, "
        "output_shape=5) on a natively built model too ('cannot reshape array')"
    ),
}


def result_of(results: dict[str, dict[str, Any]], backend: str, case: str) -> dict[str, Any]:
    """The loader's result for ``case``; an expected failure where Keras 3 cannot run it."""
    r = results[case]
    known = KERAS3_CANNOT.get((backend, case))
    if known is not None and not r["loaded"]:
        pytest.xfail(known)
    return r


#: cases whose recorded tf_keras step is not what a single Keras 3 model must reproduce
STEP_ORACLE_DIFFERS = {
    # tf_keras >= 2.11's Nadam multiplies u_product once per VARIABLE per step in graph mode
    # (after 3 steps of this model: 2.2e-6 instead of prod(u_1..u_3) = 0.114) and does not save
    # it (a reload starts from 1.0); ckptfix writes the schedule's value for the iteration
    # count, which Keras 3's Nadam (one multiplication per step) expects.
    "opt_nadam_new": "tf_keras's u_product",
    # the parallel model's step normalises each replica's half batch in BatchNormalization; the
    # single model normalises the whole batch: another gradient by construction.
    "parallel_nested_functional": "BatchNormalization over per-replica batches",
}


def manifest(case: str) -> dict[str, Any]:
    if case.startswith("k2_"):
        return json.loads((K2 / case[3:] / "manifest.json").read_text())
    return json.loads((MIG / case / "manifest.json").read_text())


def source_of(case: str) -> Path:
    if case.startswith("k2_"):
        return K2 / case[3:] / "parallel_model.h5"
    return MIG / case / "model.h5"


def folder_of(case: str) -> Path:
    return K2 / case[3:] if case.startswith("k2_") else MIG / case


def tolerance(case: str) -> tuple[float, float]:
    m = manifest(case)
    half = "float16" in json.dumps(m.get("dtypes", [])) or "mixed_float16" in case
    return FLOAT16 if half else FLOAT32


@dataclass
class Converted:
    case: str
    source: Path
    output: Path
    result: ckptfix.ConversionResult | None = None
    error: CkptfixError | None = None
    plan: keras3_migration.Keras3Plan | None = None


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Converted]:
    """Every case converted to .keras by ckptfix (this process imports no Keras)."""
    out = tmp_path_factory.mktemp("keras3")
    done = {}
    for case in CASES:
        src = source_of(case)
        c = Converted(case, src, out / f"{case}.keras")
        try:
            c.result = ckptfix.convert_checkpoint(src, c.output)
            c.plan = keras3_migration.plan_keras3(read_checkpoint(src), full_model=True)
        except CkptfixError as exc:
            c.error = exc
        done[case] = c
    return done


def expected_slots(plan: keras3_migration.Keras3Plan) -> list[str | None]:
    """The digest each optimizer variable must have after Keras 3 loads it (None: skip).

    Slots are compared bit for bit with the stored Keras 2 tensor they come from (the bytes
    ckptfix copies); the iteration counter and learning rate by value (their dtype is the
    backend's).
    """
    out: list[str | None] = []
    for t in plan.optimizer:
        if t.derived is not None or t.source is None or t.source.shape == ():
            out.append(None)
            continue
        loc = t.source.location
        with h5py.File(loc.file) as f:
            a = np.ascontiguousarray(f[loc.path][()])
        out.append(f"{a.dtype.name}{list(a.shape)}:" + hashlib.sha256(a.tobytes()).hexdigest()[:16])
    return out


def job(c: Converted) -> dict[str, Any]:
    folder = folder_of(c.case)
    m = manifest(c.case)
    j: dict[str, Any] = {
        "case": c.case,
        "path": str(c.output),
        "inputs": str(folder / "inputs.npz"),
        "predictions": str(folder / "predictions.npz"),
        "tolerance": tolerance(c.case),
        "step_tolerance": STEP,
        "custom": "zoo" if m.get("custom_objects") else None,
    }
    if (folder / "step.npz").exists():
        j["step"] = str(folder / "step.npz")
        j["after_step"] = str(folder / "after_step.npz")
    return j


def run_loader(backend: str, jobs: list[dict[str, Any]], tmp: Path) -> dict[str, dict[str, Any]]:
    """Run tests/keras3_loader.py in a fresh process on ``backend``; its results by case."""
    if importlib.util.find_spec(backend) is None:
        extra = "torch" if backend == "torch" else "dev"
        pytest.skip(f"Keras 3 on {backend}: {backend} is not installed (pip install '.[{extra}]')")
    jobs_file, results_file = tmp / f"jobs_{backend}.json", tmp / f"results_{backend}.json"
    jobs_file.write_text(json.dumps(jobs))
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    if backend != "tensorflow":
        env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run(
        [sys.executable, str(LOADER), str(jobs_file), str(results_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(results_file.read_text())
    assert data["backend"] == backend
    return {r["case"]: r for r in data["results"]}


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest,
    converted: dict[str, Converted],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, dict[str, dict[str, Any]]]:
    backend = request.param
    jobs = [job(c) for c in converted.values() if c.error is None]
    if backend != "tensorflow":
        for j in jobs:
            j["step_tolerance"] = STEP_OTHER_BACKEND
    control = next(j for j in jobs if j["case"] == "opt_adam_new")
    jobs.append({**control, "case": "control_fresh_optimizer", "fresh_optimizer": True})
    return backend, run_loader(backend, jobs, tmp_path_factory.mktemp(backend))


# --- conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_converts_or_is_refused_with_its_reason(converted: dict[str, Converted], case: str):
    c = converted[case]
    if case in REFUSED:
        assert c.error is not None and REFUSED[case] in str(c.error)
        assert c.error.exit_code == ckptfix.ExitCode.REFUSED
        return
    assert c.error is None, f"{case}: {c.error}"
    assert c.result is not None and c.result.verified
    assert c.result.output_format == "keras3-archive" and c.result.full_model
    assert sha256(c.source) == manifest(case)["files"][c.source.name]["sha256"]  # untouched


# --- Keras 3 loads it -----------------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_keras3_loads_in_safe_mode_and_predicts_like_tf_keras(loaded, converted, case):
    backend, results = loaded
    if converted[case].error is not None:
        pytest.skip("refused (see test_converts_or_is_refused_with_its_reason)")
    r = result_of(results, backend, case)
    assert r["loaded"], f"{backend}: {r.get('error')}"
    assert r["diff"] <= 1.0, f"{backend}: predictions off by {r['diff']:.3g} x tolerance"


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_optimizer_iterations_and_every_slot_kept(loaded, converted, case):
    backend, results = loaded
    c = converted[case]
    if c.error is not None:
        pytest.skip("refused")
    r, m = result_of(results, backend, case), manifest(case)
    assert r["loaded"], r.get("error")
    assert r["compiled"]
    assert c.plan is not None
    if not c.plan.optimizer:  # refused state: said in a warning, Keras starts afresh
        assert any("optimizer state not carried" in w for w in c.result.warnings)
        assert "nadam_legacy" in case, c.result.warnings
        return
    iterations = m["optimizer"].get("iterations")
    assert r["iterations"] == iterations
    want = expected_slots(c.plan)
    assert len(r["optimizer_digests"]) == len(want)
    for i, (got, exp) in enumerate(zip(r["optimizer_digests"], want, strict=True)):
        if exp is not None:
            assert got == exp, f"{backend}: optimizer/vars/{i} differs from its source"


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("k2_")])
def test_fit_resumes_where_tf_keras_would(loaded, converted, case):
    """One more training step: iterations count on, and the weights reach tf_keras's."""
    backend, results = loaded
    c = converted[case]
    if c.error is not None:
        pytest.skip("refused")
    r, m = result_of(results, backend, case), manifest(case)
    assert r["loaded"], r.get("error")
    assert r["iterations_after"] == r["iterations"] + 1
    assert all(np.isfinite(v) for v in r["step_loss"].values())
    if m["random_in_training"]:
        return  # dropout/noise draw other random numbers: the step is not reproducible
    if m.get("update_differs"):
        return  # Keras 3's optimizer of that name updates differently (said in a warning)
    if case in STEP_ORACLE_DIFFERS:
        return  # the recorded step is not the single model's (see STEP_ORACLE_DIFFERS)
    limit = 1.0
    if backend == "tensorflow" and r["diff"] > 0:
        # Keras 3's layer already computes the forward pass in another order than tf_keras
        # (last bits; zoo_multi_io), so the gradients differ as on the other backends.
        limit = STEP_OTHER_BACKEND[0] / STEP[0]
    assert r["after_diff"] <= limit, (
        f"{backend}: after one step the predictions are {r['after_diff']:.3g} x tolerance "
        "away from tf_keras's"
    )


@pytest.mark.tf
@pytest.mark.slow
def test_control_a_fresh_optimizer_misses_tf_keras_step(loaded):
    """The step check can fail: the same model with a fresh Adam lands elsewhere."""
    backend, results = loaded
    r = results["control_fresh_optimizer"]
    assert r["loaded"], r.get("error")
    assert r["after_diff"] > 10, f"{backend}: {r['after_diff']}"


# --- the conversion itself: no TensorFlow, verified, deterministic --------------------------


def test_conversion_imports_neither_tensorflow_nor_keras(tmp_path: Path) -> None:
    """convert, verify and inspect of a Keras 2 file to Keras 3, in a clean interpreter."""
    code = f"""
import sys, ckptfix
src = {str(MIG / "zoo_bidirectional" / "model.h5")!r}
r = ckptfix.convert_checkpoint(src, {str(tmp_path / "out.keras")!r})
assert r.verified and r.optimizer_kept, r
assert ckptfix.verify_conversion(src, {str(tmp_path / "out.keras")!r}).ok
assert ckptfix.inspect_checkpoint(src).keras3.converts
w = ckptfix.convert_checkpoint({str(K2 / "dense_bn" / "parallel_weights.h5")!r},
    {str(tmp_path / "out.weights.h5")!r}, reference={str(K2 / "dense_bn" / "template.json")!r})
assert w.verified
loaded = sorted(m for m in sys.modules
                if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax", "torch"))
print(loaded)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    src = MIG / "parallel_recurrent" / "model.h5"
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    ckptfix.convert_checkpoint(src, a)
    ckptfix.convert_checkpoint(src, b)
    assert sha256(a) == sha256(b)


def _rewrite_member(archive: Path, name: str, edit) -> None:
    """Rewrite one member of a zip (as an attacker or a bad disk would), others unchanged."""
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        members = [(i, zf.read(i.filename)) for i in zf.infolist()]
    with zipfile.ZipFile(archive, "w") as zf:
        for info, data in members:
            zf.writestr(info, edit(data) if info.filename == name else data)


def _tamper_weights(path: Path, dataset: str, tmp: Path) -> None:
    def edit(data: bytes) -> bytes:
        h5 = tmp / "w.h5"
        h5.write_bytes(data)
        with h5py.File(h5, "r+") as f:
            value = f[dataset][()]
            f[dataset][...] = value + np.ones_like(value)
        return h5.read_bytes()

    _rewrite_member(path, "model.weights.h5", edit)


@pytest.mark.parametrize(
    "what",
    ["a weight", "an optimizer slot", "the learning rate", "a transformed weight", "config.json"],
)
def test_verify_catches_a_tampered_keras3_output(tmp_path: Path, what: str) -> None:
    src = MIG / "zoo_embedding" / "model.h5" if what != "a transformed weight" else CUDNN_SRC
    out = tmp_path / "out.keras"
    ckptfix.convert_checkpoint(src, out)
    assert ckptfix.verify_conversion(src, out).ok
    plan = keras3_migration.plan_keras3(read_checkpoint(src), full_model=True)
    if what == "config.json":
        _rewrite_member(out, "config.json", lambda d: d.replace(b'"units": 2', b'"units": 3'))
        expect = "config.json"
    else:
        if what == "a weight":
            t = plan.tensors[0]
        elif what == "an optimizer slot":
            t = plan.optimizer[-1]
        elif what == "the learning rate":
            t = plan.optimizer[1]
        else:
            derived = [t for t in plan.tensors if t.derived is not None]
            assert derived, "the cuDNN fixture's weights are transformed (cuDNN layout)"
            t = derived[0]
        _tamper_weights(out, t.path.lstrip("/"), tmp_path)
        expect = t.name
    check = ckptfix.verify_conversion(src, out)
    assert not check.ok
    assert any(expect in m for m in check.mismatches), check.mismatches


# --- CuDNNLSTM / CuDNNGRU: the weights themselves change layout ---------------------------


def test_cudnn_weights_are_transformed_and_verified(tmp_path: Path) -> None:
    out = tmp_path / "cudnn.keras"
    r = ckptfix.convert_checkpoint(CUDNN_SRC, out)
    assert r.verified and r.output_format == "keras3-archive"
    plan = keras3_migration.plan_keras3(read_checkpoint(CUDNN_SRC), full_model=True)
    done = sorted(t.derived.what for t in plan.tensors if t.derived is not None)
    assert done == sorted(
        f"transform cudnn_{rnn}_{w}"
        for rnn in ("lstm", "gru")
        for w in ("kernel", "recurrent_kernel", "bias")
    )
    config = json.loads(_member(out, "config.json"))
    classes = [layer["class_name"] for layer in config["config"]["layers"]]
    assert classes == ["InputLayer", "LSTM", "GRU", "Dense"]
    assert sha256(CUDNN_SRC) == json.loads((CUDNN / "manifest.json").read_text())["files"][
        "model.h5"
    ]["sha256"]


def _member(archive: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return zf.read(name)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_cudnn_model_predicts_in_keras3_as_keras2_does_on_cpu(tmp_path: Path, backend: str):
    """Keras 2 loads a CuDNN file into LSTM/GRU by converting the layout itself (the fixture's
    predictions); Keras 3 with ckptfix's .keras must predict the same."""
    out = tmp_path / "cudnn.keras"
    ckptfix.convert_checkpoint(CUDNN_SRC, out)
    job = {
        "case": "cudnn",
        "path": str(out),
        "inputs": str(CUDNN / "inputs.npz"),
        "predictions": str(CUDNN / "predictions.npz"),
        # the LSTM bias is the sum of cuDNN's two halves (one float32 addition, as Keras 2's
        # own conversion does): predictions within the float32 tolerance
        "tolerance": FLOAT32,
    }
    r = run_loader(backend, [job], tmp_path)["cudnn"]
    assert r["loaded"], f"{backend}: {r.get('error')}"
    assert r["diff"] <= 1.0, f"{backend}: {r['diff']:.3g} x tolerance"


# --- weights-only files with a layout (issue item 6) -----------------------------------------


WEIGHTS_CASES = [
    ("dense_bn", "parallel_weights.h5", "template.json"),
    ("nested", "parallel_weights.h5", "template_model.h5"),
    ("frozen", "template_weights.h5", "template.json"),
    ("multi_io", "parallel_weights.h5", "template.json"),
]


@pytest.fixture(scope="module")
def weights_converted(tmp_path_factory: pytest.TempPathFactory):
    """Keras 2 weights-only files (parallel and single) → .weights.h5, with a reference."""
    tmp = tmp_path_factory.mktemp("weights")
    done = {}
    for case, source, reference in WEIGHTS_CASES:
        out = tmp / f"{case}.weights.h5"
        r = ckptfix.convert_checkpoint(K2 / case / source, out, reference=K2 / case / reference)
        job = {
            "case": f"weights_{case}",
            "path": str(out),
            "build": case,
            "inputs": str(K2 / case / "inputs.npz"),
            "predictions": str(K2 / case / "predictions.npz"),
            "tolerance": FLOAT32,
        }
        done[(case, source, reference)] = (r, job)
    return done


@pytest.mark.parametrize("case,source,reference", WEIGHTS_CASES)
def test_weights_only_with_a_reference_becomes_keras3_weights(
    weights_converted, case: str, source: str, reference: str
) -> None:
    r, _ = weights_converted[(case, source, reference)]
    assert r.verified and r.output_format == "keras3-weights" and not r.optimizer_kept
    assert r.layout_source == "reference" and r.layout == "exact"


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_keras3_template_load_weights_accepts_them(weights_converted, tmp_path, backend):
    """Keras 3's own build of the template (fixtures/models.py) loads each .weights.h5."""
    jobs = [job for _, job in weights_converted.values()]
    results = run_loader(backend, jobs, tmp_path)
    for job in jobs:
        r = results[job["case"]]
        assert r["loaded"], f"{job['case']}: {r.get('error')}"
        assert r["diff"] <= 1.0, f"{job['case']}: {r['diff']}"


def test_weights_only_without_a_config_is_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ckptfix.LayoutError, match="pass reference= with a model.to_json"):
        ckptfix.convert_checkpoint(K2 / "dense_bn" / "template_weights.h5", tmp_path / "x.keras")
    assert not (tmp_path / "x.keras").exists()


def test_reference_of_another_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ckptfix.ReferenceMismatchError, match="not in the reference's config"):
        ckptfix.convert_checkpoint(
            K2 / "dense_bn" / "template_weights.h5",
            tmp_path / "x.weights.h5",
            reference=K2 / "cnn" / "template.json",
        )


# --- real files from public projects -------------------------------------------------------

REAL = {
    "mastersthesis__gender_8.hdf5": "mastersthesis",
    "neurowriter__chupitos.h5": None,
    "Online-Signature-Verification__siamese_model.h5": "signature",
}
#: real Keras 2 files that cannot convert, and the reason the refusal must give
REAL_REFUSED = {
    "CarBehaviorCloning__model.h5": "pass reference=",  # weights only, no config
    "DeepAnomaly__lstm_model.h5": "pass reference=",
}


def test_every_real_keras2_file_is_converted_or_refused_here(realworld: Path) -> None:
    """No real Keras 2 file in ../shared/realworld escapes these tests: each full model is in
    REAL (converted, loaded by Keras 3), each other Keras 2 file in REAL_REFUSED."""
    for path in sorted(realworld.iterdir()):
        if path.suffix not in (".h5", ".hdf5"):
            continue
        fmt = read_checkpoint(path).format
        if fmt == "keras2-h5-model":
            assert path.name in REAL, f"{path.name}: a Keras 2 full model this test does not load"
        elif fmt.startswith("keras2"):
            assert path.name in REAL_REFUSED, f"{path.name}: {fmt} not covered"
        else:
            assert path.name not in REAL and path.name not in REAL_REFUSED


@pytest.mark.parametrize("name", sorted(REAL_REFUSED))
def test_real_weights_only_files_are_refused_with_their_reason(
    realworld: Path, tmp_path: Path, name: str
) -> None:
    with pytest.raises(CkptfixError, match=REAL_REFUSED[name]) as info:
        ckptfix.convert_checkpoint(realworld / name, tmp_path / "x.keras")
    assert info.value.exit_code == ckptfix.ExitCode.REFUSED
    report = ckptfix.inspect_checkpoint(realworld / name)
    assert report.keras3 is not None and not report.keras3.converts
    assert REAL_REFUSED[name] in str(report.keras3.blocker)


_REFERENCE = """
import json, sys, numpy as np
sys.path.insert(0, {tests!r})
import tf_keras, realworld_layers
classes = realworld_layers.classes(tf_keras)
for name, kind, out in json.loads(sys.argv[1]):
    m = tf_keras.models.load_model(name, custom_objects=classes.get(kind, {{}}), compile=False)
    rng = np.random.default_rng(7)
    xs = []
    for t in m.inputs:
        shape = (2, *(int(d) for d in t.shape[1:]))
        if "embedding" in m.layers[1].name:  # token ids, stored as float32 by Keras 2.0.8
            xs.append(rng.integers(0, 242, size=shape).astype("float32"))
        else:
            xs.append(rng.normal(size=shape).astype("float32"))
    ys = m.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    ys = ys if isinstance(ys, list) else [ys]
    np.savez(out + "_inputs.npz", **{{f"x{{i}}": x for i, x in enumerate(xs)}})
    np.savez(out + "_predictions.npz", **{{f"y{{i}}": y for i, y in enumerate(ys)}})
"""


@pytest.fixture(scope="module")
def real_converted(realworld: Path, tmp_path_factory: pytest.TempPathFactory):
    """The convertible real files as .keras, and tf_keras's predictions of the originals."""
    tmp = tmp_path_factory.mktemp("real")
    jobs, specs = [], []
    for name, kind in REAL.items():
        out = tmp / (name.split(".")[0] + ".keras")
        r = ckptfix.convert_checkpoint(realworld / name, out)
        assert r.verified
        ready = ckptfix.inspect_checkpoint(realworld / name).keras3
        assert ready is not None and ready.converts
        # inspect names the classes Keras 3 needs; this test supplies exactly those
        classes = sorted(realworld_layers.CLASS_NAMES.get(kind, ())) if kind else []
        assert sorted(ready.custom_objects) == classes
        base = str(tmp / name.split(".")[0])
        specs.append((str(realworld / name), kind, base))
        jobs.append(
            {
                "case": name,
                "path": str(out),
                "inputs": base + "_inputs.npz",
                "predictions": base + "_predictions.npz",
                "tolerance": FLOAT32,
                "custom": kind,
                "classes": classes,
                "result": r,
            }
        )
    proc = subprocess.run(
        [sys.executable, "-c", _REFERENCE.format(tests=str(ROOT / "tests")), json.dumps(specs)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return jobs


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_real_files_load_in_keras3_like_tf_keras(real_converted, tmp_path: Path, backend: str):
    """Each real file, converted, predicts as tf_keras does from the original (custom classes
    supplied as custom_objects); without its class, a custom-layer file does not load."""
    jobs = [{k: v for k, v in j.items() if k != "result"} for j in real_converted]
    jobs += [{**j, "case": j["case"] + " (no class)", "custom": None} for j in jobs if j["custom"]]
    results = run_loader(backend, jobs, tmp_path)
    for j in real_converted:
        r = results[j["case"]]
        assert r["loaded"], f"{backend} {j['case']}: {r.get('error')}"
        assert r["diff"] <= 1.0, f"{backend} {j['case']}: {r['diff']:.3g} x tolerance"
        if j["custom"]:
            missing = results[j["case"] + " (no class)"]
            assert not missing["loaded"]
            for cls in j["classes"]:
                assert f"Could not locate class '{cls}'" in missing["error"], missing["error"]
