"""Models built by the user's own code: ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY``.

``ckptfix train --model`` builds the model it trains this way, and ``ckptfix convert`` /
``inspect --model`` build the template for an exact layout. The factory imports whichever Keras
it uses (tf_keras or Keras 3); ckptfix imports none itself. This runs the user's own code, so
it lives here, outside the core that never runs code from any file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError, UsageError, require_tensorflow
from ._keras import native_noise_filtered

#: Modules whose absence means the ``[tf]`` extra (or tf-keras) is not installed.
_KERAS_MODULES = frozenset({"tensorflow", "keras", "tf_keras"})


def load_factory(spec: str) -> Callable[[], Any]:
    """Resolve ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY`` to the factory function.

    This imports (runs) the named Python module: it is the user's own code.

    Raises:
        UsageError: a malformed spec.
        InputError: a module that cannot be imported, or no such function in it.
        MissingDependencyError: the module needs TensorFlow or a Keras that is not installed.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"expected model=MODULE:FACTORY (e.g. mymodels:build); found {spec!r}; "
            "name the module and the function that builds the model"
        )
    try:
        with native_noise_filtered():  # the module may import Keras, which starts TensorFlow
            if module_name.endswith(".py"):
                module = _import_file(Path(module_name))
            else:
                if os.getcwd() not in sys.path and "" not in sys.path:
                    sys.path.insert(0, os.getcwd())
                module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _KERAS_MODULES:
            raise missing_keras(exc.name or "tensorflow") from None
        raise _not_importable(module_name, exc) from None
    except Exception as exc:  # the user's module: a syntax error, a failing import-time call
        raise _not_importable(module_name, exc) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InputError(
            f"expected a function {attr!r} in {module_name}; found "
            f"{type(factory).__name__ if factory is not None else 'nothing'}; "
            "name the function that returns the model"
        )
    return factory


def build_model(spec: str) -> Any:
    """Call the factory named by ``spec`` and check that it returns a Keras model.

    Raises:
        UsageError, InputError, MissingDependencyError: as :func:`load_factory`; InputError
            also when the factory fails or returns something that is not a model.
    """
    require_tensorflow()  # the [tf] extra: say so plainly before running the user's code
    factory = load_factory(spec)
    try:
        with native_noise_filtered():
            model = factory()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _KERAS_MODULES:
            raise missing_keras(exc.name or "tensorflow") from None
        raise _factory_failed(spec, exc) from None
    except Exception as exc:  # the user's code: any failure is reported in one line
        raise _factory_failed(spec, exc) from None
    if not hasattr(model, "layers"):
        raise InputError(
            f"expected the model factory {spec} to return a Keras model; found "
            f"{type(model).__name__}; return the model from the function"
        )
    return model


def missing_keras(name: str) -> MissingDependencyError:
    """The error for a factory that needs TensorFlow or a Keras that is not installed."""
    extra = " (and pip install tf-keras for tf_keras models)" if name != "tf_keras" else ""
    how = "pip install tf-keras" if name == "tf_keras" else "pip install 'ckptfix[tf]'"
    return MissingDependencyError(
        f"expected TensorFlow and the Keras the model factory imports; found no module "
        f"{name!r}; install it with: {how}{extra}"
    )


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(str(path))
    loaded = importlib.util.spec_from_file_location(path.stem, path)
    if loaded is None or loaded.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(loaded)
    sys.modules[path.stem] = module
    loaded.loader.exec_module(module)
    return module


def _not_importable(module_name: str, exc: BaseException) -> InputError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return InputError(
        f"expected an importable module {module_name!r}; found {type(exc).__name__}"
        f"{': ' + first if first else ''}; check the name, PYTHONPATH and the module's code"
    )


def _factory_failed(spec: str, exc: BaseException) -> InputError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return InputError(
        f"expected the model factory {spec} to build the model; found it raised "
        f"{type(exc).__name__}"
        f"{': ' + first if first else ''}; fix the factory"
    )


__all__ = ["build_model", "load_factory", "missing_keras"]
