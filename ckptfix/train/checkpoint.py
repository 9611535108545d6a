"""``TemplateCheckpoint``: save the template while a wrapper (or parallel) model trains.

A drop-in for the ``ParallelModelCheckpoint`` recipe of the ``multi_gpu_model`` era (template
model first, then ``ModelCheckpoint``'s parameters in their Keras 2 order, ``period`` included)
that is correct on Keras 3 and on tf_keras: it saves per epoch by default, honours the monitored
metric for best-only, formats ``{epoch}`` and metrics into the path, writes ``.weights.h5``,
``.keras`` and legacy ``.h5`` files atomically (temporary file beside the target, then
:func:`os.replace`), and stores the optimizer state of the model being trained in full-model
files. Under ``MultiWorkerMirroredStrategy`` only the chief writes to ``filepath``; the other
workers save into a temporary folder that is removed at once, as TensorFlow prescribes.
"""

from __future__ import annotations

import copy
import math
import os
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import CkptfixWarning, OutputError, TrainingError
from ..output import TEMP_MARK, clean_stale_temps
from ._keras import is_keras3, keras_for

#: Attributes that make a model "compiled" for saving, per Keras (borrowed from the trainer).
_KERAS3_COMPILE_ATTRS = ("optimizer", "compiled", "_compile_config", "loss")
_TF_KERAS_COMPILE_ATTRS = (
    "optimizer",
    "compiled_loss",
    "compiled_metrics",
    "loss",
    "_is_compiled",
    "_compile_config",
)
_MAX_WORDS = ("acc", "auc", "precision", "recall", "fmeasure", "f1", "iou")
_MISSING = object()


def split_suffix(path: str | Path) -> tuple[str, str]:
    """Split a checkpoint name into (stem, suffix), keeping ``.weights.h5`` whole."""
    name = Path(path).name
    for suffix in (".weights.h5", ".keras", ".h5", ".hdf5"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def check_target(filepath: str | Path, save_weights_only: bool) -> str:
    """Validate the checkpoint path's suffix for the save mode; return the suffix.

    Both Kerases write these suffixes as one file (Keras 3 writes ``.h5`` weights in the
    legacy Keras 2 layout; tf_keras writes ``.keras`` archives too).

    Raises:
        OutputError: a suffix this Keras cannot write as one atomic file.
    """
    _, suffix = split_suffix(filepath)
    if save_weights_only:
        allowed = (".weights.h5", ".h5", ".hdf5")
        hint = "end it with .weights.h5 (or .h5 for the legacy Keras 2 layout)"
    else:
        allowed = (".keras", ".h5", ".hdf5")
        hint = "end it with .keras (or .h5 for a legacy full-model file)"
    if suffix not in allowed:
        what = "weights-only" if save_weights_only else "full-model"
        raise OutputError(
            f"expected a {what} checkpoint path ending in {' or '.join(allowed)}; "
            f"found {str(filepath)!r}; {hint}"
        )
    return suffix


def is_chief(model: Any) -> bool:
    """True unless a multi-worker strategy says this worker must not write checkpoints."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return True
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_checkpoint", True))


class TemplateCheckpoint:
    """Save ``model`` (the template) while another model that shares its layers trains.

    Pass it to the ``fit`` of the wrapper or parallel model. Instances are real callbacks of
    the template's Keras (Keras 3 or tf_keras, chosen from the template's class).

    Args:
        model: The template (single) model to save; its layers are trained through the wrapper.
        filepath: Target path; ``{epoch}`` (1-based), ``{batch}`` and logged metrics such as
            ``{val_loss:.3f}`` are formatted in. Suffix: ``.weights.h5`` or ``.h5`` with
            ``save_weights_only``, else ``.keras`` or ``.h5``.
        monitor: Metric for ``save_best_only`` (a key of the epoch logs).
        verbose: 1 writes one line per save or skip on stdout, like Keras's ModelCheckpoint.
        save_best_only: Save only when ``monitor`` improves on the best value seen.
        save_weights_only: Save weights only (no config, no optimizer).
        mode: ``"auto"``, ``"min"`` or ``"max"``; auto means max for accuracy-like names.
        period: Deprecated alias (Keras 2's 8th positional parameter): save every N epochs.
        save_freq: ``"epoch"`` or an integer number of batches, as in Keras.
        initial_value_threshold: Best value to beat before the first save (best-only).
        include_optimizer: Store the trained model's optimizer state in full-model files.

    Raises:
        OutputError: the path's suffix cannot be written for this Keras and mode.
        TrainingError: an invalid ``mode``, ``save_freq`` or ``period``.

    Example:
        >>> ckpt = TemplateCheckpoint(template, "ckpt/epoch-{epoch:03d}.keras")  # doctest: +SKIP
        >>> parallel.fit(x, y, epochs=10, callbacks=[ckpt])  # doctest: +SKIP
    """

    def __new__(cls, model: Any, *args: Any, **kwargs: Any) -> TemplateCheckpoint:
        if cls is TemplateCheckpoint:
            cls = _callback_class(keras_for(model).__name__)
        return super().__new__(cls)

    def __init__(
        self,
        model: Any,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        period: int | None = None,
        *,
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
        include_optimizer: bool = True,
    ) -> None:
        super().__init__()
        self.template = model
        self._keras = keras_for(model)
        self._keras3 = is_keras3(self._keras)
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.include_optimizer = include_optimizer
        self.suffix = check_target(self.filepath, save_weights_only)
        if period is not None:
            warnings.warn(
                "TemplateCheckpoint(period=N) is deprecated; it means save_freq='epoch' "
                "every N epochs, and is kept for ParallelModelCheckpoint code",
                DeprecationWarning,
                stacklevel=2,
            )
            if save_freq != "epoch":
                raise TrainingError(
                    "expected either period (epochs) or save_freq (batches); "
                    f"found period={period!r} and save_freq={save_freq!r}; pass only one"
                )
            if not isinstance(period, int) or period < 1:
                raise TrainingError(
                    f"expected period to be a positive number of epochs; found {period!r}; "
                    "pass period=1 (or leave it out)"
                )
        self.period = period or 1
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise TrainingError(
                "expected save_freq='epoch' or a positive number of batches; "
                f"found {save_freq!r}; pass save_freq='epoch'"
            )
        self.save_freq = save_freq
        if mode not in ("auto", "min", "max"):
            raise TrainingError(
                f"expected mode 'auto', 'min' or 'max'; found {mode!r}; pass one of those"
            )
        if mode == "auto":
            mode = "max" if any(w in monitor.lower() for w in _MAX_WORDS) else "min"
        self.mode = mode
        if initial_value_threshold is not None:
            self.best = float(initial_value_threshold)
        else:
            self.best = -math.inf if mode == "max" else math.inf
        #: Paths written by this callback (in order; only on the chief).
        self.saved: list[str] = []
        self._epoch = 0
        self._batches_seen = 0
        self._epochs_since_save = 0
        self._cleaned: set[Path] = set()
        self._warned_optimizer = False

    # --- Keras hooks ---------------------------------------------------------------------

    def set_model(self, model: Any) -> None:
        """Remember the model being trained (Keras calls this)."""
        super().set_model(model)  # type: ignore[misc]
        self.trained_model = model

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if isinstance(self.save_freq, int):
            self._batches_seen += 1
            if self._batches_seen % self.save_freq == 0:
                self.save_checkpoint(self._epoch, logs, batch=batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        if self.save_freq != "epoch":
            return
        self._epochs_since_save += 1
        if self._epochs_since_save >= self.period:
            self._epochs_since_save = 0
            self.save_checkpoint(epoch, logs)

    # --- saving ------------------------------------------------------------------------

    def save_checkpoint(
        self, epoch: int, logs: dict[str, Any] | None = None, batch: int | None = None
    ) -> str | None:
        """Save now (honouring best-only); return the path written, or None if skipped."""
        values = _plain_logs(logs)
        path = self._format_path(epoch, batch, values)
        if self.save_best_only:
            current = values.get(self.monitor)
            if current is None:
                warnings.warn(
                    f"expected the metric {self.monitor!r} in the epoch logs for best-only "
                    f"saving; found only {sorted(values)}; checkpoint skipped "
                    "(pass validation data or another monitor)",
                    CkptfixWarning,
                    stacklevel=2,
                )
                return None
            improved = current > self.best if self.mode == "max" else current < self.best
            if not improved:
                self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return None
            self._say(
                f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                f"{current:.5f}, saving the template to {path}"
            )
            self.best = current
        else:
            self._say(f"Epoch {epoch + 1}: saving the template to {path}")
        return self._write(Path(path))

    def _format_path(self, epoch: int, batch: int | None, logs: dict[str, Any]) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise OutputError(
                f"expected the checkpoint path's placeholders to be epoch, batch or a logged "
                f"metric ({', '.join(sorted(logs)) or 'none logged'}); found {{{exc.args[0]}}} "
                f"in {self.filepath!r}; fix the path"
            ) from None
        except (ValueError, IndexError) as exc:
            raise OutputError(
                f"expected a str.format path such as 'ckpt-{{epoch:03d}}.keras'; found "
                f"{self.filepath!r} ({exc}); fix the path"
            ) from None

    def _write(self, path: Path) -> str | None:
        if not is_chief(getattr(self, "trained_model", None) or self.template):
            # Non-chief workers save too (collectives may run), into a folder removed at once.
            scratch = Path(tempfile.mkdtemp(prefix="ckptfix-worker-"))
            try:
                self._save_to(scratch / path.name)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return None
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        if folder not in self._cleaned:
            clean_stale_temps(folder)
            self._cleaned.add(folder)
        stem, suffix = split_suffix(path)
        tmp = folder / f".{stem}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            self._save_to(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            _discard(tmp)
            raise OutputError(
                f"expected to write the checkpoint {path}; found an OS error "
                f"({exc.strerror or exc}); check permissions and space"
            ) from exc
        except BaseException:
            _discard(tmp)
            raise
        self.saved.append(str(path))
        return str(path)

    def _save_to(self, tmp: Path) -> None:
        _, suffix = split_suffix(tmp)
        if self.save_weights_only:
            if self._keras3 and suffix != ".weights.h5":
                _save_legacy_weights_keras3(self.template, tmp)
            else:
                self.template.save_weights(str(tmp))
            return
        with self._borrowed_compile_state() as include_optimizer:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*HDF5.*legacy.*")
                if suffix == ".keras" and self._keras3:
                    self.template.save(str(tmp))
                else:
                    self.template.save(str(tmp), include_optimizer=include_optimizer)

    @contextmanager
    def _borrowed_compile_state(self) -> Iterator[bool]:
        """Let the template carry the trained model's optimizer and compile config to disk.

        The optimizer's slots follow the trained model's trainable variables; they match the
        template's only when both list the same variables in the same order, else the file is
        written without optimizer state (and a warning says so).
        """
        trained = getattr(self, "trained_model", None)
        template = self.template
        if not self.include_optimizer or trained is None or trained is template:
            yield self.include_optimizer
            return
        if getattr(trained, "optimizer", None) is None:
            yield False
            return
        same = [id(v) for v in template.trainable_variables] == [
            id(v) for v in trained.trainable_variables
        ]
        if not same:
            if not self._warned_optimizer:
                self._warned_optimizer = True
                warnings.warn(
                    "expected the trained model's trainable variables to be the template's; "
                    "found them different (extra layers in the wrapper?); full-model "
                    "checkpoints are written without optimizer state",
                    CkptfixWarning,
                    stacklevel=4,
                )
            yield False
            return
        names = _KERAS3_COMPILE_ATTRS if self._keras3 else _TF_KERAS_COMPILE_ATTRS
        saved = {n: template.__dict__.get(n, _MISSING) for n in names}
        try:
            for n in names:
                if hasattr(trained, n):
                    setattr(template, n, _private_copy(getattr(trained, n)))
            yield True
        finally:
            for n, old in saved.items():
                if old is _MISSING:
                    template.__dict__.pop(n, None)
                else:
                    setattr(template, n, old)

    def _say(self, message: str) -> None:
        if self.verbose > 0 and is_chief(getattr(self, "trained_model", None) or self.template):
            sys.stdout.write(message + "\n")


@cache
def _callback_class(keras_name: str) -> type[TemplateCheckpoint]:
    """The TemplateCheckpoint class that is also a Callback of the given Keras."""
    if keras_name.startswith("tf_keras"):
        import tf_keras as keras
    else:
        import keras
    return type(
        "TemplateCheckpoint",
        (TemplateCheckpoint, keras.callbacks.Callback),
        {"__module__": __name__, "__doc__": TemplateCheckpoint.__doc__},
    )


def _private_copy(value: Any) -> Any:
    """A shallow copy of a compile-config holder (legacy .h5 saving pops keys from it)."""
    config = getattr(value, "config", None)
    if isinstance(config, dict) and type(value).__name__ == "SerializableDict":
        clone = copy.copy(value)
        clone.config = dict(config)
        return clone
    return value


def _plain_logs(logs: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def _save_legacy_weights_keras3(model: Any, path: Path) -> None:
    """Write Keras 2's legacy weights layout from a Keras 3 model (loads with load_weights)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:
        pass
