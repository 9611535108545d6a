"""Keras 3 formats: nested ``.weights.h5`` and ``.keras`` archives (issue 4).

The fixtures in ``fixtures/keras3`` were written by Keras 3.15's own writers after short real
training runs (see ``fixtures/make_keras3_fixtures.py``). The TF-free tests convert, inspect
and refuse; the ``tf`` tests load the converted files back with Keras 3 into freshly built
templates and compare predictions, arrays and optimizer state with the trained ones.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from ckptfix.cli import app
from ckptfix.convert import convert_checkpoint
from ckptfix.errors import (
    AmbiguousTemplateError,
    CorruptCheckpointError,
    ExitCode,
    NotACheckpointError,
    NothingToConvertError,
    TemplateNotFoundError,
)
from ckptfix.report import inspect_checkpoint
from tests.conftest import FIXTURES, assert_predictions_close, fixture_module, sha256

K3 = FIXTURES / "keras3"
CASES = {
    "parallel": ["template"],
    "sequential": ["regressor"],
    "autoencoder": ["encoder", "decoder"],
}
CONVERSIONS = [(c, n, ext) for c, names in CASES.items() for n in names for ext in ("h5", "keras")]


def _templates() -> Any:
    return fixture_module("keras3/templates.py")


def _src(case: str, ext: str) -> Path:
    return K3 / case / ("wrapper.weights.h5" if ext == "h5" else "wrapper.keras")


def _convert(case: str, name: str, ext: str, out_dir: Path) -> tuple[Path, Any]:
    src = _src(case, ext)
    dst = out_dir / (f"{name}.weights.h5" if ext == "h5" else f"{name}.keras")
    choice = name if len(CASES[case]) > 1 else None
    return dst, convert_checkpoint(src, dst, template=choice)


def _manifest(case: str) -> dict[str, Any]:
    return json.loads((K3 / case / "manifest.json").read_text())


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.count(";") >= 2, msg
    return msg


# --- conversion without TensorFlow ---------------------------------------------------------


@pytest.mark.parametrize("case,name,ext", CONVERSIONS)
def test_convert_writes_the_templates_tensors(tmp_path: Path, case: str, name: str, ext: str):
    src = _src(case, ext)
    before = sha256(src)
    dst, result = _convert(case, name, ext, tmp_path)
    assert sha256(src) == before
    assert result.verified and result.template == name
    assert result.layout == "exact"
    assert result.layout_source == ("config" if ext == "keras" else "paths")
    assert result.tensors == _manifest(case)["templates"][name]["tensors"]
    assert result.full_model == (ext == "keras")
    # The converted file has the layout the template writes itself, tensor for tensor.
    own = K3 / case / f"{name}.weights.h5"
    if ext == "h5":
        got = h5py.File(dst, "r")
    else:
        with zipfile.ZipFile(dst) as zf:
            got = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
    with h5py.File(own, "r") as ref, got:
        names: list[str] = []
        ref.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            assert got[n].shape == ref[n].shape and got[n].dtype == ref[n].dtype, n
            np.testing.assert_array_equal(got[n][()], ref[n][()])
        assert got["vars"].attrs["name"] == name
        assert ("optimizer" in got) == result.optimizer_kept
    assert list(tmp_path.iterdir()) == [dst]  # no temporaries left behind


def test_keras_output_config_is_the_template_without_lambdas(tmp_path: Path):
    dst, _ = _convert("parallel", "template", "keras", tmp_path)
    with zipfile.ZipFile(dst) as zf:
        config = json.loads(zf.read("config.json"))
        meta = json.loads(zf.read("metadata.json"))
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    with zipfile.ZipFile(K3 / "parallel" / "template.keras") as zf:
        own = json.loads(zf.read("config.json"))
    assert config["config"]["name"] == "template"
    assert "__lambda__" not in json.dumps(config) and "Lambda" not in json.dumps(config)
    assert [x["class_name"] for x in config["config"]["layers"]] == [
        x["class_name"] for x in own["config"]["layers"]
    ]
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert meta["keras_version"].startswith("3.")


def test_optimizer_kept_whole_when_the_template_owns_every_trainable(tmp_path: Path):
    # Normalization's mean/variance/count sit outside the template but have no slots.
    dst, result = _convert("sequential", "regressor", "h5", tmp_path)
    with h5py.File(dst, "r") as f, h5py.File(_src("sequential", "h5"), "r") as s:
        assert len(f["optimizer/vars"]) == len(s["optimizer/vars"]) == 6
    assert result.optimizer_kept and result.warnings == ()


def test_weights_file_drops_optimizer_it_cannot_split_and_says_so(tmp_path: Path):
    _, result = _convert("autoencoder", "encoder", "h5", tmp_path)
    assert not result.optimizer_kept
    assert "optimizer state not kept" in result.warnings[0]


def test_force_and_existing_destination(tmp_path: Path):
    dst, _ = _convert("parallel", "template", "keras", tmp_path)
    with pytest.raises(Exception, match="already exists"):
        convert_checkpoint(_src("parallel", "keras"), dst)
    convert_checkpoint(_src("parallel", "keras"), dst, force=True)


# --- inspection ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_inspect_parallel(ext: str):
    r = inspect_checkpoint(_src("parallel", ext))
    assert r.format == ("keras3-weights" if ext == "h5" else "keras3-archive")
    assert (r.wrapped, r.parallel, r.template, r.replicas) == (True, True, "template", 2)
    assert r.slices == ("lambda_1", "lambda_2") and r.merges == ("probs",)
    assert r.candidates == ("template",)
    m = _manifest("parallel")
    assert (r.tensors, r.parameters) == (10, m["templates"]["template"]["parameters"])
    weighted = [x.name for x in r.layers if x.weights]
    assert set(weighted) == {"hidden", "bn", "hidden_2", "probs"}
    if ext == "keras":  # the config gives the real layer order
        assert weighted == ["hidden", "bn", "hidden_2", "probs"]
        assert r.keras_version and r.keras_version.startswith("3.")
    assert r.optimizer.present and r.optimizer.iterations == m["optimizer_iterations"]
    assert r.optimizer.tensors == m["optimizer_variables"] and r.optimizer.slots == 16
    src = _src("parallel", ext)
    out = src.with_name("wrapper.single." + ("weights.h5" if ext == "h5" else "keras"))
    assert r.convert_command == f"ckptfix convert {src} {out}"  # runnable, path-complete


def test_inspect_two_nested_models_lists_candidates():
    r = inspect_checkpoint(_src("autoencoder", "keras"))
    assert r.wrapped and not r.parallel and r.template is None
    assert r.candidates == ("encoder", "decoder")
    src = _src("autoencoder", "keras")
    assert r.convert_command == (
        f"ckptfix convert {src} {src.with_name('wrapper.single.keras')} --template encoder"
    )
    # One chosen candidate is described (``ckptfix inspect --template``).
    chosen = inspect_checkpoint(_src("autoencoder", "keras"), template="decoder")
    assert chosen.template == "decoder" and chosen.tensors == 8
    assert [x.name for x in chosen.layers if x.weights] == ["dec_hidden", "dec_bn", "dec_out"]


def test_inspect_realworld_keras3_weights(realworld: Path, tmp_path: Path):
    path = realworld / "ANN-Classification-Churn__model.weights.h5"
    before = sha256(path)
    r = inspect_checkpoint(path)
    assert r.format == "keras3-weights"
    assert (r.wrapped, r.parallel, r.template, r.candidates) == (False, False, None, ())
    assert r.convert_command is None
    assert [x.name for x in r.layers] == ["dense", "dense_1", "dense_2"]
    assert r.tensors == 6 and r.parameters == 12 * 64 + 64 + 64 * 32 + 32 + 32 + 1
    assert r.optimizer.present and r.optimizer.tensors == 14 and r.optimizer.slots == 12
    with pytest.raises(NothingToConvertError) as exc:
        convert_checkpoint(path, tmp_path / "out.weights.h5")
    assert "nothing to convert" in _one_line(exc.value)
    assert sha256(path) == before
    assert list(tmp_path.iterdir()) == []


# --- refusals ------------------------------------------------------------------------------


def test_template_own_file_is_nothing_to_convert(tmp_path: Path):
    for own in (K3 / "parallel" / "template.weights.h5", K3 / "parallel" / "template.keras"):
        with pytest.raises(NothingToConvertError) as exc:
            convert_checkpoint(own, tmp_path / ("x" + "".join(own.suffixes)))
        assert "found none" in _one_line(exc.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_several_nested_models_need_a_template(tmp_path: Path, ext: str):
    out = tmp_path / ("out.weights.h5" if ext == "h5" else "out.keras")
    with pytest.raises(AmbiguousTemplateError) as exc:
        convert_checkpoint(_src("autoencoder", ext), out)
    assert "found 2 (encoder, decoder); pass template=NAME" in _one_line(exc.value)
    with pytest.raises(TemplateNotFoundError) as exc2:
        convert_checkpoint(_src("autoencoder", ext), out, template="functional")
    assert "(nested models in the file: encoder, decoder); pick one" in _one_line(exc2.value)
    assert list(tmp_path.iterdir()) == []


def test_zip_that_is_not_a_keras_archive(tmp_path: Path):
    bad = tmp_path / "notes.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(NotACheckpointError) as exc:
        convert_checkpoint(bad, tmp_path / "out.keras")
    assert "found a zip without it" in _one_line(exc.value)
    with pytest.raises(NotACheckpointError):
        inspect_checkpoint(bad)


def test_archive_without_weights(tmp_path: Path):
    bad = tmp_path / "noweights.keras"
    with zipfile.ZipFile(K3 / "parallel" / "wrapper.keras") as src, zipfile.ZipFile(bad, "w") as zf:
        for n in ("config.json", "metadata.json"):
            zf.writestr(n, src.read(n))
    before = sha256(bad)
    with pytest.raises(CorruptCheckpointError) as exc:
        convert_checkpoint(bad, tmp_path / "out.keras")
    assert "expected model.weights.h5" in _one_line(exc.value)
    assert sha256(bad) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noweights.keras"]


def test_cli_convert_and_refusal(tmp_path: Path):
    runner = CliRunner()
    out = tmp_path / "template.keras"
    ok = runner.invoke(app, ["convert", str(_src("parallel", "keras")), str(out), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["template"] == "template" and out.exists()
    bad = runner.invoke(
        app, ["convert", str(_src("autoencoder", "h5")), str(tmp_path / "x.weights.h5")]
    )
    assert bad.exit_code == ExitCode.REFUSED
    assert "pass --template NAME" in bad.output


# --- Keras 3 loads the converted files -----------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], Path]:
    out = tmp_path_factory.mktemp("k3")
    return {(c, n, e): _convert(c, n, e, out)[0] for c, n, e in CONVERSIONS}


@pytest.mark.tf
@pytest.mark.parametrize("case,name", [(c, n) for c, names in CASES.items() for n in names])
def test_keras3_loads_converted_weights(keras3: Any, converted: dict, case: str, name: str):
    t = _templates()
    model = t.build_template(keras3, case, name)
    model.load_weights(converted[(case, name, "h5")])
    own = t.build_template(keras3, case, name)
    own.load_weights(K3 / case / f"{name}.weights.h5")
    for a, b in zip(model.weights, own.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = np.load(K3 / case / "inputs.npz")[name]
    want = np.load(K3 / case / "predictions.npz")[name]
    assert_predictions_close(model.predict(x, verbose=0), want)  # recorded on another CPU


@pytest.mark.tf
@pytest.mark.parametrize("case,name", [(c, n) for c, names in CASES.items() for n in names])
def test_keras3_load_model_safe_mode(keras3: Any, converted: dict, case: str, name: str):
    model = keras3.models.load_model(converted[(case, name, "keras")])  # safe_mode=True
    assert model.name == name
    x = np.load(K3 / case / "inputs.npz")[name]
    want = np.load(K3 / case / "predictions.npz")[name]
    assert_predictions_close(model.predict(x, verbose=0), want)  # recorded on another CPU
    assert int(model.optimizer.iterations.numpy()) == _manifest(case)["optimizer_iterations"]


@pytest.mark.tf
@pytest.mark.parametrize("name", ["encoder", "decoder"])
def test_keras3_optimizer_slots_follow_their_variables(keras3: Any, converted: dict, name: str):
    """The template's slots are the wrapper's slots of the same variables (amsgrad: 3 kinds)."""
    t = _templates()
    enc, dec = t.build_encoder(keras3), t.build_decoder(keras3)
    wrapper = t.build_autoencoder(keras3, enc, dec)
    wrapper.compile(optimizer=keras3.optimizers.Adam(amsgrad=True), loss="mse")
    wrapper.optimizer.build(wrapper.trainable_variables)
    wrapper.load_weights(_src("autoencoder", "h5"))
    inner = enc if name == "encoder" else dec
    model = keras3.models.load_model(converted[("autoencoder", name, "keras")])
    index = {id(v): i for i, v in enumerate(wrapper.trainable_variables)}
    kinds = ("_momentums", "_velocities", "_velocity_hats")
    for j, v in enumerate(inner.trainable_variables):
        i = index[id(v)]
        for kind in kinds:
            want = np.asarray(getattr(wrapper.optimizer, kind)[i])
            got = np.asarray(getattr(model.optimizer, kind)[j])
            assert want.any()  # trained: a wrong pick of zeros would pass otherwise
            np.testing.assert_array_equal(got, want)


@pytest.mark.tf
def test_keras3_cannot_load_the_wrapper_into_the_template(keras3: Any):
    """The trap this fixes is real: Keras 3 refuses the unconverted file."""
    model = _templates().build_parallel_template(keras3)
    with pytest.raises(ValueError, match="could not be loaded"):
        model.load_weights(_src("parallel", "h5"))


def test_fixtures_are_small():
    total = sum(p.stat().st_size for p in K3.rglob("*") if p.is_file())
    assert total < 1_000_000
