"""Load converted Keras 3 files in a fresh process, on the backend ``KERAS_BACKEND`` names.

    KERAS_BACKEND=jax python tests/keras3_loader.py JOBS.json RESULTS.json

Run by the migration tests in a subprocess per backend (never in the process that converted,
so nothing converted or registered there helps the load). Each job names a ``.keras`` (or a
``.weights.h5`` with the model it loads into) and the fixture arrays to compare with; the
result records what Keras 3 did, for the test to assert. Safe mode is Keras's default and is
never turned off here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"


def fixture_module(name: str) -> Any:
    path = FIXTURES / name
    spec = importlib.util.spec_from_file_location(f"loader_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def custom_objects(kind: str | None, keras: Any) -> dict[str, Any]:
    """The classes a job's model needs (the tests' own code, never the file's)."""
    if kind is None:
        return {}
    if kind == "zoo":
        return dict(fixture_module("keras2_zoo.py").custom_objects(keras))
    sys.path.insert(0, str(HERE))
    import realworld_layers

    return dict(realworld_layers.classes(keras)[kind])


def arrays(path: str, prefix: str) -> list[np.ndarray]:
    with np.load(path) as z:
        keys = sorted((k for k in z.files if k.startswith(prefix)), key=lambda k: int(k[1:]))
        return [z[k] for k in keys]


def as_arg(xs: list[np.ndarray]) -> Any:
    return xs if len(xs) > 1 else xs[0]


def predict(model: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = model.predict(as_arg(xs), verbose=0)
    out = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(o, dtype=np.float64) for o in out]


def worst(got: list[np.ndarray], want: list[np.ndarray], rtol: float, atol: float) -> float:
    """max |got - want| / (atol + rtol |want|) over every element: <= 1 is within tolerance."""
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want, strict=True)):
        return float("inf")
    return max(
        float(np.max(np.abs(g - w.astype(np.float64)) / (atol + rtol * np.abs(w))))
        for g, w in zip(got, want, strict=True)
    )


def run_job(job: dict[str, Any], keras: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"case": job["case"]}
    objects = custom_objects(job.get("custom"), keras)
    if job.get("build"):  # a .weights.h5 loaded into Keras 3's own build of the template
        model = fixture_module("models.py").build(job["build"], keras)
        model.load_weights(job["path"])
    else:
        model = keras.saving.load_model(job["path"], custom_objects=objects)
    out["loaded"] = True
    xs = arrays(job["inputs"], "x")
    rtol, atol = job["tolerance"]
    out["diff"] = worst(predict(model, xs), arrays(job["predictions"], "y"), rtol, atol)
    opt = getattr(model, "optimizer", None)
    out["compiled"] = opt is not None
    if opt is None:
        return out
    out["iterations"] = int(keras.ops.convert_to_numpy(opt.iterations))
    out["optimizer_digests"] = [
        _digest(np.asarray(keras.ops.convert_to_numpy(v))) for v in opt.variables
    ]
    out["learning_rate"] = float(keras.ops.convert_to_numpy(opt.learning_rate))
    if not job.get("step"):
        return out
    if job.get("fresh_optimizer"):  # the negative control: same optimizer, no state
        config = opt.get_config()
        model.compile(optimizer=type(opt).from_config(config), loss=model.loss)
        opt = model.optimizer
    sx, sy = arrays(job["step"], "x"), arrays(job["step"], "y")
    logs = model.train_on_batch(as_arg(sx), as_arg(sy), return_dict=True)
    out["step_loss"] = {k: float(v) for k, v in logs.items()}
    out["iterations_after"] = int(keras.ops.convert_to_numpy(opt.iterations))
    rtol, atol = job["step_tolerance"]
    out["after_diff"] = worst(predict(model, xs), arrays(job["after_step"], "y"), rtol, atol)
    return out


def _error(exc: BaseException) -> str:
    """The error and the first line of each cause under it (Keras wraps the root cause, e.g.
    "Could not locate class", in a message that dumps the whole config)."""
    lines = [traceback.format_exception_only(type(exc), exc)[-1].strip()[:1000]]
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        lines.append(f"{type(cause).__name__}: {str(cause).splitlines()[0][:300]}")
        cause = cause.__cause__ or cause.__context__
    return "\n<- ".join(lines)


def _digest(a: np.ndarray) -> str:
    import hashlib

    c = np.ascontiguousarray(a)
    return f"{c.dtype.name}{list(c.shape)}:" + hashlib.sha256(c.tobytes()).hexdigest()[:16]


def main() -> int:
    jobs = json.loads(Path(sys.argv[1]).read_text())
    import keras

    results = []
    for job in jobs:
        try:
            results.append(run_job(job, keras))
        except Exception as exc:  # the test reports it per case
            results.append({"case": job["case"], "loaded": False, "error": _error(exc)})
        keras.backend.clear_session()
    result = {"backend": keras.backend.backend(), "keras": keras.__version__, "results": results}
    Path(sys.argv[2]).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
