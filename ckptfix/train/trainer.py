"""``train()``: data-parallel training whose checkpoints load straight into the single model.

One model is built inside a ``tf.distribute`` strategy (no wrapper model exists, so every
checkpoint is the single model's), trained with ``fit`` (or, for Keras 3 across several
workers, where ``fit`` fails — keras-team/keras#20585 — with a custom ``strategy.run`` loop),
and saved by :class:`~ckptfix.train.TemplateCheckpoint`. A resume state (weights plus optimizer
state, epoch, best value) is kept in ``checkpoint_dir/ckptfix-resume`` so a rerun continues.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputError, TrainingDataError, TrainingError, TrainingSetupError
from ._keras import import_tensorflow, is_keras3, keras_for
from .checkpoint import TemplateCheckpoint, is_chief
from .strategy import is_multi_worker, make_strategy, strategy_name

RESUME_FOLDER = "ckptfix-resume"
STATE_FILE = "state.json"
CHECKPOINT_STEM = "epoch-{epoch:04d}"


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch, as passed to ``train(on_epoch_end=...)``."""

    epoch: int  # 1-based
    epochs: int
    logs: dict[str, float]
    checkpoint: str | None  # path written at this epoch (chief only), if any


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did: the trained model, replicas, checkpoints, history.

    ``checkpoints`` lists every checkpoint of the run (earlier, resumed sessions included);
    ``written`` only those this call wrote. ``complete`` is True when the resume state
    already held ``epochs`` epochs, so nothing was trained.
    """

    model: Any
    replicas: int
    strategy: str
    keras: str
    checkpoints: tuple[str, ...]
    history: dict[str, list[float]]
    initial_epoch: int
    epochs: int
    resumed_from: str | None
    chief: bool = True
    custom_loop: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()  # an earlier run's files replaced with force=True

    @property
    def complete(self) -> bool:
        """True when the run had already reached ``epochs`` (nothing was trained)."""
        return self.initial_epoch >= self.epochs

    def summary(self) -> dict[str, Any]:
        """Everything but the model, JSON-ready."""
        return {
            "replicas": self.replicas,
            "strategy": self.strategy,
            "keras": self.keras,
            "checkpoints": list(self.checkpoints),
            "written": list(self.written),
            "removed": list(self.removed),
            "complete": self.complete,
            "history": self.history,
            "initial_epoch": self.initial_epoch,
            "epochs": self.epochs,
            "resumed_from": self.resumed_from,
            "chief": self.chief,
            "custom_loop": self.custom_loop,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TrainState:
    """Where a run in ``checkpoint_dir`` stands (its resume state), read without TensorFlow."""

    epoch: int  # epochs finished
    checkpoints: tuple[str, ...]
    folder: str  # the resume state's folder


def train(
    build_model: Callable[[], Any],
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int,
    checkpoint_dir: str | os.PathLike[str],
    devices: int | None = None,
    validation_data: tuple[Any, Any] | None = None,
    monitor: str = "val_loss",
    mode: str = "auto",
    save_best_only: bool = False,
    save_weights_only: bool = False,
    resume: bool = True,
    force: bool = False,
    loss: Any = None,
    optimizer: Any = "adam",
    metrics: Sequence[Any] | None = None,
    shuffle: bool = True,
    strategy: Any = None,
    on_epoch_end: Callable[[EpochReport], None] | None = None,
) -> TrainResult:
    """Train ``build_model()`` data-parallel and save the single model's checkpoints.

    Args:
        build_model: Returns a Keras 3 or tf_keras model; called inside the strategy scope. It
            may compile the model; if it does not, ``loss``/``optimizer``/``metrics`` are used.
        x: Training inputs (numpy arrays, as for ``fit``).
        y: Training targets.
        epochs: Total epochs; with resume, epochs already done count (4 after 3 runs one).
        batch_size: The global batch, split across replicas.
        checkpoint_dir: Folder for ``epoch-NNNN.keras`` (or ``.weights.h5``; tf_keras full
            models: ``.h5``) and for the resume state.
        devices: Replicas: ``None`` = every GPU; ``N`` = N GPUs, else N logical CPU devices;
            ignored when TF_CONFIG describes several workers (MultiWorkerMirroredStrategy).
        validation_data: ``(x_val, y_val)``; gives ``val_loss`` to monitor.
        monitor: Metric for ``save_best_only``.
        mode: ``"auto"``, ``"min"`` or ``"max"`` for ``monitor``.
        save_best_only: Write a checkpoint only when ``monitor`` improves.
        save_weights_only: Write weights-only files instead of full models.
        resume: Continue from ``checkpoint_dir``'s resume state when there is one. A run that
            already reached ``epochs`` trains nothing (``result.complete``).
        force: Replace an earlier run's checkpoints and resume state in ``checkpoint_dir``
            (``epoch-NNNN.*`` files and ``ckptfix-resume/``), which are otherwise refused when
            they cannot be continued (``resume=False``, or no resume state beside them).
        loss: Loss for an uncompiled model.
        optimizer: Optimizer for an uncompiled model.
        metrics: Metrics for an uncompiled model.
        shuffle: Shuffle the training data each epoch.
        strategy: A ``tf.distribute`` strategy to use instead of choosing one.
        on_epoch_end: Called (on every worker) after each epoch with an :class:`EpochReport`.

    Returns:
        A :class:`TrainResult`.

    Raises:
        TrainingSetupError: refused before training: an uncompiled model and no loss,
            best-only saving with nothing to monitor, a batch larger than the data.
        TrainingDataError: ``x``/``y`` (or the validation data) are not matching arrays.
        TrainingError: no devices, a damaged resume state.
        OutputError: ``checkpoint_dir`` holds another run (without ``force``), or a
            checkpoint cannot be written.

    Example:
        >>> result = train(build, x, y, epochs=5, batch_size=64, checkpoint_dir="ckpt",
        ...                devices=2)  # doctest: +SKIP
        >>> keras.models.load_model(result.checkpoints[-1])  # doctest: +SKIP
    """
    tf = import_tensorflow()
    if epochs < 1 or batch_size < 1:
        raise TrainingSetupError(
            f"expected epochs and batch_size of at least 1; found epochs={epochs}, "
            f"batch_size={batch_size}; pass positive numbers"
        )
    n = _check_data(x, y, "x", "y")
    if validation_data is not None:
        _check_data(validation_data[0], validation_data[1], "val_x", "val_y")
    if n < batch_size:
        raise TrainingSetupError(
            f"expected at least one full batch of {batch_size} samples; found {n}; "
            "pass a smaller batch_size="
        )
    if save_best_only and monitor.startswith("val_") and validation_data is None:
        raise TrainingSetupError(
            f"expected validation data to monitor {monitor!r} for best-only saving; found "
            "none; pass validation_data=(x_val, y_val), or monitor='loss'"
        )
    root = Path(checkpoint_dir)
    removed = _claim_folder(root, resume, force)
    strategy = strategy if strategy is not None else make_strategy(devices)
    multi_worker = is_multi_worker(strategy)
    replicas = int(strategy.num_replicas_in_sync)

    with strategy.scope():
        model = build_model()
        keras = keras_for(model)
        if not _is_compiled(model):
            if loss is None:
                raise TrainingSetupError(
                    "expected a compiled model or a loss to compile it with; found the model "
                    "uncompiled and no loss given; pass loss='mse' (for example)"
                )
            model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics or []))
        if not model.built:
            model(x[:1])
        _build_optimizer(model)

    chief = is_chief(model)
    keras3 = is_keras3(keras)
    state = _read_state(root, keras3) if resume else None
    initial_epoch = 0
    previous: list[str] = []
    history: dict[str, list[float]] = {}
    resumed_from = None
    if state is not None:
        with strategy.scope():
            _restore_state(model, root / RESUME_FOLDER / state["file"], keras3)
        initial_epoch = int(state["epoch"])
        previous = list(state.get("checkpoints", []))
        history = {k: list(v) for k, v in state.get("history", {}).items()}
        resumed_from = str(root / RESUME_FOLDER / state["file"])

    if save_weights_only:
        suffix = ".weights.h5"
    else:
        suffix = ".keras" if keras3 else ".h5"
    ckpt = TemplateCheckpoint(
        model,
        str(root / f"{CHECKPOINT_STEM}{suffix}"),
        monitor=monitor,
        save_best_only=save_best_only,
        save_weights_only=save_weights_only,
        mode=mode,
    )
    if state is not None and state.get("best") is not None and state.get("monitor") == monitor:
        ckpt.best = float(state["best"])

    def after_epoch(epoch: int, logs: dict[str, Any] | None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items()}
        for k, v in values.items():
            history.setdefault(k, []).append(v)
        written = ckpt.saved[-1] if ckpt.saved and ckpt.saved[-1] not in done else None
        if written:
            done.add(written)
        _write_state(
            model,
            root,
            keras3,
            {
                "epoch": epoch + 1,
                "monitor": monitor,
                "best": ckpt.best if abs(ckpt.best) != float("inf") else None,
                "checkpoints": previous + ckpt.saved,
                "history": history,
                "keras": keras.__name__,
            },
            chief,
        )
        if on_epoch_end is not None:
            on_epoch_end(EpochReport(epoch + 1, epochs, values, written))

    def check_monitor(epoch: int, logs: dict[str, Any] | None) -> None:
        if save_best_only and monitor not in (logs or {}):
            raise TrainingSetupError(
                f"expected the metric {monitor!r} in the epoch logs for best-only saving; found "
                f"{', '.join(sorted(logs or {})) or 'none'}; pass monitor= one of those"
            )

    done: set[str] = set()
    custom_loop = multi_worker and keras3
    if initial_epoch < epochs:
        checker = keras.callbacks.LambdaCallback(on_epoch_end=check_monitor)
        saver = keras.callbacks.LambdaCallback(on_epoch_end=after_epoch)
        if custom_loop:
            _fit_custom_loop(
                tf,
                model,
                strategy,
                x,
                y,
                validation_data,
                batch_size,
                epochs,
                initial_epoch,
                shuffle,
                [checker, ckpt, saver],
            )
        else:
            train_data, val = _fit_inputs(
                tf, x, y, validation_data, batch_size, multi_worker, shuffle
            )
            model.fit(
                train_data,
                y if not multi_worker else None,
                batch_size=batch_size if not multi_worker else None,
                epochs=epochs,
                initial_epoch=initial_epoch,
                validation_data=val,
                callbacks=[checker, ckpt, saver],
                shuffle=shuffle,
                verbose=0,
            )
    notes: list[str] = []
    if custom_loop:
        notes.append(
            "Keras 3 fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); "
            "trained with a strategy.run loop (loss only, no compiled metrics)"
        )
    return TrainResult(
        model=model,
        replicas=replicas,
        strategy=strategy_name(strategy),
        keras=f"{keras.__name__} {keras.__version__}",
        checkpoints=tuple(previous + ckpt.saved) if chief else (),
        history=history,
        initial_epoch=initial_epoch,
        epochs=epochs,
        resumed_from=resumed_from,
        chief=chief,
        custom_loop=custom_loop,
        notes=tuple(notes),
        written=tuple(ckpt.saved) if chief else (),
        removed=removed,
    )


# --- model and data ------------------------------------------------------------------------


def _check_data(x: Any, y: Any, xname: str, yname: str) -> int:
    try:
        nx, ny = len(x), len(y)
    except TypeError:
        raise TrainingDataError(
            f"expected arrays for {xname} and {yname}; found {type(x).__name__} and "
            f"{type(y).__name__}; pass numpy arrays"
        ) from None
    if nx != ny or nx == 0:
        raise TrainingDataError(
            f"expected {xname} and {yname} with the same, non-zero number of samples; found "
            f"{nx} and {ny}; pass matching arrays"
        )
    return int(nx)


def _is_compiled(model: Any) -> bool:
    return bool(getattr(model, "compiled", False) or getattr(model, "_is_compiled", False))


def _build_optimizer(model: Any) -> None:
    """Create the optimizer's slots now, so a resume state can be restored into them."""
    opt = model.optimizer
    if hasattr(opt, "build") and not (getattr(opt, "built", False) or getattr(opt, "_built", 0)):
        opt.build(model.trainable_variables)


def _fit_inputs(
    tf: Any,
    x: Any,
    y: Any,
    validation_data: tuple[Any, Any] | None,
    batch_size: int,
    multi_worker: bool,
    shuffle: bool,
) -> tuple[Any, Any]:
    if not multi_worker:
        return x, validation_data
    # Several workers: datasets of global batches, sharded by element on every worker.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=True).with_options(options)
    val = None
    if validation_data is not None:
        val = (
            tf.data.Dataset.from_tensor_slices(tuple(validation_data))
            .batch(batch_size)
            .with_options(options)
        )
    return data, val


def _fit_custom_loop(
    tf: Any,
    model: Any,
    strategy: Any,
    x: Any,
    y: Any,
    validation_data: tuple[Any, Any] | None,
    batch_size: int,
    epochs: int,
    initial_epoch: int,
    shuffle: bool,
    callbacks: list[Any],
) -> None:
    """Train a Keras 3 model with ``strategy.run`` (works where Keras 3 ``fit`` does not)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:  # same seed on every worker, so the shards partition each epoch
        data = data.shuffle(len(x), seed=0, reshuffle_each_iteration=True)
    data = data.batch(batch_size, drop_remainder=True).with_options(options)
    dist = strategy.experimental_distribute_dataset(data)
    val_dist = None
    if validation_data is not None and len(validation_data[0]) >= batch_size:
        val = tf.data.Dataset.from_tensor_slices(tuple(validation_data))
        val_dist = strategy.experimental_distribute_dataset(
            val.batch(batch_size, drop_remainder=True).with_options(options)
        )
    replicas = strategy.num_replicas_in_sync

    def replica_step(xb: Any, yb: Any) -> Any:
        with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            loss = model.compute_loss(x=xb, y=yb, y_pred=pred, training=True)
            scaled = loss / replicas  # gradients are summed across replicas
        grads = tape.gradient(scaled, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    def replica_eval(xb: Any, yb: Any) -> Any:
        pred = model(xb, training=False)
        return model.compute_loss(x=xb, y=yb, y_pred=pred, training=False)

    @tf.function
    def train_step(xb: Any, yb: Any) -> Any:
        per_replica = strategy.run(replica_step, args=(xb, yb))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    @tf.function
    def eval_step(xb: Any, yb: Any) -> Any:
        per_replica = strategy.run(replica_eval, args=(xb, yb))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    for cb in callbacks:
        cb.set_model(model)
        cb.on_train_begin({})
    for epoch in range(initial_epoch, epochs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        losses = []
        for step, (xb, yb) in enumerate(dist):
            losses.append(float(train_step(xb, yb)))
            for cb in callbacks:
                cb.on_train_batch_end(step, {"loss": losses[-1]})
        logs = {"loss": sum(losses) / len(losses)}
        if val_dist is not None:
            vals = [float(eval_step(xb, yb)) for xb, yb in val_dist]
            logs["val_loss"] = sum(vals) / len(vals)
        for cb in callbacks:
            cb.on_epoch_end(epoch, dict(logs))
    for cb in callbacks:
        cb.on_train_end({})


# --- the checkpoint folder and the resume state -------------------------------------------

_CHECKPOINT_NAME = re.compile(r"epoch-\d{4,}(\.weights\.h5|\.keras|\.h5)$")


def checkpoint_files(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """The checkpoints :func:`train` writes (``epoch-NNNN.*``) found in ``checkpoint_dir``."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if _CHECKPOINT_NAME.fullmatch(p.name))


def training_state(checkpoint_dir: str | os.PathLike[str]) -> TrainState | None:
    """The resume state of the run in ``checkpoint_dir`` (None when there is none readable)."""
    folder = Path(checkpoint_dir) / RESUME_FOLDER
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        return TrainState(
            int(state["epoch"]), tuple(str(c) for c in state.get("checkpoints", [])), str(folder)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _claim_folder(root: Path, resume: bool, force: bool) -> tuple[str, ...]:
    """Refuse (or, with ``force``, clear) an earlier run that this one cannot continue."""
    state = root / RESUME_FOLDER
    if resume and (state / STATE_FILE).is_file():
        return ()  # continued: its checkpoints are this run's
    old = checkpoint_files(root)
    if not old and not state.exists():
        return ()
    if not force:
        what = (
            f"{len(old)} checkpoint(s) of an earlier run ({_span(old)})"
            if old
            else "the resume state of an earlier run"
        )
        why = "resume=False" if not resume else "no resume state to continue them"
        raise OutputError(
            f"expected checkpoint_dir= without another run ({why}); found {what} in {root}; "
            "pass force=True to replace them, or another checkpoint_dir="
        )
    for p in old:
        p.unlink(missing_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    return tuple(str(p) for p in old)


def _span(paths: Sequence[Path]) -> str:
    return paths[0].name if len(paths) == 1 else f"{paths[0].name} … {paths[-1].name}"


# --- resume state --------------------------------------------------------------------------


def _state_file_name(epoch: int, keras3: bool) -> str:
    return f"state-{epoch:04d}.weights.h5" if keras3 else f"state-{epoch:04d}"


def _read_state(root: Path, keras3: bool) -> dict[str, Any] | None:
    path = root / RESUME_FOLDER / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        file = state["file"]
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as exc:
        raise TrainingError(
            f"expected a readable resume state in {path}; found it damaged ({exc}); "
            "remove that folder to start afresh, or pass resume=False with force=True"
        ) from None
    kind = state.get("keras", "")
    if kind.startswith("tf_keras") == keras3:
        raise TrainingError(
            f"expected a resume state written by the same Keras; found one from {kind} in "
            f"{path.parent}; use that Keras, another checkpoint_dir=, or resume=False with "
            "force=True"
        )
    if not (path.parent / (file if keras3 else file + ".index")).exists():
        raise TrainingError(
            f"expected the resume weights {file} beside {path}; found them missing; remove "
            "that folder to start afresh, or pass resume=False with force=True"
        )
    return dict(state)


def _restore_state(model: Any, path: Path, keras3: bool) -> None:
    if keras3:
        model.load_weights(str(path))  # layers and optimizer (iterations, slots)
        return
    tf = import_tensorflow()
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).read(
        str(path)
    ).assert_existing_objects_matched()


def _write_state(model: Any, root: Path, keras3: bool, state: dict[str, Any], chief: bool) -> None:
    """Save weights + optimizer state, then point state.json at them (atomically)."""
    folder = root / RESUME_FOLDER
    name = _state_file_name(int(state["epoch"]), keras3)
    if not chief:
        scratch = Path(tempfile.mkdtemp(prefix="ckptfix-worker-"))
        try:
            _save_state_files(model, scratch / name, keras3)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    _save_state_files(model, folder / name, keras3)
    state = dict(state, file=name)
    tmp = folder / f".{STATE_FILE}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, folder / STATE_FILE)
    stem = name.split(".", 1)[0]
    for old in folder.glob("state-*"):
        if old.name.split(".", 1)[0] != stem:
            try:
                old.unlink()
            except OSError:
                pass


def _save_state_files(model: Any, path: Path, keras3: bool) -> None:
    if keras3:
        tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}.weights.h5")
        model.save_weights(str(tmp))
        os.replace(tmp, path)
        return
    tf = import_tensorflow()
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(path))


# --- the CLI's helpers -----------------------------------------------------------------------


def load_arrays(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``x``, ``y`` and optional ``val_x``, ``val_y`` from an ``.npz`` (no pickles).

    Raises:
        TrainingDataError: the file is missing, is not an ``.npz``, or lacks ``x``/``y``.
    """
    import numpy as np

    p = Path(path)
    expected = "expected an .npz of arrays x, y (val_x, val_y optional)"
    how = "save them with numpy.savez(path, x=..., y=...)"
    if not p.is_file():
        what = "a folder" if p.is_dir() else "nothing"
        raise TrainingDataError(f"{expected}; found {what} at {p}; check the path")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise TrainingDataError(
            f"{expected}; found {p} cannot be read ({exc.strerror or exc}); check permissions"
        ) from None
    if not head.startswith(b"PK"):
        kind = "a single .npy array" if head.startswith(b"\x93NUMPY") else "another kind of file"
        raise TrainingDataError(f"{expected}; found {kind} ({p.name}, starts with {head!r}); {how}")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainingDataError(f"{expected}; found {p.name} unreadable ({first}); {how}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing or (("val_x" in arrays) != ("val_y" in arrays)):
        raise TrainingDataError(
            f"expected arrays x, y (and val_x with val_y) in {p.name}; found "
            f"{', '.join(sorted(arrays)) or 'none'}; {how}"
        )
    return arrays
