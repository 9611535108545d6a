"""``ckptfix inspect``: every fixture, every real-world file, the JSON schema, bad input.

Counts are checked against what the writer recorded (the fixtures' manifest.json) or against
what h5py reads directly from the file, never against ckptfix's own reading.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

import ckptfix
from ckptfix.cli import app
from ckptfix.h5util import read_attr_list
from ckptfix.render import render_report
from ckptfix.report import LayerEntry, TensorEntry, to_json
from tests.conftest import FIXTURES, sha256
from tests.h5build import REALWORLD_FILES, wrap_single_file, write_layers

KERAS2_CASES = sorted(p.parent.name for p in (FIXTURES / "keras2").glob("*/manifest.json"))
KERAS3_CASES = sorted(p.parent.name for p in (FIXTURES / "keras3").glob("*/manifest.json"))
BAD_INPUT = 5

#: The documented top-level keys of ``inspect --json`` (README, "inspect --json").
JSON_KEYS = [
    "schema",
    "path",
    "format",
    "keras_version",
    "backend",
    "parallel",
    "wrapped",
    "template",
    "replicas",
    "slices",
    "merges",
    "candidates",
    "layout",
    "layout_source",
    "layout_note",
    "layers",
    "tensors",
    "parameters",
    "bytes",
    "dtypes",
    "optimizer",
    "convert_command",
    "notes",
    "keras3",
]


def names(value: Any) -> list[str]:
    """A manifest name list: a plain list, or {count, first, last} for huge ones."""
    return value if isinstance(value, list) else [*value["first"], *value["last"]]


def manifest(family: str, case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / family / case / "manifest.json").read_text())
    return data


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["inspect", *args])


def flat_weights(layers: tuple[LayerEntry, ...]) -> list[str]:
    return [w.name for layer in layers for w in layer.weights]


# --- Keras 2 fixtures (tf_keras writer, multi_gpu_model re-creation) -------------------------


@pytest.mark.parametrize("case", KERAS2_CASES)
@pytest.mark.parametrize("kind", ["parallel_weights.h5", "parallel_model.h5"])
def test_keras2_parallel_fixture_matches_manifest(case, kind):
    src = FIXTURES / "keras2" / case / kind
    if not src.exists():
        pytest.skip(f"{case} has no {kind}")
    m = manifest("keras2", case)
    before = sha256(src)
    r = ckptfix.inspect_checkpoint(src)
    assert r.parallel and r.wrapped
    assert r.template == m["template_name"]
    assert r.replicas == m["replicas"]
    assert list(r.slices) == m["slice_layer_names"]
    assert list(r.merges) == m["merge_layer_names"]
    assert r.tensors == m["template_tensors"]
    assert r.parameters == m["template_params"]
    assert r.bytes == m["template_bytes"]
    assert sorted(r.dtypes) == sorted(m["dtypes"])
    assert sorted(flat_weights(r.layers)) == sorted(m["parallel_weight_names"]) or (
        isinstance(m["parallel_weight_names"], dict)
        and len(flat_weights(r.layers)) == m["parallel_weight_names"]["count"]
    )
    full = kind == "parallel_model.h5"
    assert r.format == ("keras2-h5-model" if full else "keras2-h5-weights")
    if full:
        # The file's own config makes the layout exact: the report lists the template's
        # weighted layers in the writer's order, frozen ones marked.
        assert r.layout == "exact" and r.layout_source == "config"
        assert [layer.name for layer in r.layers] == m["template_layers_with_weights"]
        frozen = {layer.name for layer in r.layers if layer.trainable is False}
        assert frozen == set(m["frozen_layers"])
        assert r.optimizer.present
        assert r.optimizer.iterations == m["optimizer"]["iterations_in_file"]
        assert r.optimizer.tensors == len(m["optimizer"]["weight_names"])
    elif m["frozen"]:
        # Weights-only with a frozen layer among trainable ones: order unknowable, said so.
        assert r.layout is None and r.layout_note and "reference=" in r.layout_note
        assert r.convert_command is not None and "--reference" in r.convert_command
    else:
        # Inferred by default: the fix command needs no flag; the note says how to be exact.
        assert r.layout == "inferred" and r.layout_source == "names"
        assert r.convert_command is not None and "--" not in r.convert_command
        assert r.layout_note and "reference=" in r.layout_note
        assert not r.optimizer.present
    assert r.convert_command is not None and r.convert_command.startswith("ckptfix convert ")
    assert sha256(src) == before


@pytest.mark.parametrize("case", KERAS2_CASES)
@pytest.mark.parametrize("kind", ["template_weights.h5", "template_model.h5"])
def test_keras2_template_fixture_is_single(case, kind):
    src = FIXTURES / "keras2" / case / kind
    if not src.exists():
        pytest.skip(f"{case} has no {kind}")
    m = manifest("keras2", case)
    r = ckptfix.inspect_checkpoint(src)
    assert not r.parallel and r.replicas is None and r.convert_command is None
    assert r.tensors == m["template_tensors"] and r.parameters == m["template_params"]
    if not m["nested"]:
        assert not r.wrapped and r.template is None


def test_reference_makes_the_frozen_layout_exact():
    case = FIXTURES / "keras2" / "frozen"
    if not (case / "template.json").exists():
        pytest.skip("frozen fixture absent")
    m = manifest("keras2", "frozen")
    r = ckptfix.inspect_checkpoint(case / "parallel_weights.h5", reference=case / "template.json")
    assert r.layout == "exact" and r.layout_source == "reference"
    assert [layer.name for layer in r.layers] == m["template_layers_with_weights"]
    assert r.convert_command is not None
    assert r.convert_command.endswith(f"--reference {case / 'template.json'}")


# --- Keras 3 fixtures (Keras 3 writer) --------------------------------------------------------


@pytest.mark.parametrize("case", KERAS3_CASES)
@pytest.mark.parametrize("kind", ["wrapper.weights.h5", "wrapper.keras"])
def test_keras3_wrapper_fixture_matches_manifest(case, kind):
    m = manifest("keras3", case)
    r = ckptfix.inspect_checkpoint(FIXTURES / "keras3" / case / kind)
    assert r.format == ("keras3-archive" if kind.endswith(".keras") else "keras3-weights")
    assert set(r.candidates) == set(m["candidates"])
    assert r.parallel == (m["wrapper"] == "parallel")
    if len(m["candidates"]) == 1:
        t = m["candidates"][0]
        assert r.template == t
        assert r.tensors == m["templates"][t]["tensors"]
        assert r.parameters == m["templates"][t]["parameters"]
    assert r.optimizer.present and r.optimizer.iterations == m["optimizer_iterations"]


@pytest.mark.parametrize("case", KERAS3_CASES)
def test_keras3_single_fixtures_match_manifest(case):
    m = manifest("keras3", case)
    for t, counts in m["templates"].items():
        for suffix in (".weights.h5", ".keras"):
            path = FIXTURES / "keras3" / case / f"{t}{suffix}"
            if not path.exists():
                continue
            r = ckptfix.inspect_checkpoint(path)
            assert not r.parallel and not r.wrapped and r.convert_command is None
            assert (r.tensors, r.parameters) == (counts["tensors"], counts["parameters"])


# --- real checkpoints from public repositories -----------------------------------------------


def h5_counts(path: Path) -> tuple[int, int, int]:
    """(tensors, parameters, optimizer tensors) read with h5py alone."""
    with h5py.File(path, "r") as f:
        if "layer_names" in f.attrs or "model_weights" in f:
            root = f["model_weights"] if "model_weights" in f else f
            ds = [
                root[n][w]
                for n in read_attr_list(root, "layer_names")
                for w in read_attr_list(root[n], "weight_names")
            ]
            opt = (
                len(read_attr_list(f["optimizer_weights"], "weight_names"))
                if "optimizer_weights" in f
                else 0
            )
        else:  # Keras 3 object paths: every dataset outside optimizer/
            ds, opt_ds = [], []

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    (opt_ds if name.startswith("optimizer/") else ds).append(obj)

            f.visititems(visit)
            opt = len(opt_ds)
        return len(ds), sum(int(np.prod(d.shape)) for d in ds), opt


def realworld_files() -> list[str]:
    from tests.conftest import REALWORLD

    if not REALWORLD.is_dir():
        return ["(absent)"]
    return sorted(p.name for p in REALWORLD.iterdir() if p.suffix in (".h5", ".hdf5"))


@pytest.mark.parametrize("name", realworld_files())
def test_realworld_file_counts_match_h5py(realworld, name):
    src = realworld / name
    before = sha256(src)
    r = ckptfix.inspect_checkpoint(src)
    tensors, params, opt = h5_counts(src)
    assert (r.tensors, r.parameters) == (tensors, params)
    assert r.optimizer.tensors == opt and r.optimizer.present == bool(opt)
    assert not r.parallel and not r.wrapped and r.template is None and r.replicas is None
    assert r.convert_command is None
    assert sha256(src) == before


REALWORLD_KERAS2 = REALWORLD_FILES


@pytest.mark.parametrize("name", sorted(REALWORLD_KERAS2))
def test_realworld_file_wrapped_in_parallel_is_described(realworld, tmp_path, name):
    outputs, inputs = REALWORLD_KERAS2[name]
    src = realworld / name
    par = tmp_path / "parallel.h5"
    wrap_single_file(src, par, replicas=3, template="model_1", outputs=outputs, inputs=inputs)
    r = ckptfix.inspect_checkpoint(par)
    tensors, params, _ = h5_counts(src)
    assert r.parallel and r.template == "model_1" and r.replicas == 3
    assert len(r.slices) == 3 * len(inputs) and r.merges == outputs
    assert (r.tensors, r.parameters) == (tensors, params)
    assert r.layout in ("exact", "inferred")
    command = f"ckptfix convert {par} {tmp_path / 'parallel.single.h5'}"
    assert r.convert_command == command  # inferred layouts convert by default, exact ones too


# --- structures that are described, not refused -----------------------------------------------


def weights(*spec: tuple[str, tuple[int, ...]]) -> list[tuple[str, np.ndarray]]:
    return [(n, np.zeros(s, "float32")) for n, s in spec]


def test_model_containing_a_model_is_single_with_an_extraction_hint(tmp_path):
    path = tmp_path / "transfer.h5"
    with h5py.File(path, "w") as f:
        write_layers(
            f,
            [
                ("input_1", []),
                ("base", weights(("conv/kernel:0", (3, 3, 1, 4)), ("conv/bias:0", (4,)))),
                ("head", weights(("head/kernel:0", (4, 2)), ("head/bias:0", (2,)))),
            ],
        )
    r = ckptfix.inspect_checkpoint(path)
    assert not r.parallel and not r.wrapped and r.convert_command is None
    assert r.candidates == ("base",) and r.tensors == 4 and r.parameters == 36 + 4 + 8 + 2
    assert any("--template base" in n for n in r.notes)
    base = r.layers[0]
    assert base.name == "base" and [c.name for c in base.children] == ["conv"]


def test_several_nested_models_ask_for_template(tmp_path):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        write_layers(
            f,
            [
                ("enc", weights(("d1/kernel:0", (2, 2)))),
                ("dec", weights(("d2/kernel:0", (2, 3)))),
            ],
        )
    r = ckptfix.inspect_checkpoint(path)
    assert r.candidates == ("enc", "dec") and r.template is None
    # runnable as printed: the first candidate; the note lists the others
    assert r.convert_command is not None and r.convert_command.endswith("--template enc")
    assert any("enc, dec" in n for n in r.notes)
    chosen = ckptfix.inspect_checkpoint(path, template="dec")
    assert chosen.template == "dec" and chosen.tensors == 1 and chosen.parameters == 6
    assert chosen.convert_command is not None and "--template dec" in chosen.convert_command


def test_mixed_str_and_bytes_names_are_read(tmp_path):
    """layer_names as variable-length str (Keras 2.8), weight_names as bytes (Keras 2.2)."""
    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w") as f:
        write_layers(
            f,
            [
                ("input_1", []),
                ("lambda_1", []),
                ("lambda_2", []),
                ("model_1", weights(("dense_1/kernel:0", (3, 2)), ("dense_1/bias:0", (2,)))),
                ("dense_1", []),
            ],
            as_bytes=True,
        )
        f.attrs["layer_names"] = np.asarray(
            ["input_1", "lambda_1", "lambda_2", "model_1", "dense_1"], dtype=h5py.string_dtype()
        )
        f.attrs["keras_version"] = "2.2.4"  # str here, bytes elsewhere
    r = ckptfix.inspect_checkpoint(path)
    assert r.parallel and r.template == "model_1" and r.replicas == 2
    assert r.tensors == 2 and r.parameters == 8 and r.keras_version == "2.2.4"


def test_metadata_only_and_no_tensorflow(tmp_path):
    """Tensor data is never read: datasets whose bytes live in a deleted file still inspect."""
    path = tmp_path / "external.h5"
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"\0" * 4096)
    with h5py.File(path, "w") as f:
        write_layers(f, [("input_1", []), ("lambda_1", []), ("lambda_2", []), ("model_1", [])])
        f.attrs["layer_names"] = np.asarray(
            [b"input_1", b"lambda_1", b"lambda_2", b"model_1", b"out"]
        )
        g = f.create_group("out")
        g.attrs["weight_names"] = np.zeros((0,), "f8")
        m = f["model_1"]
        m.attrs["weight_names"] = np.asarray([b"dense_1/kernel:0", b"dense_1/bias:0"])
        m.create_dataset("dense_1/kernel:0", (16, 8), "float32", external=[(str(blob), 0, 512)])
        m.create_dataset("dense_1/bias:0", (8,), "float32", external=[(str(blob), 512, 32)])
    blob.unlink()
    with h5py.File(path, "r") as f, pytest.raises(OSError):
        f["model_1"]["dense_1/kernel:0"][()]  # the data really is gone
    code = (
        "import sys, json; from typer.testing import CliRunner; from ckptfix.cli import app;"
        f"r = CliRunner().invoke(app, ['inspect', {str(path)!r}, '--json']);"
        "assert r.exit_code == 0, r.output; d = json.loads(r.stdout);"
        "assert (d['tensors'], d['parameters'], d['replicas']) == (2, 136, 2), d;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the CLI: JSON schema, human view -----------------------------------------------------------


def test_json_schema_is_the_documented_one():
    src = FIXTURES / "keras2" / "nested" / "parallel_model.h5"
    m = manifest("keras2", "nested")
    res = run_cli(str(src), "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert list(d) == JSON_KEYS
    assert d["schema"] == 1 and d["format"] == "keras2-h5-model"
    assert d["parallel"] is True and d["template"] == "model" and d["replicas"] == 2
    assert d["layout"] == "exact" and d["layout_source"] == "config"
    assert (d["tensors"], d["parameters"], d["bytes"]) == (
        m["template_tensors"],
        m["template_params"],
        m["template_bytes"],
    )
    assert d["keras_version"] == "2.21.0" and d["backend"] == "tensorflow"
    assert list(d["keras3"]) == [
        "converts",
        "command",
        "blocker",
        "custom_objects",
        "optimizer",
        "warnings",
    ]
    assert d["keras3"]["converts"] is True and d["keras3"]["blocker"] is None
    assert d["keras3"]["command"].endswith("parallel_model.keras")
    assert d["dtypes"] == {"float32": m["template_tensors"]}
    assert set(d["optimizer"]) == {
        "present",
        "class_name",
        "iterations",
        "slots",
        "tensors",
        "bytes",
    }
    assert d["optimizer"]["class_name"] == "Adam" and d["optimizer"]["iterations"] == 8
    layer = d["layers"][0]
    assert list(layer) == ["name", "class_name", "trainable", "weights", "layers"]
    assert layer["name"] == "encoder" and [c["name"] for c in layer["layers"]] == [
        "dense",
        "batch_normalization",
        "dense_1",
    ]
    w = layer["weights"][0]
    assert w == {"name": "dense/kernel:0", "shape": [6, 8], "dtype": "float32", "bytes": 192}
    assert d["convert_command"].startswith("ckptfix convert ")


def test_json_of_every_fixture_round_trips_the_report():
    for path in sorted((FIXTURES / "keras2").glob("*/*.h5")):
        r = ckptfix.inspect_checkpoint(path)
        d = json.loads(json.dumps(to_json(r)))
        assert list(d) == JSON_KEYS
        assert sum(len(x["weights"]) for x in d["layers"]) == d["tensors"] == r.tensors


def render_text(r: ckptfix.CheckpointReport, tensors: bool = False) -> str:
    console = Console(record=True, width=120, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render_report(r, tensors=tensors))
    return console.export_text()


def test_human_view_shows_header_tree_and_fix():
    src = FIXTURES / "keras2" / "frozen" / "parallel_model.h5"
    res = run_cli(str(src))
    assert res.exit_code == 0, res.output
    out = res.stdout
    for text in (
        "parallel (multi_gpu_model, 2 replicas)",
        "template    model",
        "exact (from the file's own model config)",
        "dense_1 Dense (frozen)",
    ):
        assert text in out, text
    # The fix is the last line, whole (never wrapped), so that it can be copied.
    assert (
        out.splitlines()[-1] == f"ckptfix convert {src} {src.with_name('parallel_model.single.h5')}"
    )
    single = run_cli(str(FIXTURES / "keras2" / "frozen" / "template_weights.h5"))
    assert "already single" in single.stdout and single.exit_code == 0


def test_long_model_is_folded_and_tensors_lists_everything():
    src = FIXTURES / "keras2" / "deep600" / "parallel_weights.h5"
    if not src.exists():
        pytest.skip("deep600 fixture absent")
    r = ckptfix.inspect_checkpoint(src)
    folded = render_text(r)
    assert "⋯ 99 more layers like" in folded
    assert len(folded.splitlines()) < 40
    full = render_text(r, tensors=True)
    # every tensor has its own line with its shape (names are long: rich may wrap them)
    assert full.count("float32  ") == r.tensors


def test_repeated_blocks_fold_like_resnet_stages():
    def layer(name: str, cls: str, *shapes: tuple[int, ...]) -> LayerEntry:
        ws = tuple(TensorEntry(f"{name}/w{i}:0", s, "float32", 4) for i, s in enumerate(shapes))
        return LayerEntry(name=name, class_name=cls, weights=ws)

    # bn1 is built like every block's bn: the fold must still start at a block boundary.
    stem = [layer("conv1", "Conv2D", (7, 7, 3, 64)), layer("bn1", "BatchNormalization", (64,))]
    blocks = []
    for b in range(5):
        blocks += [
            layer(f"b{b}_conv", "Conv2D", (3, 3, 64, 64)),
            layer(f"b{b}_bn", "BatchNormalization", (64,)),
        ]
    from ckptfix.report import CheckpointReport, OptimizerState

    report = CheckpointReport(
        path="x.h5",
        format="keras2-h5-weights",
        keras_version=None,
        backend=None,
        parallel=False,
        wrapped=False,
        template=None,
        replicas=None,
        slices=(),
        merges=(),
        candidates=(),
        layers=tuple(stem + blocks),
        tensors=12,
        parameters=0,
        bytes=0,
        dtypes={"float32": 12},
        optimizer=OptimizerState(present=False),
        layout=None,
        layout_source=None,
        layout_note=None,
        convert_command=None,
    )
    text = render_text(report)
    assert "b0_conv" in text and "b0_bn" in text and "b2_conv" not in text
    assert "⋯ the 2 layers above repeat 4 more times: b1_conv … b4_bn" in text


# --- bad input: one line, exit code 5, no traceback --------------------------------------------


def first_line_of_error(res: Any) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    return str(lines[0])


def test_not_hdf5(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("hello world")
    res = run_cli(str(p))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res) == (
        "Error: expected a Keras checkpoint (HDF5 .h5 or .keras zip); found a file of another "
        "kind (notes.h5, starts with b'hello wo'); check the path or the download"
    )


def test_truncated(tmp_path):
    src = FIXTURES / "keras2" / "dense_bn" / "parallel_model.h5"
    p = tmp_path / "cut.h5"
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    res = run_cli(str(p))
    assert res.exit_code == BAD_INPUT
    line = first_line_of_error(res)
    assert line.startswith(
        "Error: expected a readable HDF5 file; found one HDF5 cannot open (cut.h5"
    )
    assert line.endswith("the file is truncated or damaged")


def test_hdf5_but_not_keras(tmp_path):
    p = tmp_path / "data.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    res = run_cli(str(p))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res) == (
        "Error: expected a Keras checkpoint (layer_names, model_weights or layers/vars); found an "
        "HDF5 file without them (data.h5; top-level keys: ['x']); this HDF5 file was not written "
        "by Keras"
    )


def test_layer_listed_but_missing(tmp_path):
    p = tmp_path / "missing.h5"
    with h5py.File(p, "w") as f:
        write_layers(f, [("dense_1", weights(("dense_1/kernel:0", (2, 2))))])
        f.attrs["layer_names"] = np.asarray([b"dense_1", b"dense_2"])
    res = run_cli(str(p))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res) == (
        "Error: expected a group for layer 'dense_2' listed in layer_names; found none in "
        "missing.h5; the file is truncated or damaged"
    )


def test_weight_listed_but_missing(tmp_path):
    p = tmp_path / "noweight.h5"
    with h5py.File(p, "w") as f:
        write_layers(f, [("dense_1", weights(("dense_1/kernel:0", (2, 2))))])
        f["dense_1"].attrs["weight_names"] = np.asarray([b"dense_1/kernel:0", b"dense_1/bias:0"])
    res = run_cli(str(p))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res) == (
        "Error: expected a dataset dense_1/dense_1/bias:0 listed in weight_names; found nothing "
        "in noweight.h5; the file is truncated or damaged"
    )


def test_missing_file_and_tf_checkpoint(tmp_path):
    res = run_cli(str(tmp_path / "nope.h5"))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res).startswith("Error: expected a checkpoint file; found nothing")
    (tmp_path / "ckpt.index").write_bytes(b"x")
    (tmp_path / "ckpt.data-00000-of-00001").write_bytes(b"x")
    res = run_cli(str(tmp_path / "ckpt.index"))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res) == (
        "Error: expected a TensorFlow checkpoint index; found ckpt.index damaged (1 bytes, "
        "shorter than a table footer); the file is truncated or corrupt"
    )
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"x")
    res = run_cli(str(tmp_path / "sm"))
    assert res.exit_code == BAD_INPUT
    assert first_line_of_error(res).startswith(
        "Error: expected a SavedModel in saved_model.pb; found bytes that do not parse"
    )


def test_unknown_template_is_refused_with_choices():
    res = run_cli(str(FIXTURES / "keras2" / "dense_bn" / "parallel_weights.h5"), "-t", "nope")
    assert res.exit_code == 4
    assert first_line_of_error(res) == (
        "Error: expected --template to name a nested model holding weights; found 'nope' is not "
        "one (nested models in the file: model); pick one of those names"
    )


def test_readme_documents_the_json_keys():
    readme = (FIXTURES.parent / "README.md").read_text()
    section = readme.split("#### `inspect --json`", 1)[1].split("```", 1)[0]
    documented = []
    for row in section.splitlines():
        if row.startswith("| `"):
            documented += [k.strip(" `") for k in row.split("|")[1].split(",")]
    assert documented == JSON_KEYS


def _bad_files(tmp: Path) -> dict[str, Path]:
    """Damaged or foreign files of every family, built in ``tmp``."""
    import zipfile

    files = {}
    files["empty"] = tmp / "empty.h5"
    files["empty"].write_bytes(b"")
    files["zip without config"] = tmp / "x.keras"
    with zipfile.ZipFile(files["zip without config"], "w") as z:
        z.writestr("a.txt", "hi")
    for name in ("wrapper.keras", "wrapper.weights.h5"):
        src = FIXTURES / "keras3" / "parallel" / name
        files[f"truncated {name}"] = tmp / f"cut_{name}"
        files[f"truncated {name}"].write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    files["numbers as layer_names"] = tmp / "numbers.h5"
    with h5py.File(files["numbers as layer_names"], "w") as f:
        f.attrs["layer_names"] = np.arange(3)
    files["broken model_config"] = tmp / "cfg.h5"
    with h5py.File(files["broken model_config"], "w") as f:
        write_layers(f.create_group("model_weights"), [("a", [])])
        f.attrs["model_config"] = b"{not json"
    files["undecodable name"] = tmp / "utf.h5"
    with h5py.File(files["undecodable name"], "w") as f:
        f.attrs["layer_names"] = np.asarray([b"\xff\xfe"])
    return files


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "zip without config",
        "truncated wrapper.keras",
        "truncated wrapper.weights.h5",
        "numbers as layer_names",
        "broken model_config",
        "undecodable name",
    ],
)
def test_damaged_files_of_every_family_give_one_line(tmp_path, case):
    path = _bad_files(tmp_path)[case]
    res = run_cli(str(path))
    assert res.exit_code == BAD_INPUT, res.output
    line = first_line_of_error(res)
    assert line.startswith("Error: expected "), line
    with pytest.raises(ckptfix.CkptfixError):
        ckptfix.inspect_checkpoint(path)
