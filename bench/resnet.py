"""ResNet50 parallel checkpoints (the real tf_keras writer) and the TensorFlow round trip.

    python bench/resnet.py make [--out bench/out]
    python bench/resnet.py roundtrip SRC DST [--full]
    python bench/resnet.py keras3 SRC DST.keras

``make`` builds ``tf_keras.applications.ResNet50(weights=None)``, wraps it in the re-creation of
Keras 2.2.4's ``multi_gpu_model`` from ``fixtures/make_fixtures.py`` (2 replicas on logical
CPUs), trains one step with Adam (so the full model carries optimizer slots) and writes
``resnet50_parallel_weights.h5`` (``save_weights``) and ``resnet50_parallel_model.h5``
(``save``). ``roundtrip`` is what a user does without ckptfix: rebuild the template and the
parallel model, ``load_weights`` the parallel file, save the template. ``keras3`` is the
TensorFlow route to a Keras 3 file: tf_keras ``load_model`` of the parallel full model, rebuild
the template in Keras 3 (``keras.applications.ResNet50``), ``set_weights`` from tf_keras's
template, compile it like the source and ``save`` a ``.keras`` (the optimizer state is lost on
this route: Keras 3 cannot take tf_keras's optimizer variables).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
REPLICAS = 2
WEIGHTS_NAME = "resnet50_parallel_weights.h5"
MODEL_NAME = "resnet50_parallel_model.h5"
CONFIG_NAME = "resnet50_template.json"  # template.to_json(): the exact layout (--reference)


def resnet_paths(out: Path = OUT) -> tuple[Path, Path, Path]:
    """(weights-only, full-model, template JSON) ResNet50 files."""
    return out / WEIGHTS_NAME, out / MODEL_NAME, out / CONFIG_NAME


def _parallel(replicas: int = REPLICAS) -> tuple[Any, Any, Any]:
    """(tf_keras, template, parallel model), built like the user's training script."""
    sys.path.insert(0, str(HERE.parent / "fixtures"))
    import make_fixtures  # the one re-creation of multi_gpu_model

    tf = make_fixtures.setup_tf()
    tf.random.set_seed(0)  # setup_tf enables op determinism, which needs a seed
    import tf_keras

    template = tf_keras.applications.ResNet50(weights=None)
    parallel = make_fixtures.multi_gpu_model(template, replicas, tf, tf_keras)
    return tf_keras, template, parallel


def make(out: Path) -> tuple[Path, Path, Path]:
    """Write both ResNet50 parallel files and the template's JSON (skips when they exist)."""
    weights, model, config = paths = resnet_paths(out)
    if all(p.exists() for p in paths):
        return paths
    import numpy as np

    keras, template, parallel = _parallel()
    out.mkdir(parents=True, exist_ok=True)
    config.write_text(template.to_json())
    if weights.exists() and model.exists():
        return paths
    parallel.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((REPLICAS, 224, 224, 3), dtype=np.float32)
    y = np.eye(1000, dtype=np.float32)[rng.integers(0, 1000, REPLICAS)]
    parallel.fit(x, y, batch_size=REPLICAS, epochs=1, verbose=0)
    parallel.save_weights(str(weights))
    parallel.save(str(model))
    return paths


def roundtrip(src: Path, dst: Path, full: bool) -> None:
    """Rebuild template + parallel model, load the parallel file, save the template."""
    _, template, parallel = _parallel()
    parallel.load_weights(str(src))
    if full:
        template.save(str(dst))
    else:
        template.save_weights(str(dst))


def to_keras3(src: Path, dst: Path) -> None:
    """The TensorFlow route from a tf_keras parallel full model to a Keras 3 ``.keras``."""
    sys.path.insert(0, str(HERE.parent / "fixtures"))
    import make_fixtures

    make_fixtures.setup_tf()
    import keras
    import tf_keras

    parallel = tf_keras.models.load_model(str(src), compile=False)  # runs the Lambda bytecode
    template = next(layer for layer in parallel.layers if isinstance(layer, tf_keras.Model))
    model = keras.applications.ResNet50(weights=None)
    model.set_weights(template.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    model.save(str(dst))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", type=Path, default=OUT)
    r = sub.add_parser("roundtrip")
    r.add_argument("src", type=Path)
    r.add_argument("dst", type=Path)
    r.add_argument("--full", action="store_true")
    k = sub.add_parser("keras3")
    k.add_argument("src", type=Path)
    k.add_argument("dst", type=Path)
    args = ap.parse_args()
    if args.cmd == "make":
        for p in make(args.out):
            print(p, p.stat().st_size)
    elif args.cmd == "keras3":
        to_keras3(args.src, args.dst)
    else:
        roundtrip(args.src, args.dst, args.full)


if __name__ == "__main__":
    main()
