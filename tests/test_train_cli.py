"""``ckptfix train``: the thin command over ckptfix.train, with real Keras 3 training.

Every test trains a tiny model for a few batches on logical CPUs (conftest's ``keras3``
fixture), through the real command line: typer's CliRunner, or a subprocess where the process
itself matters (Ctrl-C, warnings on a real stderr).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ckptfix.cli import app
from tests.conftest import ROOT

FACTORY = textwrap.dedent(
    """
    import warnings

    import keras

    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                                  keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model

    def uncompiled():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    def noisy():
        warnings.warn("this factory is noisy")
        return build()
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    np.savez(tmp_path / "data.npz", x=x, y=y, val_x=x[:8], val_y=y[:8])
    np.savez(tmp_path / "train_only.npz", x=x, y=y)
    return tmp_path


def args(
    project: Path, epochs: int, *extra: str, factory: str = "build", data: str = "data.npz"
) -> list[str]:
    """A ``train`` command line, options in the order ``--help`` lists them."""
    return [
        "train",
        "--model",
        f"{project / 'models.py'}:{factory}",
        "--data",
        str(project / data),
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--out",
        str(project / "ckpt"),
        *extra,
    ]


def run(*argv: str):
    return CliRunner().invoke(app, list(argv))


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}


@pytest.mark.tf
def test_train_command_writes_checkpoints_that_load(keras3, project):
    result = run(*args(project, 2, "--devices", "2", "--save-best-only", "--json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replicas"] == 2 and report["strategy"] == "MirroredStrategy"
    assert report["checkpoints"] == report["written"] and len(report["history"]["val_loss"]) == 2
    assert report["complete"] is False
    model = keras3.models.load_model(report["checkpoints"][-1])
    x = np.load(project / "data.npz")["x"]
    assert model.predict(x, verbose=0).shape == (32, 1)


@pytest.mark.tf
def test_resume_names_what_was_kept_and_what_was_written(keras3, project):
    first = run(*args(project, 2, "--devices", "1"))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[1:] == [
        f"Wrote 2 checkpoints in {project / 'ckpt'}: epoch-0001.keras, epoch-0002.keras",
    ]
    # one line per epoch on stderr, never a progress bar in a pipe
    epochs = [line for line in first.stderr.splitlines() if not line.startswith("Warning: ")]
    assert [line.split("  ")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    more = run(*args(project, 3, "--devices", "1"))
    assert more.exit_code == 0, more.output
    lines = more.stdout.splitlines()
    assert lines[0].startswith("Trained on 1 replica(s) (default, keras 3.")
    assert "epochs 3-3, resumed from" in lines[0]
    assert lines[1:] == [
        "Kept 2 checkpoints of the earlier epochs (epoch-0001.keras … epoch-0002.keras)",
        f"Wrote 1 checkpoint in {project / 'ckpt'}: epoch-0003.keras",
    ]


# --- issue 14, point 1: no green exit with nothing saved; warnings in one line ------------------


@pytest.mark.tf
def test_save_best_only_without_validation_data_is_refused_before_training(keras3, project):
    result = run(*args(project, 2, "--devices", "1", "--save-best-only", data="train_only.npz"))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: expected validation data to monitor 'val_loss' for best-only saving; found "
        "none; pass val_x and val_y in the --data file, or --monitor loss"
    ]
    assert not (project / "ckpt").exists()  # refused before anything was trained or written


@pytest.mark.tf
def test_monitoring_a_metric_that_is_not_logged_stops_with_exit_2(keras3, project):
    result = run(*args(project, 3, "--devices", "1", "--save-best-only", "--monitor", "acc"))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        "Error: expected the metric 'acc' in the epoch logs for best-only saving; found loss, "
        "val_loss; pass --monitor one of those"
    )
    assert "checkpoint.py" not in result.output and "Warning" not in result.output
    assert not list((project / "ckpt").glob("epoch-*"))


@pytest.mark.tf
def test_a_warning_is_one_clean_line(keras3, project):
    result = run(*args(project, 1, "--devices", "1", factory="noisy"))
    assert result.exit_code == 0, result.output
    assert "Warning: UserWarning: this factory is noisy" in result.stderr.splitlines()
    assert not re.search(r"\.py:\d", result.stderr) and "warnings.warn" not in result.stderr


# --- point 2: Ctrl-C says what is kept and how to go on -----------------------------------------


@pytest.mark.tf
def test_ctrl_c_names_the_kept_checkpoints_and_the_resume_command(keras3, project):
    out = project / "ckpt"
    argv = args(project, 400, "--devices", "1", factory="noisy")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ckptfix", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=project,
    )
    try:
        deadline = time.monotonic() + 180
        while not (out / "ckptfix-resume" / "state.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 180 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    lines = stderr.splitlines()
    assert "Warning: UserWarning: this factory is noisy" in lines  # one line, on a real stderr
    assert not re.search(r"\.py:\d", stderr) and "Traceback" not in stderr  # no file:line
    assert "cuda" not in stderr.lower() and "absl" not in stderr  # no native start-up noise
    kept = sorted(p.name for p in out.glob("epoch-*.keras"))
    state = json.loads((out / "ckptfix-resume" / "state.json").read_text())
    done = state["epoch"]
    assert kept and len(kept) >= done
    span = kept[0] if len(kept) == 1 else f"{kept[0]} … {kept[-1]}"
    noun = "checkpoint" if len(kept) == 1 else "checkpoints"
    again = f" (resuming trains epoch {done + 1} again)" if len(kept) > done else ""
    assert lines[-2] == (
        f"Interrupted after epoch {done} of 400; kept {len(kept)} {noun} ({span}) and the "
        f"resume state in {out}{again}."
    )
    command = lines[-1].removeprefix("Resume with: ")
    assert shlex.split(command) == ["ckptfix", *argv]
    # the printed command resumes (with fewer epochs asked for, to stay quick)
    resumed = shlex.split(command)[1:]
    resumed[resumed.index("--epochs") + 1] = str(done + 1)
    again = run(*resumed)
    assert again.exit_code == 0, again.output
    assert f"epochs {done + 1}-{done + 1}, resumed from" in again.stdout.splitlines()[0]


# --- point 3: a folder holding another run ------------------------------------------------------


@pytest.mark.tf
def test_no_resume_into_another_run_is_refused_unless_force(keras3, project):
    out = project / "ckpt"
    assert run(*args(project, 3, "--devices", "1")).exit_code == 0
    before = mtimes(out)
    refused = run(*args(project, 2, "--devices", "1", "--no-resume"))
    assert refused.exit_code == 6, refused.output
    assert refused.stderr.splitlines() == [
        "Error: expected --out without another run (--no-resume); found 3 checkpoint(s) of an "
        f"earlier run (epoch-0001.keras … epoch-0003.keras) in {out}; pass --force to replace "
        "them, or another --out"
    ]
    assert mtimes(out) == before  # nothing touched
    forced = run(*args(project, 2, "--devices", "1", "--no-resume", "--force"))
    assert forced.exit_code == 0, forced.output
    assert (
        "Replaced an earlier run: removed 3 checkpoints (epoch-0001.keras … epoch-0003.keras)"
        in forced.stdout.splitlines()
    )
    assert sorted(p.name for p in out.glob("epoch-*")) == ["epoch-0001.keras", "epoch-0002.keras"]
    state = json.loads((out / "ckptfix-resume" / "state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]["loss"]) == 2  # one run, not two mixed


# --- point 4: a finished run -------------------------------------------------------------------


@pytest.mark.tf
def test_resuming_a_finished_run_trains_nothing_and_says_so(keras3, project):
    out = project / "ckpt"
    assert run(*args(project, 2, "--devices", "1")).exit_code == 0
    before = mtimes(out)
    state = (out / "ckptfix-resume" / "state.json").read_text()
    again = run(*args(project, 2, "--devices", "1"))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines() == [
        "Already complete: the run in this folder finished 2 epochs (--epochs 2); nothing was "
        "trained.",
        f"Latest checkpoint: {out / 'epoch-0002.keras'}",
        "To train further, run it again with --epochs above 2.",
    ]
    assert "epochs 3-2" not in again.output and again.stderr == ""  # no epoch trained
    assert mtimes(out) == before
    assert (out / "ckptfix-resume" / "state.json").read_text() == state
    data = json.loads(run(*args(project, 2, "--devices", "1", "--json")).stdout)
    assert data["complete"] is True and data["written"] == []


# --- point 5: one exit-code table, one vocabulary -----------------------------------------------


@pytest.mark.tf
def test_usage_errors_exit_2_and_speak_in_flags(keras3, project):
    bad = run("train", "--model", "models", "--data", "d.npz", "--epochs", "1",
              "--batch-size", "8", "--out", str(project / "o"))  # fmt: skip
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        "Error: expected --model MODULE:FACTORY (e.g. mymodels:build); found 'models'; "
        "name the module and the function that builds the model"
    ]
    noloss = run(*args(project, 1, "--devices", "1", factory="uncompiled"))
    assert noloss.exit_code == 2
    assert noloss.stderr.splitlines() == [
        "Error: expected a compiled model or a loss to compile it with; found the model "
        "uncompiled and no loss given; pass --loss mse (for example)"
    ]
    assert not (project / "ckpt").exists()
    missing_option = run("train", "--model", f"{project / 'models.py'}:build")
    assert missing_option.exit_code == 2 and "Missing option" in missing_option.stderr


@pytest.mark.tf
def test_bad_data_and_factories_are_bad_input_exit_5(keras3, project):
    nodata = run(*args(project, 1, data="none.npz"))
    assert nodata.exit_code == 5
    assert nodata.stderr.splitlines() == [
        "Error: expected an .npz of arrays x, y (val_x, val_y optional); found nothing at "
        f"{project / 'none.npz'}; check the path"
    ]
    code = run(*args(project, 1, data="models.py"))
    assert code.exit_code == 5
    assert code.stderr.splitlines() == [
        "Error: expected an .npz of arrays x, y (val_x, val_y optional); found another kind "
        "of file (models.py, starts with b'\\nimport '); save them with "
        "numpy.savez(path, x=..., y=...)"
    ]
    assert "pickle" not in code.stderr
    nofactory = run(*args(project, 1, factory="missing"))
    assert nofactory.exit_code == 5
    assert nofactory.stderr.startswith("Error: expected a function 'missing' in ")


def test_train_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom ckptfix.cli import app\n"
        "import ckptfix.train\n"
        "r = CliRunner().invoke(app, ['train', '--help'])\n"
        "assert r.exit_code == 0 and '--batch-size' in r.stdout, r.output\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
