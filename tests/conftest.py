"""Shared test fixtures.

TensorFlow is imported only inside fixtures, never at module top, so the TF-free tests stay
TF-free. The first TF fixture used configures 8 logical CPU devices (this must happen before
TensorFlow initialises its devices, so every TF test must go through the ``tf`` fixture).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
REALWORLD = ROOT.parent / "shared" / "realworld"
LOGICAL_CPUS = 8

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Predictions are computed by TensorFlow, and a forward pass differs in its last bits between
# CPUs (vector width, FMA, thread partitioning) and with TF_ENABLE_ONEDNN_OPTS=0/1, so they are
# compared within a tolerance, never bit for bit; the arrays ckptfix copies are compared bit
# for bit by the tests that check a conversion.
# float32: the fixtures' predictions, recorded on another CPU, differ here by up to 2.4e-07
# absolute (8.4e-07 relative) under either oneDNN setting; a wrong or swapped weight moves them
# by orders of magnitude more.
FLOAT32_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
# float16 layers (the fp16 fixture): each float16 rounding is worth up to 2**-11 relative, and
# a float16 matmul's accumulation order differs between CPUs; measured here 3.4e-04 absolute on
# outputs of at most 0.19 (3 float16 ulps), so 2e-3 absolute with 1e-2 relative.
FLOAT16_TOLERANCE = {"rtol": 1e-2, "atol": 2e-3}


def assert_predictions_close(got: Any, want: Any, *, float16: bool = False) -> None:
    """Predictions of a (converted) model against expected ones, output by output.

    ``float16``: the model computes in float16 somewhere (looser tolerance, see above).
    """
    import numpy as np

    got = [np.asarray(g) for g in (got if isinstance(got, list | tuple) else [got])]
    want = [np.asarray(w) for w in (want if isinstance(want, list | tuple) else [want])]
    assert len(got) == len(want), (len(got), len(want))
    tolerance = FLOAT16_TOLERANCE if float16 else FLOAT32_TOLERANCE
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, **tolerance)


def sha256(path: Path) -> str:
    """Hash of a file, to prove inputs are never modified."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.cache
def fixture_module(relpath: str) -> ModuleType:
    """A helper module of ``fixtures/`` (``models.py``, ``keras3/templates.py``), by path.

    ``fixtures/`` is not a package; loading by path keeps the tests independent of sys.path.
    """
    path = FIXTURES / relpath
    spec = importlib.util.spec_from_file_location(f"ckptfix_fixtures_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tf():
    """TensorFlow with 8 logical CPU devices (skips when TensorFlow is not installed)."""
    tf = pytest.importorskip("tensorflow")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
        )
    except RuntimeError:
        pass  # already initialised by an earlier fixture in this process
    return tf


@pytest.fixture(scope="session")
def tf_keras(tf):
    """tf_keras (Keras 2)."""
    return pytest.importorskip("tf_keras")


@pytest.fixture(scope="session")
def keras3(tf):
    """Keras 3 (with the TensorFlow backend)."""
    keras = pytest.importorskip("keras")
    assert keras.__version__.startswith("3"), keras.__version__
    return keras


@pytest.fixture(scope="session")
def realworld() -> Path:
    """The folder of real checkpoints from public projects (skips when absent)."""
    if not REALWORLD.is_dir():
        pytest.skip("../shared/realworld is absent (as in a user's clone)")
    return REALWORLD
