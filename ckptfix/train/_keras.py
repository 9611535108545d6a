"""Which Keras a model belongs to, and TensorFlow imported in one place.

Only :mod:`ckptfix.train` imports this module, so ``import ckptfix`` stays TensorFlow-free.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import ModuleType
from typing import Any

from ..errors import require_tensorflow

#: TensorFlow's native start-up log on a machine without CUDA: not news for the user.
_NATIVE_NOISE = re.compile(
    r"absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|cuInit|cpu_feature_guard\.cc|"
    r"To enable the following instructions|oneDNN custom operations|rebuild TensorFlow with"
)


def import_tensorflow() -> ModuleType:
    """TensorFlow, or a clear "install ckptfix[tf]" error.

    When ``TF_CPP_MIN_LOG_LEVEL`` asks for a quiet TensorFlow (1 or more; the CLI sets 2),
    the native start-up lines that setting cannot silence (absl's pre-init banner, CUDA
    probing on a machine without GPUs, CPU feature notes) are dropped; anything else
    TensorFlow writes to stderr meanwhile is passed on.
    """
    global _probed
    require_tensorflow()
    with native_noise_filtered() if not _probed else nullcontext():
        import tensorflow

        if not _probed:
            tensorflow.config.list_physical_devices("GPU")  # CUDA is probed (and logs) here
            _probed = True
    return tensorflow


_probed = False  # whether TensorFlow has looked for GPUs in this process yet


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Capture file descriptor 2 (C++ writes there), then pass on all but known noise.

    Active only when ``TF_CPP_MIN_LOG_LEVEL`` is 1 or more, and once TensorFlow is imported
    only around code that may still start it (a model factory importing Keras).
    """
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() not in ("", "0")
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if not _NATIVE_NOISE.search(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def is_tf_keras_model(model: Any) -> bool:
    """True when ``model`` (or its class hierarchy) comes from tf_keras (Keras 2)."""
    for klass in type(model).__mro__:
        module = klass.__module__ or ""
        if module == "tf_keras" or module.startswith("tf_keras."):
            return True
    return False


def legacy_keras_requested() -> bool:
    """True when ``TF_USE_LEGACY_KERAS`` asks for tf_keras, as TensorFlow reads it."""
    return os.environ.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes")


def keras_for(model: Any | None = None) -> ModuleType:
    """The Keras module to use: the model's own, else tf_keras if requested, else Keras 3."""
    import_tensorflow()
    if model is not None:
        if is_tf_keras_model(model):
            import tf_keras

            return tf_keras
        import keras

        return keras
    if legacy_keras_requested():
        import tf_keras

        return tf_keras
    import keras

    return keras


def is_keras3(keras: ModuleType) -> bool:
    """True for Keras 3 (``import keras``), False for tf_keras."""
    return not keras.__name__.startswith("tf_keras")
