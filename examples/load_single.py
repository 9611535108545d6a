"""Load converted files with Keras itself and check them against the trained template.

Usage: python examples/load_single.py FIXTURE_DIR FULL_MODEL.h5 WEIGHTS.h5 [WEIGHTS.h5 ...]

For each converted file, every array Keras loaded must be bit-identical to the trained
template's own file (FIXTURE_DIR/template_weights.h5, read with h5py): ckptfix copies tensors,
it computes nothing. The predictions are compared with the ones recorded when the fixture was
made (FIXTURE_DIR/predictions.npz) within a tolerance: a TensorFlow forward pass differs in its
last bits between CPUs and with TF_ENABLE_ONEDNN_OPTS, so exact equality would only hold on the
machine that recorded them. Exits 0 when every file passes both checks, else 1.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

# float32 outputs: a forward pass on another CPU differs by a few units in the last place
# (measured: up to 2.4e-07 absolute on outputs of order 1); 1e-5 relative leaves room for
# deeper models without letting a wrong weight through (that moves outputs by far more).
RTOL, ATOL = 1e-5, 1e-6

# TensorFlow 2.21 prints a few C++ log lines while it loads (CUDA probing, oneDNN's notice)
# before it reads TF_CPP_MIN_LOG_LEVEL: absl's banner and lines such as
# "I0000 00:00:1796624213.541589   10990 cudart_stub.cc:31] Could not find cuda drivers ...".
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*)$"
)


def import_keras() -> Any:
    """Import tf_keras with TensorFlow's start-up lines kept off the terminal.

    The C++ code writes them straight to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL takes
    effect, so they are caught there; any other line is passed on, and an import that fails
    still raises (its traceback is printed after stderr is restored).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
            import tf_keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line and not _STARTUP_NOISE.match(line):
                    print(line, file=sys.stderr)
    tf.get_logger().setLevel("ERROR")  # e.g. tf.function retracing notices between models
    return tf_keras


def template_arrays(case: Path) -> dict[str, Any]:
    """The trained template's own weights-only file, read with h5py: weight name -> array."""
    import h5py

    arrays = {}
    with h5py.File(case / "template_weights.h5", "r") as f:
        for layer in f.attrs["layer_names"]:
            g = f[layer.decode() if isinstance(layer, bytes) else layer]
            for name in g.attrs["weight_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                arrays[name] = g[name][()]
    return arrays


def check(model: Any, case: Path, want: dict[str, Any]) -> tuple[bool, str]:
    """Compare a loaded model's arrays (bit for bit) and predictions (within tolerance)."""
    import numpy as np

    same = 0
    for w in model.weights:
        ref = want.get(w.name)
        got = np.asarray(w.numpy())
        if ref is not None and ref.dtype == got.dtype and ref.shape == got.shape:
            same += ref.tobytes() == got.tobytes()
    arrays_ok = same == len(model.weights) == len(want)
    with np.load(case / "inputs.npz") as z:
        x = [z[k] for k in sorted(z.files)]
    with np.load(case / "predictions.npz") as z:
        expected = [z[k] for k in sorted(z.files)]
    y = model.predict(x if len(x) > 1 else x[0], verbose=0)
    got_y = [np.asarray(v) for v in (y if isinstance(y, list) else [y])]
    diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got_y, expected, strict=True))
    close = all(
        np.allclose(g, e, rtol=RTOL, atol=ATOL) for g, e in zip(got_y, expected, strict=True)
    )
    verdict = (
        f"arrays: {same} of {len(want)} identical to the template's own file; predictions "
        f"{'within' if close else 'NOT within'} rtol {RTOL:g}, atol {ATOL:g} of the trained "
        f"template's (max |diff| {diff:.1g})"
    )
    return arrays_ok and close, verdict


def main() -> int:
    case, full, *weights_files = (Path(a) for a in sys.argv[1:])
    keras = import_keras()
    want = template_arrays(case)
    ok = True

    model = keras.models.load_model(full)
    passed, verdict = check(model, case, want)
    iterations = int(model.optimizer.iterations.numpy())
    print(f"load_model({full.name}): {verdict}; optimizer at iteration {iterations}")
    ok &= passed

    for weights in weights_files:
        template = keras.models.model_from_json((case / "template.json").read_text())
        template.load_weights(weights)
        passed, verdict = check(template, case, want)
        print(f"template.load_weights({weights.name}): {verdict}")
        ok &= passed
    if not ok:
        print("MISMATCH: the conversion is not what the template saved", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
