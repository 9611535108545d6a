"""Train a small model on two replicas and load its checkpoint with plain Keras.

Run: ``python examples/train_two_devices.py`` (uses 2 GPUs, or 2 logical CPU devices). Exits 0
when the last checkpoint, loaded by Keras alone, holds exactly the trained model's arrays.
"""

from __future__ import annotations

import tempfile

import numpy as np

from ckptfix.train import train


def build():
    import keras

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def main() -> int:
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    y = x @ rng.normal(size=(8, 1)).astype("float32")
    with tempfile.TemporaryDirectory() as folder:
        result = train(
            build,
            x,
            y,
            epochs=3,
            batch_size=64,
            checkpoint_dir=folder,
            devices=2,
            validation_data=(x[:128], y[:128]),
        )
        print(f"{result.replicas} replicas; wrote {len(result.checkpoints)} checkpoints")  # noqa: T201 (an example script reports)
        model = keras.models.load_model(result.checkpoints[-1])  # no ckptfix needed
        same = all(
            np.array_equal(a, b)
            for a, b in zip(model.get_weights(), result.model.get_weights(), strict=True)
        )
        print("checkpoint arrays equal to the trained model:", same)  # noqa: T201 (an example script reports)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
