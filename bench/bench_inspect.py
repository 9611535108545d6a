"""Benchmark: ``ckptfix inspect`` on a ResNet50 parallel full-model file (~280 MB).

    python bench/bench_inspect.py [--runs 7] [--replicas 2]

Builds (once) ``bench/out/resnet50_parallel_model.h5``: tf_keras ``ResNet50(weights=None)``
(never downloaded) wrapped in a re-creation of Keras 2.2.4's ``multi_gpu_model`` on logical
CPUs, compiled with Adam, trained one step so the optimizer's slots are stored, then saved with
``model.save`` (Keras 2 HDF5 full model: the template's config, weights and Adam state). It then
times, as the median of ``--runs`` runs:

- ``library``: ``ckptfix.inspect_checkpoint(path)`` in this process (warm imports);
- ``cli``: ``ckptfix inspect PATH --json`` as a fresh process (interpreter start included);
- ``h5py open``: opening the file and reading its root attributes, the floor for any reader.

Inspection reads metadata only, so its time does not grow with the size of the tensors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
FILE = OUT / "resnet50_parallel_model.h5"


def get_slice(data: Any, i: int, parts: int) -> Any:
    """Keras 2.2.4's ``multi_gpu_model`` slice function (``K.slice`` was ``tf.slice``)."""
    import tensorflow as tf
    from tf_keras import backend as K

    shape = K.shape(data)
    batch_size = shape[:1]
    input_shape = shape[1:]
    step = batch_size // parts
    size = batch_size - step * i if i == parts - 1 else step
    size = K.concatenate([size, input_shape], axis=0)
    stride = K.concatenate([step, input_shape * 0], axis=0)
    start = stride * i
    return tf.slice(data, start, size)


def build(path: Path, replicas: int) -> None:
    """Write the ResNet50 parallel full-model checkpoint (tf_keras, logical CPUs)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas
    )
    import tf_keras as keras

    template = keras.applications.ResNet50(weights=None)
    all_outputs: list[list[Any]] = [[] for _ in template.outputs]
    for i in range(replicas):
        with tf.device(f"/cpu:{i}"), tf.name_scope(f"replica_{i}"):
            inputs = [
                keras.layers.Lambda(
                    get_slice,
                    output_shape=tuple(x.shape[1:]),
                    arguments={"i": i, "parts": replicas},
                )(x)
                for x in template.inputs
            ]
            outputs = template(inputs if len(inputs) > 1 else inputs[0])
            outputs = outputs if isinstance(outputs, list) else [outputs]
            for o, t in enumerate(outputs):
                all_outputs[o].append(t)
    with tf.device("/cpu:0"):
        merged = [
            keras.layers.concatenate(outs, axis=0, name=name)
            for name, outs in zip(template.output_names, all_outputs, strict=True)
        ]
    parallel = keras.Model(template.inputs, merged)
    parallel.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2 * replicas, 224, 224, 3)).astype("float32")
    y = np.eye(1000, dtype="float32")[rng.integers(0, 1000, 2 * replicas)]
    parallel.fit(x, y, batch_size=2 * replicas, epochs=1, verbose=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.h5")
    parallel.save(tmp)  # Keras 2 HDF5 full model (the .h5 suffix picks it)
    tmp.replace(path)


def median_seconds(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args(argv)
    if args.rebuild or not FILE.exists():
        # A separate process: TensorFlow must not be loaded where inspect is timed.
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import bench_inspect as b; b.build(b.FILE, {args.replicas})"
        )
        subprocess.run([sys.executable, "-c", code], check=True)

    import h5py

    import ckptfix

    def h5_open() -> None:
        with h5py.File(FILE, "r") as f:
            dict(f.attrs)

    report = ckptfix.inspect_checkpoint(FILE)
    lib = median_seconds(lambda: ckptfix.inspect_checkpoint(FILE), args.runs)
    cli_cmd = [sys.executable, "-m", "ckptfix", "inspect", str(FILE), "--json"]
    cli = median_seconds(lambda: subprocess.run(cli_cmd, check=True, capture_output=True), 3)
    floor = median_seconds(h5_open, args.runs)
    result = {
        "file": str(FILE),
        "file_bytes": FILE.stat().st_size,
        "template": report.template,
        "replicas": report.replicas,
        "tensors": report.tensors,
        "parameters": report.parameters,
        "optimizer_tensors": report.optimizer.tensors,
        "runs": args.runs,
        "library_median_s": round(lib, 4),
        "cli_process_median_s": round(cli, 4),
        "h5py_open_median_s": round(floor, 4),
        "tensorflow_loaded": "tensorflow" in sys.modules,
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
