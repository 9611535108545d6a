"""The trainer: TemplateCheckpoint and train(), with real Keras on logical CPU devices.

Every checkpoint written here is loaded back by Keras's own loaders into a freshly built
template and compared with the trained model (arrays; predictions where BatchNorm statistics
are not per replica).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ckptfix.errors import OutputError, TrainingError, TrainingSetupError

pytestmark = pytest.mark.tf

N, FEATURES, BATCH = 64, 5, 16  # 4 batches per epoch


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, FEATURES)).astype("float32")
    y = (x @ rng.normal(size=(FEATURES, 1))).astype("float32")
    return x, y


def _template(keras, name: str = "template"):
    return keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ],
        name=name,
    )


def _wrapper(keras, template):
    """The template applied once inside another model, as multi_gpu_model did."""
    inp = keras.Input((FEATURES,))
    wrapper = keras.Model(inp, template(inp), name="parallel")
    wrapper.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.MeanSquaredError())
    return wrapper


def _same_arrays(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(p, q) for p, q in zip(wa, wb, strict=True))


# --- TemplateCheckpoint ----------------------------------------------------------------------


def test_template_checkpoint_saves_once_per_epoch_with_optimizer(keras3, tmp_path):
    from ckptfix.train import TemplateCheckpoint

    x, y = _data()
    template = _template(keras3)
    wrapper = _wrapper(keras3, template)
    ckpt = TemplateCheckpoint(template, str(tmp_path / "t-{epoch:02d}-{val_loss:.3f}.keras"))
    wrapper.fit(
        x, y, batch_size=BATCH, epochs=3, validation_split=0.25, callbacks=[ckpt], verbose=0
    )

    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and [n[:4] for n in names] == ["t-01", "t-02", "t-03"], names
    loaded = keras3.models.load_model(ckpt.saved[-1])
    assert _same_arrays(loaded, template)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), template.predict(x, verbose=0))
    # the optimizer state is the trained wrapper's (3 epochs x 3 batches), not a fresh one
    assert int(loaded.optimizer.iterations.numpy()) == 9
    assert int(wrapper.optimizer.iterations.numpy()) == 9
    for a, b in zip(loaded.optimizer.variables, wrapper.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not template.compiled  # borrowing the optimizer left the template as it was


@pytest.mark.parametrize("name", ["w-{epoch}.weights.h5", "w-{epoch}.h5"])
def test_template_checkpoint_weights_only_loads_into_template(keras3, tmp_path, name):
    from ckptfix.train import TemplateCheckpoint

    x, y = _data(1)
    template = _template(keras3)
    wrapper = _wrapper(keras3, template)
    ckpt = TemplateCheckpoint(template, str(tmp_path / name), save_weights_only=True)
    wrapper.fit(x, y, batch_size=BATCH, epochs=2, callbacks=[ckpt], verbose=0)

    assert [Path(p).name for p in ckpt.saved] == [name.format(epoch=1), name.format(epoch=2)]
    fresh = _template(keras3, name="fresh")
    fresh.load_weights(ckpt.saved[-1])
    assert _same_arrays(fresh, template)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), template.predict(x, verbose=0))


def test_template_checkpoint_best_only_follows_the_metric(keras3, tmp_path):
    from ckptfix.train import TemplateCheckpoint

    x, y = _data(2)
    template = _template(keras3)
    wrapper = _wrapper(keras3, template)
    best = TemplateCheckpoint(
        template,
        str(tmp_path / "b-{epoch}.weights.h5"),
        monitor="val_loss",
        save_best_only=True,
        save_weights_only=True,
    )
    # mode="max" on a loss saves exactly the epochs where the loss went UP: proves the
    # monitored value and the mode are honoured, not just "save on the first epoch"
    worst = TemplateCheckpoint(
        template,
        str(tmp_path / "m-{epoch}.weights.h5"),
        monitor="val_loss",
        mode="max",
        save_best_only=True,
        save_weights_only=True,
    )
    hist = wrapper.fit(
        x, y, batch_size=BATCH, epochs=6, validation_split=0.25, callbacks=[best, worst], verbose=0
    )
    losses = hist.history["val_loss"]
    improved = [i + 1 for i, v in enumerate(losses) if v < min(losses[:i], default=np.inf)]
    rose = [i + 1 for i, v in enumerate(losses) if v > max(losses[:i], default=-np.inf)]
    assert [Path(p).name for p in best.saved] == [f"b-{e}.weights.h5" for e in improved]
    assert [Path(p).name for p in worst.saved] == [f"m-{e}.weights.h5" for e in rose]
    assert best.best == min(losses)


def test_template_checkpoint_period_means_epochs(keras3, tmp_path):
    from ckptfix.train import TemplateCheckpoint

    x, y = _data(3)
    template = _template(keras3)
    wrapper = _wrapper(keras3, template)
    # the seed's positional call: (model, path, monitor, verbose, best, weights, mode, period)
    with pytest.deprecated_call():
        ckpt = TemplateCheckpoint(
            template,
            str(tmp_path / "p-{epoch}.weights.h5"),
            "val_loss",
            0,
            False,
            True,
            "auto",
            2,
        )
    batches = TemplateCheckpoint(
        template,
        str(tmp_path / "s-{epoch}-{batch}.weights.h5"),
        save_weights_only=True,
        save_freq=3,
    )
    wrapper.fit(x, y, batch_size=BATCH, epochs=4, callbacks=[ckpt, batches], verbose=0)
    assert [Path(p).name for p in ckpt.saved] == ["p-2.weights.h5", "p-4.weights.h5"]
    assert len(batches.saved) == 16 // 3  # every third of 16 batches


def test_template_checkpoint_rejects_wrong_suffix(keras3):
    from ckptfix.train import TemplateCheckpoint

    template = _template(keras3)
    with pytest.raises(OutputError) as info:
        TemplateCheckpoint(template, "ckpt/model-{epoch}.ckpt", save_weights_only=True)
    assert str(info.value) == (
        "expected a weights-only checkpoint path ending in .weights.h5 or .h5 or .hdf5; "
        "found 'ckpt/model-{epoch}.ckpt'; end it with .weights.h5 (or .h5 for the legacy "
        "Keras 2 layout)"
    )
    with pytest.raises(OutputError, match="full-model checkpoint path ending in .keras"):
        TemplateCheckpoint(template, "model.weights")


def test_template_checkpoint_tf_keras_full_h5_with_optimizer(tf_keras, tmp_path):
    from ckptfix.train import TemplateCheckpoint

    x, y = _data(4)
    template = _template(tf_keras)
    wrapper = _wrapper(tf_keras, template)
    ckpt = TemplateCheckpoint(template, str(tmp_path / "k2-{epoch:02d}.h5"))
    assert isinstance(ckpt, tf_keras.callbacks.Callback)
    wrapper.fit(x, y, batch_size=BATCH, epochs=2, callbacks=[ckpt], verbose=0)

    assert [Path(p).name for p in ckpt.saved] == ["k2-01.h5", "k2-02.h5"]
    loaded = tf_keras.models.load_model(ckpt.saved[-1])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), template.predict(x, verbose=0))
    assert int(loaded.optimizer.iterations.numpy()) == 8
    fresh = _template(tf_keras, name="fresh")
    fresh.load_weights(ckpt.saved[-1])  # positional legacy loading into the template
    assert _same_arrays(fresh, template)


# --- train() ---------------------------------------------------------------------------------


def _build_keras3():
    import keras

    model = _template(keras)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def test_train_two_replicas_checkpoint_loads_into_fresh_model(keras3, tmp_path):
    from ckptfix.train import train

    x, y = _data(5)
    seen = []
    result = train(
        _build_keras3,
        x,
        y,
        epochs=2,
        batch_size=BATCH,
        checkpoint_dir=tmp_path,
        devices=2,
        validation_data=_data(6),
        on_epoch_end=seen.append,
    )
    assert result.replicas == 2 and result.strategy == "MirroredStrategy"
    assert [Path(p).name for p in result.checkpoints] == ["epoch-0001.keras", "epoch-0002.keras"]
    assert [r.epoch for r in seen] == [1, 2] and seen[-1].checkpoint == result.checkpoints[-1]
    assert set(result.history) == {"loss", "val_loss"} and len(result.history["loss"]) == 2

    loaded = keras3.models.load_model(result.checkpoints[-1])  # no ckptfix involved
    assert _same_arrays(loaded, result.model)  # BatchNorm: compare arrays, not predictions
    fresh = _build_keras3()
    fresh.load_weights(result.checkpoints[-1])
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_train_resume_continues_optimizer_exactly(keras3, tmp_path):
    from ckptfix.train import train

    x, y = _data(7)
    first = train(
        _build_keras3,
        x,
        y,
        epochs=3,
        batch_size=BATCH,
        checkpoint_dir=tmp_path,
        devices=2,
        validation_data=_data(8),
        save_best_only=True,
    )
    opt_before = [v.numpy() for v in first.model.optimizer.variables]
    assert int(first.model.optimizer.iterations.numpy()) == 3 * N // BATCH

    again = train(
        _build_keras3,
        x,
        y,
        epochs=3,
        batch_size=BATCH,
        checkpoint_dir=tmp_path,
        devices=2,
        validation_data=_data(8),
        save_best_only=True,
    )
    assert again.initial_epoch == 3 and again.resumed_from is not None
    assert _same_arrays(again.model, first.model)
    for a, b in zip(again.model.optimizer.variables, opt_before, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)  # iterations and every slot
    assert again.checkpoints == first.checkpoints

    more = train(
        _build_keras3,
        x,
        y,
        epochs=4,
        batch_size=BATCH,
        checkpoint_dir=tmp_path,
        devices=2,
        validation_data=_data(8),
        save_best_only=True,
    )
    assert more.initial_epoch == 3
    assert int(more.model.optimizer.iterations.numpy()) == 4 * N // BATCH
    assert len(more.history["loss"]) == 4


def test_train_tf_keras_resume_and_h5_checkpoints(tf_keras, tmp_path):
    from ckptfix.train import train

    def build():
        model = _template(tf_keras)
        model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
        return model

    x, y = _data(9)
    first = train(build, x, y, epochs=1, batch_size=BATCH, checkpoint_dir=tmp_path, devices=2)
    assert first.keras.startswith("tf_keras") and first.replicas == 2
    assert [Path(p).name for p in first.checkpoints] == ["epoch-0001.h5"]
    second = train(build, x, y, epochs=2, batch_size=BATCH, checkpoint_dir=tmp_path, devices=2)
    assert second.initial_epoch == 1
    assert int(second.model.optimizer.iterations.numpy()) == 2 * N // BATCH
    loaded = tf_keras.models.load_model(second.checkpoints[-1])
    assert _same_arrays(loaded, second.model)
    assert int(loaded.optimizer.iterations.numpy()) == 2 * N // BATCH


def test_train_refuses_uncompiled_model_without_loss(keras3, tmp_path):
    from ckptfix.train import train

    x, y = _data()
    with pytest.raises(TrainingError) as info:
        train(
            lambda: _template(keras3),
            x,
            y,
            epochs=1,
            batch_size=BATCH,
            checkpoint_dir=tmp_path,
            devices=1,
        )
    assert isinstance(info.value, TrainingSetupError)  # refused before training: exit 2
    assert str(info.value) == (
        "expected a compiled model or a loss to compile it with; found the model uncompiled "
        "and no loss given; pass loss='mse' (for example)"
    )
    assert not any(tmp_path.iterdir())


# --- several workers -------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import keras
    from ckptfix.train import train

    def build():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        return model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1))).astype("float32")
    r = train(build, x, y, epochs=2, batch_size=16, checkpoint_dir=sys.argv[1],
              validation_data=(x[:32], y[:32]))
    weights = [w.tolist() for w in r.model.get_weights()]
    print("RESULT " + json.dumps(dict(r.summary(), weights=weights)), flush=True)
    """
)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_write_one_set_of_checkpoints_from_the_chief(keras3, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "ckpt"
    scratch = [tmp_path / "tmp0", tmp_path / "tmp1"]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        scratch[i].mkdir()
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            TMPDIR=str(scratch[i]),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    results = []
    try:
        for p in procs:
            text, _ = p.communicate(timeout=240)
            assert p.returncode == 0, text[-3000:]
            line = [ln for ln in text.splitlines() if ln.startswith("RESULT ")][-1]
            results.append(json.loads(line[len("RESULT ") :]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    chief, other = results
    assert chief["chief"] and not other["chief"]
    assert chief["strategy"] == "MultiWorkerMirroredStrategy" and chief["replicas"] == 2
    assert chief["custom_loop"]  # Keras 3 fit cannot run here; the strategy.run loop did
    assert [Path(p).name for p in chief["checkpoints"]] == ["epoch-0001.keras", "epoch-0002.keras"]
    assert other["checkpoints"] == []
    assert sorted(p.name for p in out.iterdir()) == [
        "ckptfix-resume",
        "epoch-0001.keras",
        "epoch-0002.keras",
    ]
    assert not any(scratch[1].iterdir())  # the other worker cleaned its temporary folders
    for a, b in zip(chief["weights"], other["weights"], strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))  # replicas stayed in sync
    loaded = keras3.models.load_model(out / "epoch-0002.keras")
    for a, b in zip(loaded.get_weights(), chief["weights"], strict=True):
        np.testing.assert_array_equal(a, np.array(b, dtype=a.dtype))
    assert len(chief["history"]["val_loss"]) == 2
