"""Benchmark: ``ckptfix inspect`` on a ResNet50 parallel full-model file (~280 MB).

    python bench/bench_inspect.py [--runs 7] [--rebuild]

Builds (once, with ``bench/resnet.py``) ``bench/out/resnet50_parallel_model.h5``: tf_keras
``ResNet50(weights=None)`` (never downloaded) wrapped in the fixtures' re-creation of Keras
2.2.4's ``multi_gpu_model`` on logical CPUs, trained one Adam step so the optimizer's slots are
stored, saved with ``model.save`` (Keras 2 HDF5 full model). It then times, as the median of
``--runs`` runs:

- ``library``: ``ckptfix.inspect_checkpoint(path)`` in this process (warm imports);
- ``cli``: ``ckptfix inspect PATH --json`` as a fresh process (interpreter start included);
- ``h5py open``: opening the file and reading its root attributes, the floor for any reader.

Inspection reads metadata only, so its time does not grow with the size of the tensors.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
FILE = OUT / "resnet50_parallel_model.h5"


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
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args(argv)
    if args.rebuild and FILE.exists():
        FILE.unlink()
    if not FILE.exists():
        # A separate process: TensorFlow must not be loaded where inspect is timed. The file is
        # the one bench/run.py uses (bench/resnet.py: the fixtures' multi_gpu_model re-creation).
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import resnet; resnet.make(resnet.OUT)"
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
