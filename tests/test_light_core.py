"""The core never imports TensorFlow: ``import ckptfix``, the CLI module and ``--help``."""

from __future__ import annotations

import subprocess
import sys

CHECK = (
    "import sys, ckptfix, ckptfix.cli, ckptfix.convert, ckptfix.report, ckptfix.storage;"
    "from ckptfix.formats import registry; registry();"
    "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
    "('tensorflow', 'keras', 'tf_keras', 'jax', 'torch'));"
    "print(bad); sys.exit(1 if bad else 0)"
)


def test_import_does_not_load_tensorflow():
    r = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_help_does_not_load_tensorflow():
    code = (
        "import sys; from typer.testing import CliRunner; from ckptfix.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "assert 'convert' in r.output and 'inspect' in r.output;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')];"
        "sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_console_script_and_module_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "ckptfix", "--version"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and r.stdout.startswith("ckptfix "), r.stdout + r.stderr
