"""Which Keras a model belongs to, and TensorFlow imported in one place.

Only :mod:`ckptfix.train` imports this module, so ``import ckptfix`` stays TensorFlow-free.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from ..errors import require_tensorflow


def import_tensorflow() -> ModuleType:
    """TensorFlow, or a clear "install ckptfix[tf]" error."""
    require_tensorflow()
    import tensorflow

    return tensorflow


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
