"""The command line as scripts and people use it (issue 14, points 6-14; issue 11, item 4).

Each test drives the real ``ckptfix`` command: typer's CliRunner (stdout and stderr are not
terminals there), or a subprocess whose stdout is a real pipe. Files come from the committed
fixtures (written by tf_keras and Keras 3); the ``--model`` tests build templates with real
tf_keras and Keras 3 factories written to ``tmp_path``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

import ckptfix
from ckptfix.cli import app
from tests.conftest import FIXTURES, ROOT, sha256

K2 = FIXTURES / "keras2"
K3 = FIXTURES / "keras3"
COMMANDS = ("inspect", "convert", "verify", "train")


def cli(*argv: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, [str(a) for a in argv], env=env)


def piped(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """``python -m ckptfix ARGV`` with stdout and stderr real pipes, at 80 columns."""
    full = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="80", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "ckptfix", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=120,
    )


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def no_padding(text: str) -> None:
    for line in text.splitlines():
        assert line == line.rstrip(), f"trailing spaces: {line!r}"


# --- 6: piped output is never wrapped or padded ------------------------------------------------


def test_piped_verify_is_one_line_whatever_the_path_length(tmp_path):
    deep = tmp_path / ("a_rather_long_folder_name_" * 4) / "and_another_one_below_it"
    src = copy(K2 / "dense_bn/parallel_model.h5", deep / "parallel_model.h5")
    dst = deep / "parallel_model.single.h5"
    assert cli("convert", src).exit_code == 0
    done = piped("verify", src, dst)
    assert done.returncode == 0, done.stderr
    expected = (
        f"OK: 8 model tensors (1.0 KiB) and 13 optimizer tensors match between {src} and {dst}\n"
    )
    assert len(expected) > 160 and done.stdout == expected  # one line, nothing wrapped
    assert cli("verify", src, dst).stdout == expected  # the same through CliRunner


def test_piped_summaries_and_warnings_keep_one_line_each(tmp_path):
    src = copy(K2 / "dense_bn/parallel_weights.h5", tmp_path / "parallel_weights.h5")
    done = piped("convert", src, tmp_path / "single.h5")
    assert done.returncode == 0, done.stderr
    no_padding(done.stdout)
    lines = done.stdout.splitlines()
    assert lines[0] == f"wrote     {tmp_path / 'single.h5'} (weights only)"
    (warning,) = [line for line in lines if line.startswith("warning:")]
    assert "or --model (the template built in code)" in warning
    assert warning.endswith("layers into a model with M layers')")  # whole, one line
    assert len(warning) > 200
    report = piped("inspect", K2 / "nested/parallel_model.h5")
    no_padding(report.stdout)
    assert report.stdout.splitlines()[-1] == (
        f"ckptfix convert {K2 / 'nested/parallel_model.h5'} "
        f"{K2 / 'nested/parallel_model.single.h5'}"
    )


# --- 7: inspect of many files -------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder as users have them: parallel, single, Keras 3, and a broken file."""
    runs = tmp_path / "runs"
    copy(K2 / "dense_bn/parallel_model.h5", runs / "exp1/epoch_01.h5")
    copy(K2 / "dense_bn/template_model.h5", runs / "exp1/single.h5")
    copy(K3 / "parallel/wrapper.keras", runs / "exp2/wrapper.keras")
    (runs / "exp2/notes.h5").write_bytes(b"hello world")
    (runs / "README.txt").write_text("not a checkpoint")
    return runs


def test_inspect_of_a_folder_is_one_row_per_file(runs, monkeypatch):
    monkeypatch.chdir(runs.parent)
    result = cli("inspect", "runs")
    assert result.exit_code == 1  # one file could not be described
    no_padding(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "file", "format", "checkpoint", "replicas", "template", "layout", "weights", "note",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == [
        "runs/exp1/epoch_01.h5",
        "runs/exp1/single.h5",
        "runs/exp2/notes.h5",
        "runs/exp2/wrapper.keras",
    ]
    assert rows["runs/exp1/epoch_01.h5"].split()[1:7] == [
        "Keras", "2", "model", "parallel", "2", "model",
    ]  # fmt: skip
    assert " single " in rows["runs/exp1/single.h5"]
    assert (
        "error" in rows["runs/exp2/notes.h5"]
        and "exit 5: expected a Keras checkpoint" in (rows["runs/exp2/notes.h5"])
    )
    assert lines[-1].startswith("4 files: 2 parallel, 1 single, 1 unreadable")


def test_inspect_of_many_files_as_json_list_and_json_lines(runs):
    files = sorted(str(p) for p in runs.rglob("*") if p.suffix in (".h5", ".keras"))
    as_list = cli("inspect", *files, "--json")
    assert as_list.exit_code == 1
    data = json.loads(as_list.stdout)
    assert [d["path"] for d in data] == files
    bad = next(d for d in data if d["path"].endswith("notes.h5"))
    assert bad == {
        "schema": 1,
        "path": str(runs / "exp2/notes.h5"),
        "error": "NotACheckpointError",
        "reason": bad["reason"],
        "exit_code": 5,
    }
    assert bad["reason"].startswith("expected a Keras checkpoint")
    good = next(d for d in data if d["path"].endswith("epoch_01.h5"))
    assert good == json.loads(cli("inspect", good["path"], "--json").stdout)  # same object
    lines = cli("inspect", *files, "--jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == data
    one = cli("inspect", files[0], "--jsonl")
    assert one.exit_code == 0 and len(one.stdout.splitlines()) == 1
    assert json.loads(one.stdout)["path"] == files[0]


def test_inspect_of_good_files_exits_0_and_one_file_keeps_the_full_report(runs):
    good = cli("inspect", runs / "exp1/epoch_01.h5", runs / "exp1/single.h5")
    assert good.exit_code == 0, good.output
    assert good.stdout.splitlines()[-1].startswith("2 files: 1 parallel, 1 single")
    one = cli("inspect", runs / "exp1/epoch_01.h5")
    assert one.exit_code == 0 and "ckptfix inspect" in one.stdout.splitlines()[0]
    assert one.stdout.splitlines()[-2] == "fix:"
    many_tensors = cli("inspect", runs, "--tensors")
    assert many_tensors.exit_code == 2 and "--tensors lists the tensors of one file" in (
        many_tensors.stderr
    )
    empty = runs / "empty"
    empty.mkdir()
    nothing = cli("inspect", empty, "--json")
    assert nothing.exit_code == 1
    assert json.loads(nothing.stdout)[0]["reason"].startswith(
        "expected .h5, .hdf5, .weights.h5 or .keras files; found none in"
    )


# --- 8: one default output name, everywhere ------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "name", "default"),
    [
        (K2 / "dense_bn/parallel_model.h5", "run.h5", "run.single.h5"),
        (K3 / "parallel/wrapper.keras", "run.keras", "run.single.keras"),
        (K3 / "parallel/wrapper.weights.h5", "run.weights.h5", "run.single.weights.h5"),
    ],
)
def test_one_default_name_for_inspect_convert_and_errors(tmp_path, fixture, name, default):
    src = copy(fixture, tmp_path / name)
    fix = json.loads(cli("inspect", src, "--json").stdout)["convert_command"]
    assert shlex.split(fix) == ["ckptfix", "convert", str(src), str(tmp_path / default)]
    wrong = tmp_path / ("x.txt" if name == "run.h5" else "x.h5")  # .h5 source: any Keras name
    refused = cli("convert", src, wrong)
    assert refused.exit_code == 6 and refused.stderr.rstrip().endswith(f"name it like {default}")
    written = cli("convert", src, "--json")  # no DST: the same default name
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout)["destination"] == str(tmp_path / default)
    assert cli("verify", src, tmp_path / default).exit_code == 0


def test_convert_into_an_existing_folder_writes_the_source_name_there(tmp_path):
    src = copy(K2 / "dense_bn/parallel_model.h5", tmp_path / "in/epoch_03.h5")
    (tmp_path / "out").mkdir()
    result = cli("convert", src, str(tmp_path / "out") + "/")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[0] == f"wrote      {tmp_path / 'out/epoch_03.h5'} (full model)"
    )
    assert cli("verify", src, tmp_path / "out/epoch_03.h5").exit_code == 0
    missing = cli("convert", src, str(tmp_path / "nowhere") + "/")
    assert missing.exit_code == 6
    assert missing.stderr.splitlines() == [
        f"Error: expected an existing output folder; found no folder {tmp_path / 'nowhere'}/; "
        "create it first"
    ]


# --- 9: the fix command is runnable, path-complete and quoted for every format -------------------


@pytest.mark.parametrize(
    "fixture", [K2 / "dense_bn/parallel_model.h5", K3 / "parallel/wrapper.keras"]
)
def test_fix_command_runs_as_printed(tmp_path, fixture):
    src = copy(fixture, tmp_path / "my runs" / fixture.name)
    printed = cli("inspect", src).stdout.splitlines()[-1]
    assert printed == json.loads(cli("inspect", src, "--json").stdout)["convert_command"]
    argv = shlex.split(printed)
    assert argv[:3] == ["ckptfix", "convert", str(src)] and Path(argv[3]).is_absolute()
    assert "'" in printed  # the space is quoted
    ran = cli(*argv[1:])
    assert ran.exit_code == 0, ran.output
    assert cli("verify", src, argv[3]).exit_code == 0


# --- 10: verify with a missing or unreadable DST -------------------------------------------------


def test_verify_missing_or_truncated_destination_is_bad_input(tmp_path):
    src = K3 / "parallel/wrapper.keras"
    missing = cli("verify", src, tmp_path / "missing.keras")
    assert missing.exit_code == 5
    assert missing.stderr.splitlines() == [
        f"Error: expected a checkpoint file; found nothing at {tmp_path / 'missing.keras'}; "
        "check the path"
    ]
    good = tmp_path / "good.keras"
    assert cli("convert", src, good).exit_code == 0
    cut = tmp_path / "cut.keras"
    cut.write_bytes(good.read_bytes()[:-30])
    for extra in ([], ["--json"]):
        result = cli("verify", src, cut, *extra)
        assert result.exit_code == 5 and result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith("Error: expected a .keras zip archive; found a file zipfile")
        assert line.endswith("check the file or the download")  # whole, never cut mid-word


def test_verify_mismatch_counts_in_words(tmp_path):
    src = K2 / "dense_bn/parallel_weights.h5"
    dst = tmp_path / "single.h5"
    assert cli("convert", src, dst).exit_code == 0
    with h5py.File(dst, "r+") as f:
        name = next(n for n in f["dense"]["dense"] if n.startswith("kernel"))
        f["dense"]["dense"][name][0, 0] += 1
    result = cli("verify", src, dst)
    assert result.exit_code == 7
    assert result.stdout.splitlines()[0] == f"MISMATCH: 1 problem between {src} and {dst}"


# --- 11: help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_purpose_usage_options_and_examples(command):
    argv = [command] if command else []
    long = cli(*argv, "--help")
    short = cli(*argv, "-h")
    assert long.exit_code == short.exit_code == 0 and long.stdout == short.stdout
    text = long.stdout
    assert "<bool>" not in text and "{" not in text.split("\n\n")[0]  # usage reads plainly
    usage, purpose = text.split("\n\n")[:2]
    assert usage.startswith(f"Usage: ckptfix {command}".rstrip())
    assert purpose.strip() and "\n" not in purpose.strip() or command == ""  # one line
    examples = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len([e for e in examples if e.strip().startswith("ckptfix ")]) >= 2
    assert "Options:" in text


def test_flags_take_no_value_and_usage_lines_read_like_the_readme():
    text = cli("convert", "-h").stdout
    assert text.startswith(
        "Usage: ckptfix convert [OPTIONS] SRC [DST]\n"
        "       ckptfix convert [OPTIONS] SRC... --out-dir DIR\n"
    )
    assert re.search(r"^  --json +Print JSON", text, re.M)  # no metavar after a flag
    assert re.search(r"^  -f, --force +Replace", text, re.M)


def test_help_at_60_columns_keeps_every_option_name_whole():
    group = typer.main.get_command(app)
    for name in COMMANDS:
        text = cli(name, "--help", env={"COLUMNS": "60"}).stdout
        assert "…" not in text
        for param in group.commands[name].params:  # type: ignore[attr-defined]
            for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []):
                if opt.startswith("--") and not param.hidden:
                    assert re.search(rf"(^|[ ,/]){re.escape(opt)}\b", text, re.M), (name, opt)
        assert max(len(line) for line in text.splitlines()) <= 100


# --- 12: batch reports ----------------------------------------------------------------------------


def test_batch_skips_in_a_few_words_and_says_each_reason_once(runs, monkeypatch):
    monkeypatch.chdir(runs.parent)
    first = cli("convert", "runs", "--out-dir", "fixed", "--jobs", "1")
    assert first.exit_code == 1
    no_padding(first.stdout)
    assert "skipped  runs/exp1/single.h5: already a single model" in first.stdout.splitlines()
    assert "[2/4] skipped runs/exp1/single.h5 (already a single model)" in first.stderr
    failed = "expected a Keras checkpoint (HDF5 .h5 or .keras zip); found a file of another kind"
    assert first.output.count(failed) == 1  # stdout and stderr together: once
    assert "failed runs/exp2/notes.h5 (not a Keras checkpoint)" in first.stderr
    again = cli("convert", "runs", "--out-dir", "fixed", "--jobs", "1")
    assert "skipped  runs/exp1/epoch_01.h5: output exists and matches; kept" in again.stdout
    assert str(runs.parent) not in again.output  # relative, as the first run showed them
    assert again.stdout.splitlines()[-1].endswith("outputs in fixed")


# --- 13: library messages name library parameters ------------------------------------------------


def test_library_messages_name_parameters_and_the_cli_names_flags(tmp_path):
    src = K2 / "dense_bn/parallel_model.h5"
    dst = tmp_path / "single.h5"
    ckptfix.convert_checkpoint(src, dst)
    with pytest.raises(ckptfix.OutputError, match=r"pass force=True to replace it$"):
        ckptfix.convert_checkpoint(src, dst)
    again = cli("convert", src, dst)
    assert again.stderr.rstrip().endswith("pass --force to replace it")
    flag = re.compile(r"\b(pass|with|use|add|choose \w+ with) --[a-z]")
    for path in (ROOT / "ckptfix").rglob("*.py"):
        if path.name in ("cli.py", "render.py", "batch_view.py"):
            continue  # the command line's own words
        for node in ast.walk(ast.parse(path.read_text())):  # every string the code builds
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not flag.search(node.value), f"{path.name}:{node.lineno}: {node.value}"


# --- 14: the smaller points ----------------------------------------------------------------------


def test_a_missing_reference_is_bad_input_like_a_missing_source(tmp_path):
    src = K2 / "dense_bn/parallel_weights.h5"
    result = cli("convert", src, tmp_path / "x.h5", "--reference", tmp_path / "none.json")
    assert (
        result.exit_code == 5 == cli("convert", tmp_path / "none.h5", tmp_path / "y.h5").exit_code
    )
    assert result.stderr.splitlines() == [
        f"Error: expected --reference to be a file; found nothing at {tmp_path / 'none.json'}; "
        "check the path"
    ]


def test_a_wrong_reference_is_described_with_the_templates_name(tmp_path):
    config = json.loads((K2 / "cnn/template.json").read_text())
    config["config"]["name"] = "someone_elses_model"
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(config))
    result = cli("convert", K2 / "dense_bn/parallel_weights.h5", tmp_path / "x.h5", "-r", ref)
    assert result.exit_code == 4
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "Error: expected every weight of the template 'model' to belong to a layer of the "
        "reference's config; found "
    )
    assert "someone_elses_model" not in line


def test_the_hard_link_refusal_names_the_other_path(tmp_path):
    src = copy(K2 / "dense_bn/parallel_model.h5", tmp_path / "src.h5")
    os.link(src, tmp_path / "other.h5")
    before = sha256(src)
    result = cli("convert", src, tmp_path / "other.h5", "--force")
    assert result.exit_code == 6
    assert f"found {tmp_path / 'other.h5'} is the source {src} (a hard link to it)" in result.stderr
    assert sha256(src) == before


@pytest.mark.parametrize(
    "fixture", sorted(K3.glob("*/*.keras")) + sorted(K3.glob("*/*.weights.h5"))
)
def test_keras3_json_layers_all_hold_weights(fixture):
    def walk(layers):
        for layer in layers:
            yield layer
            yield from walk(layer["layers"])

    data = json.loads(cli("inspect", fixture, "--json").stdout)
    layers = list(walk(data["layers"]))
    assert layers and all(layer["weights"] for layer in layers), fixture
    assert not any(layer["class_name"] == "InputLayer" for layer in layers)


def test_the_merge_layer_is_named_as_the_top_level_layer():
    text = cli("inspect", K2 / "nested/parallel_model.h5").stdout
    assert "2 slice layers (lambda, lambda_1) and the merge layer dense_2, at the top level" in (
        text
    )
    assert "merged by dense_2" not in text


# --- issue 11, item 4: --model MODULE:FACTORY for an exact layout --------------------------------

FACTORIES = textwrap.dedent(
    """
    import importlib.util

    _spec = importlib.util.spec_from_file_location("ckptfix_cli_models", {models!r})
    models = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(models)

    def frozen_tf_keras():
        import tf_keras
        return models.build("frozen", tf_keras)

    def frozen_keras3():
        import keras
        return models.build("frozen", keras)
    """
)


@pytest.fixture
def factories(tmp_path: Path) -> Path:
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES.format(models=str(FIXTURES / "models.py")))
    return path


def frozen_arrays(keras: Any) -> list[np.ndarray]:
    """The frozen template's arrays as Keras itself loads them from the template's own file."""
    from tests.conftest import fixture_module

    model = fixture_module("models.py").build("frozen", keras)
    model.load_weights(str(K2 / "frozen/template_weights.h5"))
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.tf
@pytest.mark.parametrize("factory", ["frozen_tf_keras", "frozen_keras3"])
def test_model_option_makes_an_unknowable_layout_exact(
    tmp_path, factories, factory, tf_keras, keras3
):
    src = K2 / "frozen/parallel_weights.h5"
    refused = cli("convert", src, tmp_path / "no_model.h5")
    assert refused.exit_code == 4  # the file alone cannot tell (a frozen layer)
    spec = f"{factories}:{factory}"
    out = tmp_path / "single.h5"
    result = cli("convert", src, out, "--model", spec, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["layout"], data["layout_source"]) == ("exact", "model")
    keras = tf_keras if factory == "frozen_tf_keras" else keras3
    from tests.conftest import fixture_module

    template = fixture_module("models.py").build("frozen", keras)
    template.load_weights(str(out))  # Keras's own positional loader takes it
    for got, want in zip(template.get_weights(), frozen_arrays(keras), strict=True):
        np.testing.assert_array_equal(got, want)  # bytes ckptfix copied: bit for bit
    report = json.loads(cli("inspect", src, "--model", spec, "--json").stdout)
    assert (report["layout"], report["layout_source"]) == ("exact", "model")
    assert shlex.split(report["convert_command"])[-2:] == ["--model", spec]


@pytest.mark.tf
def test_model_option_in_a_batch_reaches_the_workers(tmp_path, factories, tf_keras):
    runs = tmp_path / "runs"
    copy(K2 / "frozen/parallel_weights.h5", runs / "a/frozen.h5")
    copy(K2 / "frozen/parallel_weights.h5", runs / "b/frozen.h5")
    spec = f"{factories}:frozen_tf_keras"
    result = cli("convert", runs, "--out-dir", tmp_path / "fixed", "--jobs", "2", "--model", spec,
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["jobs"] == 2 and data["totals"]["converted"] == 2
    assert {e["layout"] for e in data["entries"]} == {"exact"}
    for e in data["entries"]:
        assert cli("verify", e["source"], e["destination"]).exit_code == 0


def test_a_failing_factory_is_one_line_and_bad_input(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("--model needs the [tf] extra")
    factory = tmp_path / "f.py"
    factory.write_text("def build():\n    raise RuntimeError('no GPU config here\\nsecond line')\n")
    result = cli("inspect", K2 / "frozen/parallel_weights.h5", "--model", f"{factory}:build")
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [
        f"Error: expected the model factory {factory}:build to build the model; found it raised "
        "RuntimeError: no GPU config here; fix the factory"
    ]


@pytest.mark.tf
def test_model_option_with_a_keras3_source_is_refused_as_usage(tmp_path, factories, keras3):
    result = cli("convert", K3 / "parallel/wrapper.keras", tmp_path / "x.keras", "--model",
                 f"{factories}:frozen_keras3")  # fmt: skip
    assert result.exit_code == 2
    assert "found --model; drop it (a Keras 3 file records its layout exactly" in result.stderr


def test_model_option_without_tensorflow_says_how_to_install_it(tmp_path):
    factory = tmp_path / "f.py"
    factory.write_text("import keras\n\ndef build():\n    return keras.Sequential()\n")
    code = (
        "import sys\n"
        "for name in ('tensorflow', 'keras', 'tf_keras'):\n"
        "    sys.modules[name] = None  # as if the [tf] extra were not installed\n"
        "from ckptfix.cli import main\n"
        f"sys.argv = ['ckptfix', 'inspect', {str(K2 / 'frozen/parallel_weights.h5')!r}, "
        f"'--model', {str(factory) + ':build'!r}]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: expected TensorFlow, which the trainer and --model need; found it not "
        "installed; install it with: pip install 'ckptfix[tf]'"
    ]
