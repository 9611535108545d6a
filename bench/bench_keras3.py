"""Keras 2 → Keras 3 benchmark: ``ckptfix convert x.h5 y.keras`` against the TensorFlow route.

    python bench/bench_keras3.py [--repeats 3] [--settle 2]

On the ResNet50 parallel full model that tf_keras writes (``resnet.py make``: 25.6 M
parameters plus Adam's slots), runs round-robin, each as a fresh process:

- ``ckptfix convert resnet50_parallel_model.h5 out.keras`` (translation, optimizer state,
  write and verification; no TensorFlow or Keras imported);
- the TensorFlow route (``resnet.py keras3``): tf_keras ``load_model``, rebuild the template in
  Keras 3, ``set_weights``, ``save`` (without the optimizer state, which this route loses);
- ``cp`` of the source, for scale.

Prints the median wall time and the largest peak RSS of each, as Markdown, and saves it to
``bench/out/keras3_results.md``. Timings on a shared machine are noisy: compare ratios taken
in one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Case, run_alternating  # noqa: E402
from resnet import OUT, make, resnet_paths  # noqa: E402
from run import CKPTFIX, _row, _tick, render  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before each run")
    args = ap.parse_args(argv)
    _, model, _ = resnet_paths()
    if not model.exists():
        make(OUT)
    dst = OUT / "bench_out.keras"
    tf = Case(
        "tf", [sys.executable, str(HERE / "resnet.py"), "keras3", str(model), str(dst)], [dst]
    )
    conv = Case("convert", [*CKPTFIX, "convert", str(model), str(dst)], [dst])
    cp = Case("cp", ["cp", str(model), str(OUT / "bench_copy.h5")], [OUT / "bench_copy.h5"])
    runs = run_alternating([tf, conv, cp], args.repeats, args.settle, on_run=_tick)
    name = f"ResNet50 full model → .keras ({model.stat().st_size / 1e6:.0f} MB)"
    base = runs["tf"]
    rows = [
        _row(name, "TensorFlow route (no optimizer state)", base, base),
        _row(name, "ckptfix convert (verified, optimizer kept)", runs["convert"], base),
        _row(name, "cp", runs["cp"], base),
    ]
    table = render(rows, args.repeats)
    print(table)
    (OUT / "keras3_results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
