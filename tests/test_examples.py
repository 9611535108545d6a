"""The documented example scripts run as a user runs them, exit 0 and say what they checked.

``examples/quickstart.sh`` is the README's first command: it must pass on any CPU whenever the
conversion is right (arrays bit for bit, predictions within the stated tolerance), under both
``TF_ENABLE_ONEDNN_OPTS`` settings, print no TensorFlow log lines or warnings, and fail when
a converted array is wrong. The README shows its real output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import ckptfix
from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.tf

DENSE_BN = FIXTURES / "keras2" / "dense_bn"
LOAD_LINE = re.compile(
    r"^(load_model\(single\.h5\)|template\.load_weights\((single|exact)_weights\.h5\)): "
    r"arrays: 8 of 8 identical to the template's own file; predictions within rtol 1e-05, "
    r"atol 1e-06 of the trained template's \(max \|diff\| ([0-9.e+-]+)\)"
    r"(; optimizer at iteration 8)?$"
)


def run(args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """A script in a fresh process, with the environment of a user's shell.

    This checkout first on the path (as ``pip install -e .`` would make it); the test
    session's ``TF_CPP_MIN_LOG_LEVEL`` removed, so the script's own quieting is what is tested.
    """
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    path = os.pathsep.join(p for p in (str(ROOT), base.get("PYTHONPATH")) if p)
    bindir = str(Path(sys.executable).parent)  # the scripts call python3
    base.update(PYTHONPATH=path, PATH=bindir + os.pathsep + base.get("PATH", ""), **env)
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=base, check=False
    )


@pytest.fixture(scope="module", params=["0", "1"], ids=lambda v: f"onednn{v}")
def quickstart(request: pytest.FixtureRequest) -> subprocess.CompletedProcess[str]:
    return run(["bash", "examples/quickstart.sh"], 600, TF_ENABLE_ONEDNN_OPTS=request.param)


def test_quickstart_passes_and_says_what_it_checked(quickstart):
    p = quickstart
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stderr == ""  # no TensorFlow C++ log lines, no Python warnings
    lines = [line.rstrip() for line in p.stdout.splitlines()]
    assert "│ checkpoint  parallel (multi_gpu_model, 2 replicas)" in p.stdout
    assert "layout     exact (from the file's own model config)" in lines
    assert "layout    inferred (from weight names only)" in lines
    assert "layout    exact (from --reference)" in lines
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1  # the inferred layout, said in one line
    assert warnings[0].startswith("warning: layout inferred from weight names")
    assert "make it exact with --reference" in warnings[0]
    assert "'Layer count mismatch … found 3 saved layers'" in warnings[0]
    checks = [m for m in map(LOAD_LINE.match, lines) if m]
    assert [m.group(1) for m in checks] == [
        "load_model(single.h5)",
        "template.load_weights(single_weights.h5)",
        "template.load_weights(exact_weights.h5)",
    ]
    assert checks[0].group(4) and not checks[1].group(4)
    assert all(float(m.group(3)) <= 1e-5 for m in checks)


def test_readme_shows_the_quickstart_output(quickstart):
    """Each line of the README's quickstart console block is a line of the real output.

    Only what varies between runs and CPUs is left out: timings and max |diff|.
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- quickstart:start -->", 1)[1].split("<!-- quickstart:end -->")[0]
    shown = section.split("```console\n", 1)[1].split("```", 1)[0].splitlines()
    assert len([line for line in shown if line.startswith("$ ")]) >= 2

    def norm(line: str) -> str:
        line = re.sub(r"max \|diff\| [0-9.e+-]+\)", "max |diff| …)", line.rstrip())
        return re.sub(r"^time( +)[0-9.]+ s$", r"time\1… s", line)

    real = {norm(line) for line in quickstart.stdout.splitlines()}
    missing = [line for line in shown if line and norm(line) not in real]
    assert not missing, missing


def test_load_single_fails_when_an_array_is_wrong(tmp_path):
    """The quickstart's check can fail: one float changed by one ulp is caught and exits 1."""
    full, weights = tmp_path / "single.h5", tmp_path / "single_weights.h5"
    ckptfix.convert_checkpoint(DENSE_BN / "parallel_model.h5", full)
    ckptfix.convert_checkpoint(DENSE_BN / "parallel_weights.h5", weights)
    with h5py.File(weights, "r+") as f:
        ds = f["dense/dense/kernel:0"]
        values = ds[()]
        values[0, 0] = np.nextafter(values[0, 0], np.float32(np.inf))
        ds[...] = values
    p = run(
        [sys.executable, "examples/load_single.py", str(DENSE_BN), str(full), str(weights)], 300
    )
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("load_model(single.h5): arrays: 8 of 8 identical")
    assert lines[1].startswith("template.load_weights(single_weights.h5): arrays: 7 of 8 identical")
    assert p.stderr == "MISMATCH: the conversion is not what the template saved\n"


@pytest.mark.slow
def test_train_two_devices_example():
    """examples/train_two_devices.py: 2 replicas, 3 checkpoints, loaded by plain Keras."""
    p = run([sys.executable, "examples/train_two_devices.py"], 600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert p.stdout.splitlines() == [
        "2 replicas; wrote 3 checkpoints",
        "checkpoint arrays equal to the trained model: True",
    ]
