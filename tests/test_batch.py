"""Batch migration (``convert_batch`` and ``ckptfix convert SRC... --out-dir DIR``).

A mixed folder of committed fixtures (parallel weights and full-model files written by tf_keras
through the multi_gpu_model re-creation, a Keras 3 wrapper, single-model files, a refused file,
a truncated file, nested sub-folders) goes through the library (``jobs=1``) and through the CLI
(``--jobs 2``). Outputs must be byte-identical between the two; with TensorFlow, every output
must load into a freshly built template with tf_keras and hold the trained template's arrays.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import ckptfix
from ckptfix.batch import BatchProgress, find_checkpoints
from ckptfix.cli import app
from tests.conftest import FIXTURES, assert_predictions_close, fixture_module, sha256

KERAS2 = FIXTURES / "keras2"
KERAS3 = FIXTURES / "keras3"

#: mixed-folder path -> (fixture file, expected status, expected error class, exit code)
MIXED: dict[str, tuple[Path | None, str, str | None, int]] = {
    "runA/epoch_01.h5": (KERAS2 / "dense_bn/parallel_weights.h5", "converted", None, 0),
    "runA/full/epoch_01.hdf5": (KERAS2 / "dense_bn/parallel_model.h5", "converted", None, 0),
    "runB/cnn_model.h5": (KERAS2 / "cnn/parallel_model.h5", "converted", None, 0),
    "runB/deeper/multi_io.h5": (KERAS2 / "multi_io/parallel_model.h5", "converted", None, 0),
    "runB/deeper/nested.h5": (KERAS2 / "nested/parallel_model.h5", "converted", None, 0),
    "runB/deeper/fp16.h5": (KERAS2 / "fp16/parallel_weights.h5", "converted", None, 0),
    "runC/wrapper.keras": (KERAS3 / "parallel/wrapper.keras", "converted", None, 0),
    "single/template_weights.h5": (
        KERAS2 / "dense_bn/template_weights.h5",
        "skipped",
        "NothingToConvertError",
        3,
    ),
    "single/template_model.h5": (
        KERAS2 / "cnn/template_model.h5",
        "skipped",
        "NothingToConvertError",
        3,
    ),
    "zfrozen/weights.h5": (KERAS2 / "frozen/parallel_weights.h5", "failed", "LayoutError", 4),
    "broken/truncated.h5": (None, "failed", "CorruptCheckpointError", 5),
}
#: Keras 2 outputs and the fixture case whose trained template they must equal
CASE_OF = {
    "runA/epoch_01.h5": "dense_bn",
    "runA/full/epoch_01.hdf5": "dense_bn",
    "runB/cnn_model.h5": "cnn",
    "runB/deeper/multi_io.h5": "multi_io",
    "runB/deeper/nested.h5": "nested",
    "runB/deeper/fp16.h5": "fp16",
}


def make_mixed(root: Path) -> Path:
    """Build the mixed input folder under ``root``; return it."""
    src = root / "checkpoints"
    for rel, (fixture, *_rest) in MIXED.items():
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if fixture is None:  # a download cut short: HDF5 signature, then nothing
            dst.write_bytes((KERAS2 / "dense_bn/parallel_model.h5").read_bytes()[:10_000])
        else:
            shutil.copyfile(fixture, dst)
    (src / "runA/notes.txt").write_text("not a checkpoint")
    (src / "runA/.epoch_02.h5.ckptfix-tmp-999999-abcd").write_bytes(b"stale temporary")
    return src


def outputs(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256)."""
    return {
        p.relative_to(folder).as_posix(): sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rel_entries(report: ckptfix.BatchReport, src: Path) -> dict[str, ckptfix.BatchEntry]:
    return {Path(e.source).relative_to(src).as_posix(): e for e in report.entries}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mixed(tmp_path_factory.mktemp("batch"))


@pytest.fixture(scope="module")
def serial(mixed: Path) -> tuple[ckptfix.BatchReport, Path, list[BatchProgress]]:
    """The library, one job, with a progress callback."""
    out = mixed.parent / "out_serial"
    seen: list[BatchProgress] = []
    report = ckptfix.convert_batch(mixed, out, jobs=1, progress=seen.append)
    return report, out, seen


@pytest.fixture(scope="module")
def cli_parallel(mixed: Path) -> tuple[Any, Path, dict[str, Any]]:
    """The CLI, two worker processes, with a JSON report (stderr is not a terminal here)."""
    out = mixed.parent / "out_cli"
    report_file = mixed.parent / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(mixed),
            "--out-dir",
            str(out),
            "--jobs",
            "2",
            "--report",
            str(report_file),
        ],
    )
    return result, out, json.loads(report_file.read_text())


# --- the library ----------------------------------------------------------------------------


def test_library_reports_every_input_in_order(serial, mixed: Path) -> None:
    report, out, _ = serial
    entries = rel_entries(report, mixed)
    assert list(entries) == sorted(MIXED, key=lambda r: tuple(r.split("/")))
    for rel, (_fixture, status, error, code) in MIXED.items():
        e = entries[rel]
        assert (e.status, e.error, e.exit_code) == (status, error, code), (rel, e.reason)
        if status == "converted":
            assert e.reason is None and e.destination == str(out / rel)
            assert e.tensors > 0 and e.bytes > 0 and e.template
            assert Path(e.destination).is_file()
        else:
            assert e.destination is None and e.reason and not (out / rel).exists()
    assert entries["runB/deeper/multi_io.h5"].replicas == 4
    assert entries["runB/deeper/fp16.h5"].layout == "inferred"
    assert entries["runA/full/epoch_01.hdf5"].layout == "exact"
    assert "already a single" in str(entries["single/template_model.h5"].reason) or (
        "single model" in str(entries["single/template_model.h5"].reason)
    )
    assert "truncated" in str(entries["broken/truncated.h5"].reason)
    assert "reference=" in str(entries["zfrozen/weights.h5"].reason)
    assert (report.files, report.converted, report.skipped, report.failed) == (11, 7, 2, 2)
    assert not report.ok and report.jobs == 1
    assert report.tensors == sum(e.tensors for e in report.entries if e.status == "converted")


def test_outputs_mirror_the_tree_and_leave_no_empty_folders(serial, mixed: Path) -> None:
    _, out, _ = serial
    want = {rel for rel, (_f, status, *_r) in MIXED.items() if status == "converted"}
    assert set(outputs(out)) == want
    for folder in ("single", "broken", "zfrozen"):  # nothing converted there
        assert not (out / folder).exists()


def test_inputs_are_never_modified(serial, mixed: Path) -> None:
    for rel, (fixture, *_rest) in MIXED.items():
        if fixture is not None:
            assert sha256(mixed / rel) == sha256(fixture)


def test_progress_callback_counts_files_and_bytes(serial, mixed: Path) -> None:
    report, _, seen = serial
    assert seen[0].entry is None and seen[0].files_done == 0
    assert len(seen) == report.files + 1
    total = sum((mixed / rel).stat().st_size for rel in MIXED)
    assert all(p.files_total == report.files and p.bytes_total == total for p in seen)
    assert [p.files_done for p in seen] == list(range(report.files + 1))
    assert seen[-1].bytes_done == total
    assert sorted(p.entry.source for p in seen[1:] if p.entry) == sorted(
        e.source for e in report.entries
    )


# --- the CLI, two jobs ------------------------------------------------------------------------


def test_cli_batch_exit_code_summary_and_plain_progress(cli_parallel) -> None:
    result, _, _ = cli_parallel
    assert result.exit_code == int(ckptfix.ExitCode.FAILED), result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"converting {len(MIXED)} files (")
    assert sorted(line.split("] ", 1)[0] for line in lines[1:]) == sorted(
        f"[{i}/{len(MIXED)}" for i in range(1, len(MIXED) + 1)
    )
    assert any(line.split("] ", 1)[1].startswith("failed ") for line in lines[1:])
    assert "ckptfix convert: 11 files" in result.stdout
    assert "7 converted, 2 skipped, 2 failed" in result.stdout
    assert "Traceback" not in result.output


def test_cli_report_file(cli_parallel, serial, mixed: Path) -> None:
    _, out, data = cli_parallel
    report, _, _ = serial
    assert data["ok"] is False and data["jobs"] == 2
    assert data["totals"] | {"seconds": 0} == {
        "files": 11,
        "converted": 7,
        "skipped": 2,
        "failed": 2,
        "tensors": report.tensors,
        "bytes": report.bytes,
        "file_bytes": report.file_bytes,
        "seconds": 0,
    }
    keys = {"source", "status", "reason", "destination", "template", "replicas", "tensors"}
    assert all(keys <= set(e) for e in data["entries"])
    assert all(isinstance(e["seconds"], float) for e in data["entries"])
    # the same answers as the serial library run, input for input, but for the output folder
    for got, want in zip(data["entries"], report.entries, strict=True):
        want_dst = want.destination and want.destination.replace("out_serial", "out_cli")
        assert (got["source"], got["status"], got["reason"], got["destination"]) == (
            want.source,
            want.status,
            want.reason,
            want_dst,
        )
        assert (got["template"], got["replicas"], got["tensors"], got["bytes"]) == (
            want.template,
            want.replicas,
            want.tensors,
            want.bytes,
        )
        assert (got["layout"], got["warnings"]) == (want.layout, list(want.warnings))
    # weights-only inputs are converted by default, their layout reported as inferred, in words
    inferred = [e for e in data["entries"] if e["layout"] == "inferred"]
    assert inferred and all(e["status"] == "converted" for e in inferred)
    assert all(e["warnings"][0].startswith("layout inferred from weight names") for e in inferred)
    # (the report file keeps the library's words, reference=, as write_batch_report writes it)
    assert all("make it exact with reference=" in e["warnings"][0] for e in inferred)


def test_exact_batch_fails_weights_only_inputs_and_converts_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "runs"
    src.mkdir()
    for name in ("parallel_weights.h5", "parallel_model.h5"):
        (src / name).write_bytes((KERAS2 / "dense_bn" / name).read_bytes())
    report = ckptfix.convert_batch([src], tmp_path / "fixed", jobs=1, exact=True)
    by_name = {Path(e.source).name: e for e in report.entries}
    weights, model = by_name["parallel_weights.h5"], by_name["parallel_model.h5"]
    assert (weights.status, weights.error, weights.exit_code) == (
        "failed",
        "LayoutUnknownError",
        4,
    )
    assert "exact=True" in str(weights.reason) and "reference=" in str(weights.reason)
    assert (model.status, model.layout) == ("converted", "exact")
    assert not (tmp_path / "fixed" / "parallel_weights.h5").exists()


def test_jobs_2_and_jobs_1_write_byte_identical_outputs(cli_parallel, serial) -> None:
    _, out_cli, _ = cli_parallel
    _, out_serial, _ = serial
    cli_files, serial_files = outputs(out_cli), outputs(out_serial)
    assert len(serial_files) == 7
    assert cli_files == serial_files


def test_cli_all_good_batch_exits_0_and_prints_json(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    shutil.copyfile(KERAS2 / "cnn/parallel_model.h5", src / "a/m.h5")
    shutil.copyfile(KERAS2 / "cnn/template_model.h5", src / "single.h5")  # skipped is fine
    result = CliRunner().invoke(
        app, ["convert", str(src), "--out-dir", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [(Path(e["source"]).name, e["status"]) for e in data["entries"]] == [
        ("m.h5", "converted"),
        ("single.h5", "skipped"),
    ]


def test_batch_runs_on_a_dask_executor_with_the_same_answers_and_bytes(
    serial, mixed: Path, tmp_path: Path
) -> None:
    """``executor=``: a local dask.distributed cluster (two workers) runs the conversions; the
    entries, in input order, and every output byte are those of the serial run."""
    distributed = pytest.importorskip("distributed")
    report, out_serial, _ = serial
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        got = ckptfix.convert_batch(mixed, tmp_path / "out", executor=client.get_executor())
    assert got.jobs == 0  # the executor decided
    assert [(e.source, e.status, e.error, e.exit_code, e.tensors) for e in got.entries] == [
        (e.source, e.status, e.error, e.exit_code, e.tensors) for e in report.entries
    ]
    assert outputs(tmp_path / "out") == outputs(out_serial)


# --- re-running a batch ------------------------------------------------------------------------


def test_rerun_keeps_outputs_unless_force(serial, mixed: Path, tmp_path: Path) -> None:
    _, first, _ = serial
    out = tmp_path / "out"
    shutil.copytree(first, out)
    before = outputs(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")}
    again = ckptfix.convert_batch(mixed, out, jobs=1)
    entries = rel_entries(again, mixed)
    for rel, (_f, status, *_r) in MIXED.items():
        e = entries[rel]
        if status == "converted":
            assert e.status == "skipped" and e.destination == str(out / rel)
            assert "kept" in str(e.reason) and "force=True" in str(e.reason)
        else:
            assert e.status == status
    assert outputs(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.h5")} == mtimes
    assert again.converted == 0 and again.skipped == 9 and again.failed == 2

    forced = ckptfix.convert_batch(mixed, out, jobs=1, force=True)
    entries = rel_entries(forced, mixed)
    for rel, (_f, status, *_r) in MIXED.items():
        assert entries[rel].status == status
        if status == "converted":
            assert entries[rel].reason == "replaced the existing output (force=True)"
    assert outputs(out) == before  # deterministic bytes


def test_rerun_reports_an_existing_output_that_does_not_match(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(KERAS2 / "dense_bn/parallel_model.h5", src / "a.h5")
    out = tmp_path / "out"
    out.mkdir()
    shutil.copyfile(KERAS2 / "cnn/template_model.h5", out / "a.h5")  # someone else's file
    before = sha256(out / "a.h5")
    report = ckptfix.convert_batch([src], out, jobs=1)
    (e,) = report.entries
    assert (e.status, e.error, e.exit_code) == ("failed", "OutputError", 6)
    assert str(e.reason).startswith("expected the existing output to match its input")
    assert e.destination == str(out / "a.h5")  # the path is in the entry, not in the reason
    assert str(e.reason).endswith("pass force=True to replace it")
    assert sha256(out / "a.h5") == before
    fixed = ckptfix.convert_batch([src], out, jobs=1, force=True)
    assert fixed.entries[0].status == "converted" and fixed.ok


# --- finding inputs ----------------------------------------------------------------------------


def test_find_checkpoints_filters_and_skips_own_output(tmp_path: Path) -> None:
    src = tmp_path / "runs"
    for name in ("a.h5", "b.HDF5", "c.weights.h5", "d.keras", "e.txt", "f.h5.bak", "sub/g.h5"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
    (src / ".g.h5.ckptfix-tmp-1-ab").write_bytes(b"x")
    (src / "fixed").mkdir()
    (src / "fixed/a.h5").write_bytes(b"x")  # an earlier run's output inside the input folder
    items = find_checkpoints([src], src / "fixed")
    got = [(Path(i.source).relative_to(src).as_posix(), i.destination) for i in items]
    assert got == [
        (rel, str(src / "fixed" / rel))
        for rel in ("a.h5", "b.HDF5", "c.weights.h5", "d.keras", "sub/g.h5")
    ]


def test_find_checkpoints_mirrors_several_sources_below_their_common_folder(
    tmp_path: Path,
) -> None:
    for rel in ("runs/exp1/m.h5", "runs/exp2/m.h5", "runs/exp2/deep/n.h5"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    out = tmp_path / "out"
    items = find_checkpoints(
        [
            tmp_path / "runs/exp2",
            tmp_path / "runs/exp1/m.h5",
            tmp_path / "runs/exp2/m.h5",  # named twice: converted once
        ],
        out,
    )
    assert [i.destination for i in items] == [
        str(out / "exp1/m.h5"),
        str(out / "exp2/deep/n.h5"),
        str(out / "exp2/m.h5"),
    ]
    (single,) = find_checkpoints([tmp_path / "runs/exp1/m.h5"], out)
    assert single.destination == str(out / "m.h5")


def test_find_checkpoints_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("x")
    with pytest.raises(ckptfix.NotACheckpointError, match="found nothing at .*nope"):
        find_checkpoints([tmp_path / "nope"], tmp_path / "out")
    with pytest.raises(ckptfix.NotACheckpointError, match=r"found none in .*empty"):
        find_checkpoints([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "empty/a.h5").write_bytes(b"x")
    with pytest.raises(ckptfix.OutputError, match="both a source folder and the output"):
        find_checkpoints([tmp_path / "empty"], tmp_path / "empty")


def test_cli_batch_usage_and_up_front_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    a = tmp_path / "a.h5"
    shutil.copyfile(KERAS2 / "dense_bn/parallel_model.h5", a)
    three = runner.invoke(app, ["convert", str(a), str(a), str(a)])
    assert three.exit_code == 2 and "expected SRC [DST], or SRC... --out-dir DIR" in three.stderr
    folder = runner.invoke(app, ["convert", str(tmp_path), str(tmp_path / "x.h5")])
    assert folder.exit_code == 2 and "--out-dir" in folder.stderr
    jobs = runner.invoke(app, ["convert", str(a), str(tmp_path / "x.h5"), "--jobs", "2"])
    assert jobs.exit_code == 2 and "need --out-dir" in jobs.stderr
    missing = runner.invoke(app, ["convert", str(tmp_path / "nope"), "--out-dir", "o"])
    assert missing.exit_code == int(ckptfix.ExitCode.BAD_INPUT)
    assert missing.stderr.startswith("Error: expected a checkpoint file or a folder of them;")


def test_cli_single_form_still_works(tmp_path: Path) -> None:
    runner = CliRunner()
    src, dst = KERAS2 / "cnn/parallel_model.h5", tmp_path / "single.h5"
    ok = runner.invoke(app, ["convert", str(src), str(dst), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["destination"] == str(dst)
    again = runner.invoke(app, ["convert", str(src), str(dst)])
    assert again.exit_code == int(ckptfix.ExitCode.OUTPUT)
    single = runner.invoke(app, ["convert", str(dst), str(tmp_path / "x.h5")])
    assert single.exit_code == int(ckptfix.ExitCode.NOTHING_TO_CONVERT)


# --- with TensorFlow: Keras's own loaders are the oracle ---------------------------------------


def load_fixture_models() -> ModuleType:
    return fixture_module("models.py")


def is_full_model(path: Path) -> bool:
    with h5py.File(path, "r") as f:
        return "model_config" in f.attrs


@pytest.mark.tf
def test_every_keras2_output_loads_into_a_fresh_template(serial, tf_keras: Any) -> None:
    """tf_keras ``load_weights`` / ``load_model`` take every output; arrays equal the template's."""
    _, out, _ = serial
    models = load_fixture_models()
    for rel, case in CASE_OF.items():
        reference = models.build(case, tf_keras)
        reference.load_weights(str(KERAS2 / case / "template_weights.h5"))
        want = reference.get_weights()
        path = out / rel
        if is_full_model(path):
            model = tf_keras.models.load_model(str(path))
        else:
            model = models.build(case, tf_keras)
            model.load_weights(str(path))
        got = model.get_weights()
        assert len(got) == len(want), rel
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, rel
            assert np.array_equal(g, w), rel
        xs = np.load(KERAS2 / case / "inputs.npz")
        ys = np.load(KERAS2 / case / "predictions.npz")
        inputs = [xs[f"x{i}"] for i in range(len(xs))]
        pred = model(inputs if len(inputs) > 1 else inputs[0], training=False)
        pred = pred if isinstance(pred, list | tuple) else [pred]
        want_pred = [ys[f"y{i}"] for i in range(len(ys))]  # recorded on another CPU
        assert_predictions_close(list(pred), want_pred, float16=case == "fp16")


@pytest.mark.tf
def test_keras3_output_loads_in_keras3(serial, keras3: Any) -> None:
    """The Keras 3 wrapper in the batch comes out as the template's own ``.keras`` file."""
    _, out, _ = serial
    got = keras3.saving.load_model(str(out / "runC/wrapper.keras"), compile=False)
    want = keras3.saving.load_model(str(KERAS3 / "parallel/template.keras"), compile=False)
    gw, ww = got.get_weights(), want.get_weights()
    assert len(gw) == len(ww) > 0
    # the standalone template file was saved from the same trained object
    assert all(np.array_equal(g, w) for g, w in zip(gw, ww, strict=True))


def test_no_tensorflow_in_workers_or_library(serial) -> None:
    """Sanity: the batch module is part of the light core."""
    import subprocess
    import sys

    code = (
        "import sys, ckptfix, ckptfix.batch, ckptfix.batch_view; print('tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert done.stdout.strip() == "False"


def test_terminal_progress_bar_and_summary(tmp_path: Path) -> None:
    """On a terminal: a transient bar, failures printed above it, then the summary."""
    import io

    from rich.console import Console

    from ckptfix.batch_view import BatchProgressView, render_batch

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(KERAS2 / "cnn/parallel_model.h5", src / "a.h5")
    (src / "b.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # a signature, no file
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with BatchProgressView(console) as view:
        assert not view.plain
        report = ckptfix.convert_batch(src, tmp_path / "out", jobs=1, progress=view)
    console.print(render_batch(report, "r.json"))
    text = buf.getvalue()
    assert "failed " in text and "b.h5" in text and "converted a.h5" not in text
    assert "1 converted, 0 skipped, 1 failed" in text and "report: r.json" in text


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_never_reimport_main_so_a_script_on_stdin_runs_in_parallel(
    tmp_path: Path, method: str
) -> None:
    """Workers are forked, or started with ``python -c``: never by re-importing ``__main__``,
    so a script piped on stdin (no ``if __name__ == "__main__":`` guard, no file to re-import)
    gets its two workers instead of a broken pool."""
    import subprocess
    import sys

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.h5", "b.h5"):
        shutil.copyfile(KERAS2 / "cnn/parallel_model.h5", src / name)
    script = (
        "import ckptfix\n"
        f"r = ckptfix.convert_batch([{str(src)!r}], {str(tmp_path / 'out')!r}, jobs=2)\n"
        "print(r.jobs, r.converted, r.failed)\n"
    )
    env = {**os.environ, "CKPTFIX_START_METHOD": method}
    done = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.split() == ["2", "2", "0"], done.stderr
    assert outputs(tmp_path / "out").keys() == {"a.h5", "b.h5"}
