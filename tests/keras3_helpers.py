"""Test helpers for the Keras 2 -> Keras 3 translation (issue 15).

``write_keras_archive`` is a small stand-in for the real ``.keras`` writer (k3write's): it reads
the Keras 2 weights with h5py through ckptfix's own reader, applies the weight map of a
:class:`~ckptfix.keras3.Keras3Model` and writes ``config.json``, ``metadata.json`` and
``model.weights.h5`` into a zip, so that a fresh Keras 3 process can load it.

``KERAS3_CHECK`` is the script a fresh Keras 3 process runs on a batch of such archives: it
loads each in safe mode, compares its own ``save_weights`` tree with the map, compares
predictions with tf_keras's, and prints one JSON line per case.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ckptfix.convert import read_checkpoint
from ckptfix.keras3 import Keras3Model, apply_transform, source_weights, translate_model


def translate_file(path: Path) -> tuple[Keras3Model, Any]:
    """Read a Keras 2 full-model file with ckptfix and translate its model config."""
    ck = read_checkpoint(path)
    assert ck.model_config is not None
    k3 = translate_model(
        dict(ck.model_config), keras_version=ck.keras_version, backend=ck.backend, source=ck.subject
    )
    return k3, ck


def weight_values(k3: Keras3Model, ck: Any) -> dict[str, np.ndarray]:
    """{Keras 3 dataset path: value} from the Keras 2 file, through the map."""
    out = {}
    handles: dict[str, h5py.File] = {}
    try:
        for move in k3.weights:
            arrays = []
            for w in source_weights(ck.subject, move):
                loc = w.tensor.location
                f = handles.setdefault(loc.file, h5py.File(loc.file, "r"))
                arrays.append(f[loc.path][()])
            out[move.path] = apply_transform(move, arrays)
    finally:
        for f in handles.values():
            f.close()
    return out


def write_keras_archive(k3: Keras3Model, ck: Any, dst: Path) -> None:
    """A ``.keras`` zip from the map (model only, no optimizer or compile config)."""
    values = weight_values(k3, ck)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for g in k3.groups:
            grp = f.require_group(g)
            if g in k3.group_names:
                grp.attrs["name"] = k3.group_names[g]
        for path, value in values.items():
            f.create_dataset(path, data=value)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("config.json", json.dumps(k3.config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": ""}))
        zf.writestr("model.weights.h5", buf.getvalue())


KERAS3_CHECK = r"""
import json, os, sys, zipfile, io, importlib.util
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, h5py
import keras

cases = json.loads(sys.stdin.read())
zoo = None
if cases and cases[0].get("zoo"):
    spec = importlib.util.spec_from_file_location("zoo", cases[0]["zoo"])
    zoo = importlib.util.module_from_spec(spec); spec.loader.exec_module(zoo)
for case in cases:
    res = {"name": case["name"]}
    try:
        custom = zoo.custom_objects(keras) if zoo is not None else {}
        model = keras.saving.load_model(case["archive"], safe_mode=True, custom_objects=custom)
        own = case["archive"] + ".own.weights.h5"
        model.save_weights(own)
        tree = {}
        groups = []
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                tree[name] = [list(obj.shape), str(obj.dtype)]
            else:
                groups.append(name)
        with h5py.File(own, "r") as f:
            f.visititems(visit)
        res["tree"] = tree
        res["groups"] = sorted(groups)
        with zipfile.ZipFile(case["archive"]) as zf:
            stored = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
            by_value = {}
            paths = []
            stored.visititems(lambda n, o: paths.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in paths:
                by_value.setdefault(stored[n][()].tobytes(), []).append(n)
        res["trainable"] = []
        for v in model.trainable_variables:
            res["trainable"].append(by_value.get(np.asarray(v.numpy()).tobytes(), ["?"]))
        res["output_names"] = list(getattr(model, "output_names", None) or [])
        data = np.load(case["inputs"])
        xs = [data[f"arr_{i}"] for i in range(len(data.files))]
        y = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        ys = y if isinstance(y, (list, tuple)) else [y]
        ref = np.load(case["expected"])
        want = [ref[f"arr_{i}"] for i in range(len(ref.files))]
        res["max_abs"] = [float(np.max(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))))
                          for a, b in zip(ys, want)]
        res["close"] = all(
            np.allclose(np.asarray(a, "float64"), np.asarray(b, "float64"),
                        rtol=case["rtol"], atol=case["atol"]) for a, b in zip(ys, want)
        ) and len(ys) == len(want)
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    print("RESULT " + json.dumps(res), flush=True)
"""


def run_keras3(cases: list[dict[str, Any]], backend: str = "tensorflow") -> dict[str, Any]:
    """Run :data:`KERAS3_CHECK` in a fresh Keras 3 process; {case name: result}."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", KERAS3_CHECK],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            out[r["name"]] = r
    if not out:
        raise AssertionError(f"Keras 3 process failed: {proc.stderr[-3000:]}")
    return out
