"""``ckptfix train``: the thin command over ckptfix.train, with real Keras 3 training."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ckptfix.cli import app

FACTORY = textwrap.dedent(
    """
    import keras

    def build():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                                  keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model

    def uncompiled():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    np.savez(tmp_path / "data.npz", x=x, y=y, val_x=x[:8], val_y=y[:8])
    return tmp_path


@pytest.mark.tf
def test_train_command_writes_checkpoints_that_load(keras3, project):
    out = project / "ckpt"
    args = [
        "train",
        "--model",
        f"{project / 'models.py'}:build",
        "--data",
        str(project / "data.npz"),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--devices",
        "2",
        "--out",
        str(out),
        "--save-best-only",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["replicas"] == 2 and report["strategy"] == "MirroredStrategy"
    assert report["checkpoints"] and len(report["history"]["val_loss"]) == 2
    model = keras3.models.load_model(report["checkpoints"][-1])
    x = np.load(project / "data.npz")["x"]
    assert model.predict(x, verbose=0).shape == (32, 1)

    # rerun with one more epoch: resumes, and the human summary names what it did
    more = CliRunner().invoke(app, [*args[:5], "--epochs", "3", *args[7:]])
    assert more.exit_code == 0, more.output
    first = more.stdout.splitlines()[0]
    assert first.startswith("Trained on 2 replica(s) (MirroredStrategy, keras 3.")
    assert "epochs 3-3, resumed from" in first


@pytest.mark.tf
def test_train_command_errors_are_one_line(keras3, project):
    runner = CliRunner()
    bad = runner.invoke(
        app,
        [
            "train",
            "--model",
            "models",
            "--data",
            "d.npz",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(project / "o"),
        ],
    )
    assert bad.exit_code == 1
    assert bad.stderr.splitlines()[0] == (
        "Error: expected --model MODULE:FACTORY (e.g. mymodels:build); found 'models'; "
        "name the module and the function that builds the model"
    )
    nodata = runner.invoke(
        app,
        [
            "train",
            "--model",
            f"{project / 'models.py'}:build",
            "--data",
            str(project / "none.npz"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(project / "o"),
        ],
    )
    assert nodata.exit_code == 1
    assert nodata.stderr.startswith("Error: expected an .npz of arrays x, y")
    noloss = runner.invoke(
        app,
        [
            "train",
            "--model",
            f"{project / 'models.py'}:uncompiled",
            "--data",
            str(project / "data.npz"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--devices",
            "1",
            "--out",
            str(project / "o"),
        ],
    )
    assert noloss.exit_code == 1
    assert "found an uncompiled model and loss=None" in noloss.stderr.splitlines()[0]
    assert not (project / "o").exists()


def test_train_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom ckptfix.cli import app\n"
        "import ckptfix.train\n"
        "r = CliRunner().invoke(app, ['train', '--help'])\n"
        "assert r.exit_code == 0 and '--batch-size' in r.stdout, r.output\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
