"""TensorFlow-format sources: TF checkpoints and SavedModels of parallel models (issue 13).

The fixtures in ``fixtures/tf/`` were written by tf_keras (``make_tf_fixtures.py``). Tests
without the ``tf`` fixture import no TensorFlow: they read the files with ckptfix and compare
arrays with h5py and numpy. The TF tests load every output with Keras itself (tf_keras
``load_weights``/``load_model``, Keras 3 ``load_weights``) into a model built afresh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from ckptfix import bundle, convert_checkpoint, inspect_checkpoint, verify_conversion
from ckptfix.errors import (
    CorruptCheckpointError,
    ExitCode,
    NothingToConvertError,
    OutputError,
    UnsupportedFormatError,
)
from ckptfix.report import to_json

from .conftest import FIXTURES, ROOT, fixture_module, sha256

TF = FIXTURES / "tf"
CASES = ("dense_bn", "frozen", "nested")
#: The optimizer each case was trained with (fixtures/make_tf_fixtures.py).
LEGACY = {"frozen"}


def manifest(case: str) -> dict:
    return json.loads((TF / case / "manifest.json").read_text())


def prefix(case: str) -> Path:
    return TF / case / "parallel" / "ckpt"


def savedmodel(case: str) -> Path:
    return TF / case / "savedmodel"


def h5_arrays(path: Path) -> list[tuple[str, np.ndarray]]:
    """(layer, array) of a Keras 2 weights file, in positional load order."""
    out = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in [n.decode() if isinstance(n, bytes) else n for n in root.attrs["layer_names"]]:
            names = root[layer].attrs["weight_names"]
            for w in names:
                w = w.decode() if isinstance(w, bytes) else w
                out.append((layer, np.asarray(root[layer][w])))
    return out


def hashes(*paths: Path) -> dict[str, str]:
    files = [
        p for q in paths for p in ([q] if q.is_file() else sorted(q.rglob("*"))) if p.is_file()
    ]
    return {str(p): sha256(p) for p in files}


def inputs_of(case: str) -> set[Path]:
    return {p for p in (TF / case).rglob("*") if p.is_file()}


# --- the table format and the messages -----------------------------------------------------


@pytest.mark.parametrize("index", sorted(TF.rglob("*.index")), ids=lambda p: str(p.relative_to(TF)))
def test_table_writer_reproduces_tensorflow_bytes(index):
    """Reading every entry and writing them back gives TensorFlow's index byte for byte."""
    data = index.read_bytes()
    items = bundle.read_table(data, index.name)
    assert items[0][0] == b""  # the header entry comes first
    assert bundle.write_table(items) == data


def test_every_tensor_matches_its_crc32c():
    for index in TF.rglob("*.index"):
        idx = bundle.read_index(index.with_suffix(""))
        for e in idx.entries.values():
            raw = idx.shard_file(e.shard).read_bytes()[e.offset : e.offset + e.size]
            if e.dtype == "string":
                value = bundle.read_string_scalar(idx, e)
                assert bundle.encode_string_scalar(value) == (raw, e.crc32c)
            else:
                assert bundle.mask(bundle.crc32c(raw)) == e.crc32c, (index, e.key)


def test_crc_mask_round_trip():
    for crc in (0, 1, 0xFFFFFFFF, 0x12345678, bundle.crc32c(b"123456789")):
        assert bundle.unmask(bundle.mask(crc)) == crc
    assert bundle.crc32c(b"123456789") == 0xE3069283  # the crc32c check value


# --- inspect ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_inspect_tf_checkpoint(case):
    m = manifest(case)
    r = inspect_checkpoint(prefix(case))
    assert r.format == "tf-checkpoint"
    assert r.parallel and r.wrapped
    assert r.template == "layer_with_weights-0" and r.replicas == 2
    assert r.slices == ("layer-1", "layer-2") and r.merges == ("layer-4",)
    assert r.layout == "exact" and r.layout_source == "paths"
    flat = [w.name for layer in r.layers for w in layer.weights]
    assert sorted(flat) == sorted(m["template_weight_names"])
    assert r.tensors == len(m["template_weight_names"])
    assert r.optimizer.present and r.optimizer.iterations == m["optimizer"]["iterations"]
    assert r.optimizer.class_name == "Adam"
    assert r.convert_command == f"ckptfix convert {prefix(case)} {prefix(case)}.single"


def test_inspect_finds_the_checkpoint_from_any_of_its_names():
    p = prefix("dense_bn")
    names = [p, Path(f"{p}.index"), Path(f"{p}.data-00000-of-00001"), p.parent]
    reports = [to_json(inspect_checkpoint(n)) for n in names]
    assert all(r == reports[0] for r in reports)


def test_inspect_nested_template_keras2_order():
    """The nested model's weights in Keras 2's order: all trainable, then non-trainable."""
    r = inspect_checkpoint(prefix("nested"))
    nested = r.layers[0]
    assert [c.name for c in nested.children] == ["dense", "batch_normalization", "dense_1"]
    want = [
        "dense/kernel:0",
        "dense/bias:0",
        "batch_normalization/gamma:0",
        "batch_normalization/beta:0",
        "dense_1/kernel:0",
        "dense_1/bias:0",
        "batch_normalization/moving_mean:0",
        "batch_normalization/moving_variance:0",
    ]
    assert [w.name for w in nested.weights] == want
    # what tf_keras itself wrote for the same template: its encoder group in template_weights.h5
    with h5py.File(TF / "nested" / "template_weights.h5", "r") as f:
        stored = f["encoder"].attrs["weight_names"]
        assert [w.decode() if isinstance(w, bytes) else w for w in stored] == want


@pytest.mark.parametrize("case", CASES)
def test_inspect_savedmodel(case):
    m = manifest(case)
    r = inspect_checkpoint(savedmodel(case))
    assert r.format == "tf-savedmodel" and r.keras_version == m["writer"]["tf_keras"]
    assert r.parallel and r.template == m["template_name"] and r.replicas == 2
    assert r.slices == ("lambda", "lambda_1")
    assert r.layout == "exact" and r.layout_source == "config"
    assert [layer.name for layer in r.layers] == m["template_layers_with_weights"]
    assert r.optimizer.iterations == m["optimizer"]["iterations"]
    assert r.convert_command.endswith("savedmodel.single.h5")


def test_frozen_layers_are_reported_from_the_savedmodel():
    r = inspect_checkpoint(savedmodel("frozen"))
    frozen = [layer.name for layer in r.layers if layer.trainable is False]
    assert frozen == manifest("frozen")["frozen_layers"]


# --- convert: TF checkpoint -> Keras 2 .h5 ----------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_convert_tf_checkpoint_to_h5_matches_template_weights(case, tmp_path):
    before = hashes(TF / case)
    out = tmp_path / "single.h5"
    r = convert_checkpoint(prefix(case), out)
    assert r.verified and r.layout == "exact" and r.format == "tf-checkpoint"
    assert r.output_format == "keras2-h5-weights"
    got, want = h5_arrays(out), h5_arrays(TF / case / "template_weights.h5")
    # a TF checkpoint names layers after their variables; a nested model by its object path
    names = {"nested": ["layer_with_weights-0"] * 8 + ["dense_2"] * 2}
    assert [layer for layer, _ in got] == names.get(case, [layer for layer, _ in want])
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert hashes(TF / case) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.h5"]


def test_verify_a_converted_h5(tmp_path):
    out = tmp_path / "single.h5"
    convert_checkpoint(prefix("frozen"), out)
    v = verify_conversion(prefix("frozen"), out)
    assert v.ok and v.tensors == 12


# --- convert: TF checkpoint -> TF checkpoint of the template --------------------------------


@pytest.mark.parametrize("case", CASES)
def test_convert_tf_checkpoint_to_template_checkpoint(case, tmp_path):
    before = hashes(TF / case)
    out = tmp_path / "single"
    r = convert_checkpoint(prefix(case), out)
    assert r.verified and r.optimizer_kept and r.output_format == "tf-checkpoint"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["single.data-00000-of-00001", "single.index"]
    got = bundle.read_index(out)
    ref = bundle.read_index(TF / case / "template" / "ckpt")
    # the template's weights sit under the keys template.save_weights gives them
    weight_keys = [k for k in ref.entries if k != bundle.GRAPH_KEY]
    for key in weight_keys:
        a, b = got.entries[key], ref.entries[key]
        assert (a.dtype, a.shape, a.crc32c) == (b.dtype, b.shape, b.crc32c)
        raw_a = got.shard_file(0).read_bytes()[a.offset : a.offset + a.size]
        raw_b = ref.shard_file(0).read_bytes()[b.offset : b.offset + b.size]
        assert raw_a == raw_b
    # the shard is the source's, copied whole, plus the new object graph at its end
    src = prefix(case).with_name("ckpt.data-00000-of-00001").read_bytes()
    assert got.shard_file(0).read_bytes()[: len(src)] == src
    opt_keys = [k for k in got.entries if ".OPTIMIZER_SLOT" in k or k.startswith("optimizer/")]
    src_keys = [
        k for k in bundle.read_index(prefix(case)).entries if "OPTIMIZER" in k or "optimizer" in k
    ]
    assert len(opt_keys) == len(src_keys) > 0
    assert (
        all(
            not k.startswith("layer_with_weights-0/layer_with_weights-0/kernel")
            for k in got.entries
        )
        or case == "nested"
    )
    assert hashes(TF / case) == before
    again = inspect_checkpoint(out)
    assert (
        not again.wrapped
        and again.optimizer.iterations == manifest(case)["optimizer"]["iterations"]
    )


def test_convert_template_checkpoint_refuses_the_source_itself(tmp_path):
    work = tmp_path / "w"
    shutil.copytree(TF / "dense_bn" / "parallel", work)
    with pytest.raises(OutputError, match="other than the source"):
        convert_checkpoint(work / "ckpt", work / "ckpt")
    (work / "out.index").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        convert_checkpoint(work / "ckpt", work / "out")
    assert (work / "out.index").read_bytes() == b"x"


def test_a_single_model_checkpoint_is_nothing_to_convert_but_migrates_to_h5(tmp_path):
    src = TF / "nested" / "template" / "ckpt"
    with pytest.raises(NothingToConvertError):
        convert_checkpoint(src, tmp_path / "again")
    r = convert_checkpoint(src, tmp_path / "single.h5")
    assert r.verified
    got = h5_arrays(tmp_path / "single.h5")
    want = h5_arrays(TF / "nested" / "template_weights.h5")
    assert [a.tobytes() for _, a in got] == [b.tobytes() for _, b in want]


# --- convert: SavedModel -> Keras 2 full model -----------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_convert_savedmodel_to_full_h5(case, tmp_path):
    before = hashes(TF / case)
    out = tmp_path / "single.h5"
    r = convert_checkpoint(savedmodel(case), out)
    assert r.verified and r.full_model and r.optimizer_kept and r.layout == "exact"
    got, want = h5_arrays(out), h5_arrays(TF / case / "template_weights.h5")
    assert [a.tobytes() for _, a in got] == [b.tobytes() for _, b in want]
    with h5py.File(out, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        assert cfg["config"]["name"] == manifest(case)["template_name"]
        assert "Lambda" not in json.dumps(cfg)
        training = json.loads(f.attrs["training_config"])
        assert training["loss"] == "mse"
        names = [
            n.decode() if isinstance(n, bytes) else n
            for n in f["optimizer_weights"].attrs["weight_names"]
        ]
    if case in LEGACY:
        assert names[0] == "Adam/iter:0" and names[1] == "Adam/dense/kernel/m:0"
    else:
        assert names[0] == "iteration:0" and names[1] == "Adam/m/dense/kernel:0"
    if case in ("dense_bn", "nested"):  # tf_keras's own .h5 of the same model and optimizer
        k2 = json.loads((FIXTURES / "keras2" / case / "manifest.json").read_text())
        assert names == k2["optimizer"]["weight_names"]
    assert hashes(TF / case) == before


def test_savedmodel_checkpoint_matches_keras2_reader_shape():
    """The SavedModel Checkpoint carries what a Keras 2 full-model .h5 reader gives."""
    from ckptfix.convert import read_checkpoint

    sm = read_checkpoint(savedmodel("dense_bn"))
    h5 = read_checkpoint(FIXTURES / "keras2" / "dense_bn" / "parallel_model.h5")
    assert sm.full_model and sm.template is not None and h5.template is not None
    assert sm.template.config["class_name"] == h5.template.config["class_name"]
    assert [layer.name for layer in sm.template.layers] == [
        layer.name for layer in h5.template.layers
    ]
    assert set(sm.training_config) == set(h5.training_config)
    assert [v.name for v in sm.template_optimizer.variables] == [
        v.name for v in h5.template_optimizer.variables
    ]
    assert [v.role for v in sm.template_optimizer.variables] == [
        v.role for v in h5.template_optimizer.variables
    ]
    weights = {w.tensor.location: w.name for w in sm.template.weights}
    for v in sm.template_optimizer.variables:
        if v.role == "slot":  # each slot tied to its own variable: Adam/m/dense/kernel:0
            assert v.name.endswith("/" + weights[v.variable]), (v.name, weights[v.variable])


def test_savedmodel_of_tf_keras_2_4_keeps_metadata_in_saved_model_pb(tmp_path):
    """tf.keras 2.0-2.4 wrote no keras_metadata.pb: each object's Keras metadata sat in
    saved_model.pb's SavedUserObject.metadata. Rebuilt here from the fixture (the same JSON,
    moved where those versions kept it); the conversion must not change."""
    from ckptfix.protos import SavedMetadata, SavedModel

    old = tmp_path / "old"
    shutil.copytree(savedmodel("nested"), old)
    md = SavedMetadata()
    md.ParseFromString((old / "keras_metadata.pb").read_bytes())
    sm = SavedModel()
    sm.ParseFromString((old / "saved_model.pb").read_bytes())
    nodes = sm.meta_graphs[0].object_graph_def.nodes
    for n in md.nodes:
        assert nodes[n.node_id].WhichOneof("kind") == "user_object"
        nodes[n.node_id].user_object.metadata = n.metadata
    (old / "saved_model.pb").write_bytes(sm.SerializeToString())
    (old / "keras_metadata.pb").unlink()
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    convert_checkpoint(savedmodel("nested"), a)
    convert_checkpoint(old, b)
    assert [x.tobytes() for _, x in h5_arrays(a)] == [y.tobytes() for _, y in h5_arrays(b)]
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for key in ("model_config", "training_config"):
            assert json.loads(fa.attrs[key]) == json.loads(fb.attrs[key])


# --- verify and batch ---------------------------------------------------------------------


def test_verify_tf_outputs_and_catch_a_changed_one(tmp_path):
    out = tmp_path / "single"
    convert_checkpoint(prefix("dense_bn"), out)
    assert verify_conversion(prefix("dense_bn"), out).ok
    assert verify_conversion(
        savedmodel("dense_bn"), _converted(savedmodel("dense_bn"), tmp_path)
    ).ok
    idx = bundle.read_index(out)
    e = idx.entries["layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    data = bytearray(idx.shard_file(0).read_bytes())
    data[e.offset] ^= 1
    idx.shard_file(0).write_bytes(bytes(data))
    v = verify_conversion(prefix("dense_bn"), out)
    assert not v.ok and any("kernel" in m for m in v.mismatches)


def _converted(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / "sm.h5"
    convert_checkpoint(src, out)
    return out


def test_batch_finds_tf_checkpoints_and_savedmodels(tmp_path):
    from ckptfix import convert_batch

    runs = tmp_path / "runs"
    shutil.copytree(TF / "dense_bn" / "parallel", runs / "a")
    shutil.copytree(savedmodel("nested"), runs / "b" / "sm")
    before = hashes(runs)
    report = convert_batch([runs], tmp_path / "out", jobs=1)
    assert [e.status for e in report.entries] == ["converted", "converted"]
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert files == ["a", "a/ckpt.data-00000-of-00001", "a/ckpt.index", "b", "b/sm.h5"]
    again = convert_batch([runs], tmp_path / "out", jobs=1)
    assert [e.status for e in again.entries] == ["skipped", "skipped"]
    assert hashes(runs) == before


def test_cli_converts_a_checkpoint_folder(tmp_path):
    from typer.testing import CliRunner

    from ckptfix.cli import app

    res = CliRunner().invoke(
        app, ["convert", str(TF / "frozen" / "parallel"), str(tmp_path / "s.h5")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s.h5").is_file()


# --- bad input ---------------------------------------------------------------------------


def _copy_case(tmp_path: Path, case: str = "dense_bn") -> Path:
    work = tmp_path / "in"
    shutil.copytree(TF / case / "parallel", work)
    return work / "ckpt"


def test_missing_shard_is_refused(tmp_path):
    p = _copy_case(tmp_path)
    os.unlink(f"{p}.data-00000-of-00001")
    with pytest.raises(CorruptCheckpointError, match="data shard"):
        inspect_checkpoint(p)


def test_truncated_shard_is_refused(tmp_path):
    p = _copy_case(tmp_path)
    data = Path(f"{p}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError):
        convert_checkpoint(p, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_corrupt_tensor_bytes_fail_verification_by_crc(tmp_path):
    """A flipped byte inside a weight: the index's crc32c catches it, nothing is written."""
    p = _copy_case(tmp_path)
    idx = bundle.read_index(p)
    e = idx.entries["layer_with_weights-0/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    data = bytearray(idx.shard_file(0).read_bytes())
    data[e.offset + 5] ^= 0x40
    idx.shard_file(0).write_bytes(bytes(data))
    for out in (tmp_path / "out.h5", tmp_path / "out"):
        with pytest.raises(CorruptCheckpointError, match="crc32c its index records"):
            convert_checkpoint(p, out)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in"]


def test_snappy_blocks_are_refused_with_a_clear_message(tmp_path):
    p = _copy_case(tmp_path)
    index = Path(f"{p}.index")
    data = bytearray(index.read_bytes())
    items = bundle.read_table(bytes(data), "x")
    # rebuild with the block type byte of the first data block set to snappy (crc fixed up)
    first_len = len(bundle.write_table(items[:1]))  # unused: only to exercise the writer
    assert first_len > 0
    import struct

    off, size = 0, None
    # find the first block's trailer: the index block handle points at data blocks
    footer = data[-48:]
    from ckptfix.bundle import _handle  # the table's own varint decoder

    _, _, pos = _handle(bytes(footer))
    ioff, isize, _ = _handle(bytes(footer), pos)
    sep_block = bundle._block(bytes(data), ioff, isize, "index")
    (_, handle), *_ = list(bundle._entries(sep_block, "index"))
    off, size, _ = _handle(handle)
    data[off + size] = 1
    crc = bundle.mask(bundle.crc32c(bytes(data[off : off + size + 1])))
    data[off + size + 1 : off + size + 5] = struct.pack("<I", crc)
    index.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError, match="snappy"):
        inspect_checkpoint(p)


def test_cli_inspect_and_convert_tf_checkpoint(tmp_path):
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    run = [sys.executable, "-m", "ckptfix"]
    proc = subprocess.run(
        [*run, "inspect", str(prefix("frozen"))], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "TensorFlow checkpoint (save_weights" in proc.stdout
    assert "layer_with_weights-0" in proc.stdout
    proc = subprocess.run(
        [*run, "convert", str(savedmodel("frozen")), str(tmp_path / "m.h5")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.index").write_bytes(b"not a table at all, just text" * 3)
    proc = subprocess.run(
        [*run, "inspect", str(bad / "x.index")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    assert proc.stderr.startswith("Error: expected") and len(proc.stderr.splitlines()) == 1


def test_tf_conversion_imports_no_tensorflow(tmp_path):
    code = (
        "import sys, ckptfix\n"
        f"ckptfix.convert_checkpoint({str(prefix('nested'))!r}, {str(tmp_path / 'a.h5')!r})\n"
        f"ckptfix.convert_checkpoint({str(prefix('nested'))!r}, {str(tmp_path / 'b')!r})\n"
        f"ckptfix.convert_checkpoint({str(savedmodel('nested'))!r}, {str(tmp_path / 'c.h5')!r})\n"
        f"ckptfix.inspect_checkpoint({str(savedmodel('nested'))!r})\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not bad, bad[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


# --- loading the outputs with Keras itself ----------------------------------------------------
# Predictions are compared within float32 tolerance: TensorFlow computes them, and its last
# bits differ between CPUs (and with oneDNN on or off); arrays are compared exactly.


def _models():
    return fixture_module("models.py")


def _optimizer(case: str, keras):
    if case in LEGACY:
        return keras.optimizers.legacy.Adam(learning_rate=0.01)
    return keras.optimizers.Adam(learning_rate=0.01)


def _reference(case: str, keras):
    ref = _models().build(case, keras)
    ref.load_weights(str(TF / case / "template_weights.h5"))
    return ref


@pytest.mark.parametrize("case", CASES)
def test_tf_keras_loads_converted_h5(case, tf_keras, tmp_path):
    out = tmp_path / "single.h5"
    convert_checkpoint(prefix(case), out)
    model = _models().build(case, tf_keras)
    model.load_weights(str(out))
    ref = _reference(case, tf_keras)
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    x = np.load(TF / case / "inputs.npz")["x0"]
    want = np.load(TF / case / "predictions.npz")["y0"]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_keras3_loads_converted_h5(case, keras3, tmp_path):
    out = tmp_path / "single.h5"
    convert_checkpoint(prefix(case), out)
    model = _models().build(case, keras3)
    model.load_weights(str(out))
    want = h5_arrays(TF / case / "template_weights.h5")
    got = [np.asarray(w) for w in model.get_weights()]
    assert sorted(a.tobytes() for a in got) == sorted(b.tobytes() for _, b in want)
    x = np.load(TF / case / "inputs.npz")["x0"]
    np.testing.assert_allclose(
        np.asarray(model.predict(x, verbose=0)),
        np.load(TF / case / "predictions.npz")["y0"],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("case", CASES)
def test_tf_keras_restores_template_checkpoint_with_optimizer(case, tf, tf_keras, tmp_path):
    out = tmp_path / "single"
    convert_checkpoint(prefix(case), out)
    model = _models().build(case, tf_keras)
    model.compile(optimizer=_optimizer(case, tf_keras), loss="mse")
    model.load_weights(str(out)).assert_existing_objects_matched()
    ref = _reference(case, tf_keras)
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    opt = model.optimizer
    if case in LEGACY:
        opt._create_all_weights(model.trainable_variables)
    else:
        opt.build(model.trainable_variables)
    assert int(opt.iterations.numpy()) == manifest(case)["optimizer"]["iterations"]
    # every slot holds one of the parallel model's slots, array for array
    src = tf.train.load_checkpoint(str(prefix(case)))
    stored = [
        src.get_tensor(k).tobytes()
        for k in src.get_variable_to_shape_map()
        if "OPTIMIZER_SLOT" in k or k.startswith("optimizer/_variables/")
    ]
    slots = [v for v in opt.variables() if v is not opt.iterations and len(v.shape) > 0]
    assert len(slots) == len(stored) > 0
    assert sorted(v.numpy().tobytes() for v in slots) == sorted(stored)
    for var in model.trainable_variables:  # and each sits on its own variable
        value = (
            opt.get_slot(var, "m")
            if case in LEGACY
            else opt._momentums[opt._index_dict[opt._var_key(var)]]
        )
        assert value.shape == var.shape


@pytest.mark.parametrize("case", CASES)
def test_tf_keras_load_model_of_converted_savedmodel(case, tf_keras, tmp_path):
    out = tmp_path / "single.h5"
    convert_checkpoint(savedmodel(case), out)
    model = tf_keras.models.load_model(str(out))
    ref = _reference(case, tf_keras)
    for a, b in zip(model.get_weights(), ref.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    assert int(model.optimizer.iterations.numpy()) == manifest(case)["optimizer"]["iterations"]
    x = np.load(TF / case / "inputs.npz")["x0"]
    want = np.load(TF / case / "predictions.npz")["y0"]
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    with h5py.File(out, "r") as f:
        stored = [
            np.asarray(f["optimizer_weights"][n])
            for n in [n.decode() for n in f["optimizer_weights"].attrs["weight_names"]]
        ]
    loaded = (
        [np.asarray(v) for v in model.optimizer.get_weights()]
        if case in LEGACY
        else [v.numpy() for v in model.optimizer.variables()]
    )
    assert [a.tobytes() for a in stored] == [b.tobytes() for b in loaded]


def _nested_frozen(keras):
    L = keras.layers
    inner = keras.Sequential(
        [
            keras.Input(shape=(8,)),
            L.Dense(8, name="inner_a"),
            L.Dense(8, name="inner_frozen", trainable=False),  # same shape as its neighbours
            L.Dense(8, name="inner_b"),
        ],
        name="encoder",
    )
    inp = keras.Input(shape=(8,))
    return keras.Model(inp, L.Dense(1, name="head")(inner(inp)), name="tpl")


@pytest.mark.parametrize("optimizer", ["legacy", "keras", None])
def test_frozen_layer_inside_a_nested_model(optimizer, tf, tf_keras, tmp_path):
    """Which layers of a nested model were frozen decides the Keras 2 order (frozen weights
    load after every trainable one). The optimizer's slots say it, for both optimizer shapes;
    without them a wrong guess would load silently (same shapes), so a .h5 is refused while a
    TF checkpoint of the template, which needs no order, is still written."""
    keras = tf_keras
    mgm = fixture_module("make_fixtures.py")
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    tpl = _nested_frozen(keras)
    par = mgm.multi_gpu_model(tpl, 2, tf, keras)
    x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    if optimizer is not None:
        opt = (
            keras.optimizers.legacy.Adam(0.01)
            if optimizer == "legacy"
            else keras.optimizers.Adam(0.01)
        )
        par.compile(optimizer=opt, loss="mse")
        par.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0)
    src = tmp_path / "par" / "ckpt"
    par.save_weights(str(src))
    tpl.save_weights(str(tmp_path / "ref.h5"))
    if optimizer is None:
        report = inspect_checkpoint(src)
        assert report.layout == "inferred" and "frozen" in report.layout_note
        from ckptfix.errors import LayoutError

        with pytest.raises(LayoutError, match="without any error"):
            convert_checkpoint(src, tmp_path / "out.h5")
        assert convert_checkpoint(src, tmp_path / "single").verified
        return
    r = convert_checkpoint(src, tmp_path / "out.h5")
    assert r.layout == "exact"
    got, want = h5_arrays(tmp_path / "out.h5"), h5_arrays(tmp_path / "ref.h5")
    assert [a.tobytes() for _, a in got] == [b.tobytes() for _, b in want]
    fresh = _nested_frozen(keras)
    fresh.load_weights(str(tmp_path / "out.h5"))
    for a, b in zip(fresh.get_weights(), tpl.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_protos_match_tensorflow(tf, tf_keras):
    """Every message of ckptfix.protos has TensorFlow's (and tf_keras's) fields, field for field."""
    from google.protobuf import descriptor_pool
    from tensorflow.core.framework import tensor_shape_pb2, tensor_slice_pb2, types_pb2
    from tensorflow.core.protobuf import (
        saved_model_pb2,
        saved_object_graph_pb2,
        tensor_bundle_pb2,
        trackable_object_graph_pb2,
    )
    from tf_keras.protobuf import saved_metadata_pb2

    from ckptfix import protos

    assert tensor_bundle_pb2 and trackable_object_graph_pb2 and tensor_shape_pb2
    assert tensor_slice_pb2 and saved_model_pb2 and saved_object_graph_pb2
    theirs = descriptor_pool.Default()

    def fields(desc):
        return {
            f.name: (f.number, f.type, f.is_repeated if hasattr(f, "is_repeated") else f.label)
            for f in desc.fields
        }

    def compare(mine, full_name, subset=False):
        ref = theirs.FindMessageTypeByName(full_name)
        got, want = fields(mine), fields(ref)
        if subset:
            want = {k: v for k, v in want.items() if k in got}
        assert got == want, full_name
        for nested in mine.nested_types:
            compare(nested, f"{full_name}.{nested.name}", subset)

    for cls in (
        protos.VersionDef,
        protos.TensorShapeProto,
        protos.TensorSliceProto,
        protos.BundleHeaderProto,
        protos.BundleEntryProto,
        protos.TrackableObjectGraph,
    ):
        compare(cls.DESCRIPTOR, cls.DESCRIPTOR.full_name)
    compare(protos.SavedMetadata.DESCRIPTOR, saved_metadata_pb2.SavedMetadata.DESCRIPTOR.full_name)
    obj = protos.SavedMetadata.DESCRIPTOR.fields_by_name["nodes"].message_type
    compare(obj, saved_metadata_pb2.SavedObject.DESCRIPTOR.full_name)
    sm = protos.SavedModel.DESCRIPTOR
    compare(sm, "tensorflow.SavedModel", subset=True)
    meta = sm.fields_by_name["meta_graphs"].message_type
    compare(meta, "tensorflow.MetaGraphDef", subset=True)
    graph = meta.fields_by_name["object_graph_def"].message_type
    compare(graph, "tensorflow.SavedObjectGraph", subset=True)
    node = graph.fields_by_name["nodes"].message_type
    compare(node, "tensorflow.SavedObject", subset=True)
    compare(node.fields_by_name["user_object"].message_type, "tensorflow.SavedUserObject")
    enum = {v.name: v.number for v in types_pb2.DataType.DESCRIPTOR.values}
    assert {k: v for k, v in enum.items() if not k.endswith("_REF")} == protos.DATA_TYPES
