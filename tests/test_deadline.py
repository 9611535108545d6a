"""No file can hang ckptfix: every file is read in a worker process under a deadline.

The file that proves it is case 2246 of ``python bench/fuzz.py --seed 0``: 3 KB spliced over
the root group's B-tree of a tf_keras parallel weights file, on which HDF5 1.14 loops forever
in C code during the first name lookup, where no signal reaches Python. It is rebuilt here
from the fuzz generator exactly as the fuzz run builds it.
"""

from __future__ import annotations

import functools
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import ckptfix
from ckptfix import deadline
from ckptfix.output import TEMP_MARK, discard_temps_of
from ckptfix.storage import WriteLog
from tests.conftest import FIXTURES, sha256
from tests.test_fuzz import fuzz

HANG_SEED, HANG_CASE = 0, 2246
#: The deadline the tests give ckptfix, and the bound on how long a refusal may take under a
#: loaded machine (starting Python and forking included): bounded, and far below "forever".
DEADLINE = 3
BOUND = 60


@pytest.fixture(scope="module")
def hanging_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Case 2246 of the fuzz run (seed files as the full run picks them)."""
    folder = tmp_path_factory.mktemp("hang")
    case = fuzz.make_case(HANG_SEED, HANG_CASE, fuzz.seed_files(), folder)
    assert case.mutation == "splice", case  # the generator still makes the same file
    return case.path


def run_cli(*args: str, timeout: float = BOUND, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ckptfix", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "250", **env},
    )


# --- the file that hangs HDF5 -------------------------------------------------------------------


def test_the_case_really_hangs_hdf5_without_the_deadline(hanging_file: Path) -> None:
    """The premise: with the deadline off, ckptfix never comes back from this file."""
    with pytest.raises(subprocess.TimeoutExpired):  # subprocess.run kills it (SIGKILL)
        run_cli("inspect", str(hanging_file), "--timeout", "0", timeout=2 * DEADLINE)


@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("command", ["inspect", "convert", "verify"])
def test_cli_refuses_the_hanging_file_with_exit_5_in_bounded_time(
    hanging_file: Path, tmp_path: Path, command: str, method: str
) -> None:
    src = tmp_path / hanging_file.name
    shutil.copyfile(hanging_file, src)
    before = sha256(src)
    out = tmp_path / "out"
    out.mkdir()
    args = {
        "inspect": [str(src)],
        "convert": [str(src), str(out / "single.h5")],
        "verify": [str(src), str(FIXTURES / "keras2/nested/template_weights.h5")],
    }[command]
    start = time.monotonic()
    proc = run_cli(command, *args, "--timeout", str(DEADLINE), CKPTFIX_START_METHOD=method)
    took = time.monotonic() - start
    assert proc.returncode == 5, proc.stderr
    assert DEADLINE <= took < BOUND, took
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert lines[0] == (
        f"Error: expected {src.name} to be read within the {DEADLINE} s deadline; found no "
        f"progress for {DEADLINE} s, as when HDF5 loops forever on a damaged or crafted file; "
        "refused, nothing was written; if the file is sound but huge, pass a larger --timeout "
        "(--timeout 0 turns the deadline off)"
    )
    assert list(out.iterdir()) == []  # nothing written, no temporary left
    assert sha256(src) == before


def test_library_raises_deadline_exceeded_and_writes_nothing(
    hanging_file: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "single.h5"
    for call in (
        lambda: ckptfix.inspect_checkpoint(hanging_file, timeout=1),
        lambda: ckptfix.read_checkpoint(hanging_file, timeout=1),
        lambda: ckptfix.convert_checkpoint(hanging_file, dst, timeout=1),
    ):
        with pytest.raises(ckptfix.DeadlineExceededError) as exc:
            call()
        assert isinstance(exc.value, ckptfix.CorruptCheckpointError)
        assert exc.value.exit_code == ckptfix.ExitCode.BAD_INPUT == 5
        assert "timeout=" in str(exc.value) and "\n" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_batch_marks_the_hanging_file_failed_and_converts_the_others(
    hanging_file: Path, tmp_path: Path
) -> None:
    src = tmp_path / "runs"
    good = {
        "a/epoch_1.h5": FIXTURES / "keras2/dense_bn/parallel_model.h5",
        "a/epoch_2.h5": FIXTURES / "keras2/cnn/parallel_model.h5",
        "b/epoch_1.h5": FIXTURES / "keras2/nested/parallel_weights.h5",
        "c/wrapper.keras": FIXTURES / "keras3/parallel/wrapper.keras",
    }
    for rel, fixture in good.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixture, src / rel)
    shutil.copyfile(hanging_file, src / "b/epoch_2.h5")  # between good files, in input order
    seen: list[str] = []
    report = ckptfix.convert_batch(
        src,
        tmp_path / "out",
        jobs=2,
        timeout=DEADLINE,
        progress=lambda p: seen.append(p.entry.status if p.entry else "start"),
    )
    rels = [Path(e.source).relative_to(src).as_posix() for e in report.entries]
    assert rels == sorted(list(good) + ["b/epoch_2.h5"])
    by_rel = dict(zip(rels, report.entries, strict=True))
    bad = by_rel["b/epoch_2.h5"]
    assert (bad.status, bad.error, bad.exit_code) == ("failed", "DeadlineExceededError", 5)
    assert bad.destination is None and "deadline" in str(bad.reason)
    assert all(by_rel[r].status == "converted" for r in good), report.entries
    assert (report.converted, report.failed, report.jobs) == (4, 1, 2)
    assert sorted(seen) == sorted(["start"] + ["converted"] * 4 + ["failed"])
    out_files = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert out_files == [
        "a",
        "a/epoch_1.h5",
        "a/epoch_2.h5",
        "b",
        "b/epoch_1.h5",
        "c",
        "c/wrapper.keras",
    ]
    # the same bytes as a serial run without any deadline or worker
    serial = ckptfix.convert_batch(
        [src / rel for rel in good], tmp_path / "serial", jobs=1, timeout=None
    )
    assert serial.converted == 4
    for rel in good:
        assert sha256(tmp_path / "out" / rel) == sha256(tmp_path / "serial" / rel)


def test_cli_batch_goes_on_past_the_hanging_file(hanging_file: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(FIXTURES / "keras2/dense_bn/parallel_model.h5", src / "a.h5")
    shutil.copyfile(hanging_file, src / "b.h5")
    shutil.copyfile(FIXTURES / "keras2/cnn/parallel_model.h5", src / "c.h5")
    proc = run_cli(
        "convert",
        str(src),
        "--out-dir",
        str(tmp_path / "out"),
        "--timeout",
        str(DEADLINE),
        "--report",
        str(tmp_path / "r.json"),
        "--json",
    )
    assert proc.returncode == 1, proc.stderr
    import json

    data = json.loads(proc.stdout)
    got = [
        (Path(e["source"]).name, e["status"], e["error"], e["exit_code"]) for e in data["entries"]
    ]
    assert got == [
        ("a.h5", "converted", None, 0),
        ("b.h5", "failed", "DeadlineExceededError", 5),
        ("c.h5", "converted", None, 0),
    ]
    assert "--timeout" in data["entries"][1]["reason"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.h5", "c.h5"]


# --- the mechanism ------------------------------------------------------------------------------
# Stand-ins for a stuck HDF5: functions of this module, run in real worker processes.


def sleep_writing(folder: str, seconds: float, ticks: bool) -> str:
    """Write a temporary as a converter would, then work for ``seconds`` (ticking or not)."""
    tmp = Path(folder) / f".x.h5{TEMP_MARK}{os.getpid()}-abcd1234"
    tmp.write_bytes(b"partial")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
        if ticks:
            deadline.tick()
    tmp.unlink()
    return "done"


def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_stuck_worker_is_killed_and_its_temporaries_removed(
    tmp_path: Path, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(deadline.START_METHOD_ENV, method)
    start = time.monotonic()
    with pytest.raises(ckptfix.DeadlineExceededError, match="within the 1 s deadline"):
        deadline.run_isolated(
            sleep_writing,
            (str(tmp_path), 600.0, False),
            timeout=1,
            subject="x.h5",
            cleanup=functools.partial(discard_temps_of, tmp_path),
        )
    assert time.monotonic() - start < BOUND
    assert list(tmp_path.iterdir()) == []


def test_progress_keeps_a_long_call_alive(tmp_path: Path) -> None:
    """Time spent making progress (copying, comparing bytes) does not count."""
    answer = deadline.run_isolated(
        sleep_writing, (str(tmp_path), 3.0, True), timeout=1, subject="big.h5"
    )
    assert answer == "done" and list(tmp_path.iterdir()) == []


def test_a_crashing_worker_is_a_damaged_file_not_a_dead_caller() -> None:
    with pytest.raises(ckptfix.CorruptCheckpointError, match=r"crashed reading it \(SIGSEGV\)"):
        deadline.run_isolated(crash, timeout=5, subject="bad.h5")


def test_errors_and_results_cross_the_process_boundary_whole(tmp_path: Path) -> None:
    src = FIXTURES / "keras2/cnn/parallel_model.h5"
    assert ckptfix.inspect_checkpoint(src) == ckptfix.inspect_checkpoint(src, timeout=None)
    assert ckptfix.read_checkpoint(src) == ckptfix.read_checkpoint(src, timeout=None)
    calls: list[tuple[int, int]] = []
    r = ckptfix.convert_checkpoint(
        src, tmp_path / "a.h5", progress=lambda d, t: calls.append((d, t))
    )
    size = src.stat().st_size
    assert r.verified and calls == [(0, size), (size, size)]
    with pytest.raises(ckptfix.OptionNotSupportedError) as exc:  # an error with an attribute
        ckptfix.convert_checkpoint(
            FIXTURES / "keras3/parallel/wrapper.keras", tmp_path / "b.keras", reference=src
        )
    assert exc.value.options and exc.value.exit_code == 2


def test_every_error_pickles_with_its_attributes() -> None:
    import ckptfix.errors as errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.CkptfixError)
    ]
    assert errors.DeadlineExceededError in classes and len(classes) > 10
    for cls in classes:
        kwargs = {"options": ("reference",)} if cls is errors.OptionNotSupportedError else {}
        exc = cls("expected a; found b; do c", **kwargs)
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is cls and str(back) == str(exc) and back.exit_code == exc.exit_code
        assert vars(back) == vars(exc)


def test_answers_admit_only_ckptfix_results_and_exceptions() -> None:
    """A worker parses hostile files; its answer cannot make the caller run anything."""
    import io

    def read(obj: object) -> object:
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = {}  # as a worker encodes (immune to Dask's global reducers)
        pickler.dump(obj)
        return deadline._AnswerUnpickler(io.BytesIO(buf.getvalue())).load()

    report = ckptfix.inspect_checkpoint(FIXTURES / "keras2/cnn/parallel_model.h5", timeout=None)
    assert read(("ok", report, [])) == ("ok", report, [])
    assert isinstance(read(KeyError("x")), KeyError)
    for bad in (os.system, discard_temps_of, Path("/etc"), WriteLog, threading.Thread):
        with pytest.raises(pickle.UnpicklingError, match="not something a worker answers with"):
            read(bad)


def test_concurrent_calls_from_threads_all_succeed(tmp_path: Path) -> None:
    """Threads of one caller fork at once (h5py's lock is held across each fork)."""
    src = FIXTURES / "keras2/dense_bn/parallel_model.h5"
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(3):
                r = ckptfix.convert_checkpoint(src, tmp_path / f"t{k}_{j}.h5")
                assert r.verified
                assert ckptfix.inspect_checkpoint(tmp_path / f"t{k}_{j}.h5").parallel is False
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND)
    assert not errors, errors
    assert len({sha256(p) for p in tmp_path.glob("t*.h5")}) == 1


def test_timeout_values() -> None:
    assert deadline.resolve_timeout(None) is None
    assert deadline.resolve_timeout(0) is None
    assert deadline.resolve_timeout(2) == 2.0
    for bad in (-1, "5", True, float("nan")):
        with pytest.raises(ValueError, match="timeout must be"):
            deadline.resolve_timeout(bad)  # type: ignore[arg-type]
    assert ckptfix.DEFAULT_TIMEOUT == deadline.DEFAULT_TIMEOUT == 60.0


def test_answers_do_not_depend_on_reducers_other_libraries_register(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask registers tblib's reducer for every exception class (copyreg); a worker's answer
    must still be made of ckptfix's own types, or the caller would refuse to read it."""
    import copyreg

    monkeypatch.setitem(copyreg.dispatch_table, ckptfix.OutputError, lambda e: (print, ("x",)))
    src = FIXTURES / "keras2/cnn/parallel_model.h5"
    (tmp_path / "a.h5").write_bytes(b"someone else's file")
    with pytest.raises(ckptfix.OutputError, match="already exists"):
        ckptfix.convert_checkpoint(src, tmp_path / "a.h5")
