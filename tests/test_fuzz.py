"""Fuzz inspect and convert with corrupted real fixtures (a few hundred cases of bench/fuzz.py).

Seeds: Keras 2 and Keras 3 files, TF checkpoint prefixes and SavedModel folders (``fixtures/tf``).

Every case: the input's hash is unchanged, ``inspect`` and ``convert`` either succeed or raise a
``CkptfixError`` with a documented exit code and a one-line message, within a time bound, and a
failed conversion leaves nothing in the output folder. The large run is ``python bench/fuzz.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from .conftest import ROOT, sha256

IN_SUITE_CASES = 300
CLI_SAMPLE = 16
SEED = 2024
MAX_BYTES = 300_000  # the small fixtures: more cases per second


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("ckptfix_bench_fuzz", ROOT / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


fuzz = _load_fuzz()


@pytest.fixture(scope="module")
def seeds() -> list[Path]:
    found = fuzz.seed_files(max_bytes=MAX_BYTES)
    if len(found) < 4:
        pytest.skip("the committed fixtures are missing")
    return found


def test_every_format_is_a_seed(seeds):
    names = {fuzz.suffix_of(p) for p in seeds}
    kinds = {p.name for p in seeds}
    assert {".h5", ".weights.h5", ".keras"} <= names
    assert {"parallel_weights.h5", "parallel_model.h5", "ckpt", "savedmodel"} <= kinds


def test_cases_are_reproducible(seeds, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = fuzz.make_case(SEED, 17, seeds, tmp_path / "a")
    b = fuzz.make_case(SEED, 17, seeds, tmp_path / "b")
    assert (a.seed_file, a.mutation, a.detail) == (b.seed_file, b.mutation, b.detail)
    assert fuzz.sha256(a.path) == fuzz.sha256(b.path)
    assert fuzz.sha256(a.path) != fuzz.sha256(ROOT / a.seed_file)


def test_fuzz_inspect_and_convert(seeds):
    """Cases run in-process in two worker processes; a worker stuck in C code is killed."""
    outcomes = [
        o
        for o in fuzz.run_parallel(SEED, list(range(IN_SUITE_CASES)), 2, 15.0, MAX_BYTES)
        if o.mutation != "skipped"
    ]
    bugs = [(o.number, o.mutation, o.detail, o.bugs) for o in outcomes if o.bugs]
    assert not bugs, bugs
    assert len(outcomes) > IN_SUITE_CASES * 0.9
    # The sample exercises every mutation, and both outcomes happen: damage the converter
    # tolerates (bytes it never reads) and damage it refuses with a documented code.
    per = Counter(o.mutation for o in outcomes)
    expected = set(fuzz.BYTE_MUTATIONS) | set(fuzz.H5_MUTATIONS) | {"zip"} | set(fuzz.TF_MUTATIONS)
    assert expected <= set(per), expected - set(per)
    codes = Counter(o.convert for o in outcomes)
    assert codes["ok"] > 0 and codes["exit 5"] > 0, codes
    assert set(codes) <= {"ok"} | {f"exit {c}" for c in fuzz.DOCUMENTED_CODES}, codes


def test_cli_prints_one_line_and_a_documented_code(seeds, tmp_path):
    """A sample through the real command: no traceback, one ``Error:`` line, documented code."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    seen = Counter()
    for n in range(CLI_SAMPLE):
        case = fuzz.make_case(SEED + 1, n, seeds, tmp_path)
        before = fuzz.sha256(case.path)
        out = tmp_path / f"out{n}{fuzz.suffix_of(case.path)}"
        for args in (["inspect", str(case.path)], ["convert", str(case.path), str(out)]):
            proc = subprocess.run(
                [sys.executable, "-m", "ckptfix", *args],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
            )
            seen[proc.returncode] += 1
            what = f"case {n} ({case.mutation}: {case.detail}) {args[0]}"
            assert "Traceback" not in proc.stderr + proc.stdout, what + proc.stderr
            assert proc.returncode in {0} | fuzz.DOCUMENTED_CODES, what + proc.stderr
            if proc.returncode:
                lines = proc.stderr.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("Error: "), what + proc.stderr
        if not out.exists():
            assert not list(tmp_path.glob(f".{out.name}*")), what
        assert fuzz.sha256(case.path) == before, what
    assert seen[5] > 0, seen


@pytest.mark.parametrize(
    "fixture",
    [
        "keras2/cnn/parallel_weights.h5",
        "keras2/cnn/parallel_model.h5",
        "keras3/parallel/wrapper.weights.h5",
    ],
)
def test_a_zeroed_global_heap_object_is_refused_not_looped_on(tmp_path, fixture):
    """Zeroed bytes inside a global heap collection (where the name lists live) made HDF5 1.14
    loop forever in C code (found by the fuzzer); ckptfix now refuses such a file at once."""
    src = tmp_path / Path(fixture).name
    data = bytearray((ROOT / "fixtures" / fixture).read_bytes())
    pos = data.find(b"GCOL\x01\x00\x00\x00")
    assert pos > 0, "the fixture stores its names in a global heap"
    p = pos + 16
    for _ in range(3):  # walk to the third object of the collection, zero its header
        size = int.from_bytes(data[p + 8 : p + 16], "little")
        p += 16 + ((size + 7) & ~7)
    data[p : p + 16] = bytes(16)
    src.write_bytes(bytes(data))
    before = sha256(src)
    for args in (["inspect", str(src)], ["convert", str(src), str(tmp_path / "out.h5")]):
        proc = subprocess.run(
            [sys.executable, "-m", "ckptfix", *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 5, proc.stderr
        assert "found a damaged global heap" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]
    assert sha256(src) == before
