"""Benchmark: batch migration, ``--jobs 1`` against ``--jobs N``, on dozens of checkpoints.

    python bench/bench_batch.py [--files 48] [--jobs 1 2] [--runs 3]

Builds (once) ``bench/out/batch_in/``: ``--files`` checkpoints in sub-folders, cycling through
the committed fixtures written by tf_keras and Keras 3 (``deep600`` weights-only: 600 layers,
chunked ``weight_names``; ``multi_io`` and ``cnn`` full models with Adam state; the Keras 3
``parallel/wrapper.keras``) and one synthetic 16 MiB parallel weights file per eight (see
``bench/synthetic.py``). Then, per ``--jobs`` value, it times ``ckptfix.convert_batch`` (median of
``--runs``, ``force=True`` into a fresh output folder each time, ``infer=True`` for the
weights-only files), checks that every run wrote the same bytes as the ``--jobs 1`` run, and
also times ``cp -r`` of the input folder (the floor for touching every byte once).

Worker processes are started with ``spawn`` (about 0.5 s each to import h5py and numpy), so
``--jobs 2`` pays off once a batch holds more than a second or two of work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
FIXTURES = ROOT / "fixtures"
CYCLE = (
    FIXTURES / "keras2/deep600/parallel_weights.h5",
    FIXTURES / "keras2/multi_io/parallel_model.h5",
    FIXTURES / "keras2/cnn/parallel_model.h5",
    FIXTURES / "keras3/parallel/wrapper.keras",
)

sys.path.insert(0, str(ROOT))


def build_inputs(folder: Path, files: int) -> Path:
    """``files`` checkpoints under ``folder/run_k/`` (rebuilt when the count differs)."""
    marker = folder / ".count"
    if marker.exists() and marker.read_text() == str(files):
        return folder
    from bench.synthetic import ensure_synthetic

    shutil.rmtree(folder, ignore_errors=True)
    synthetic = ensure_synthetic(1 / 64)  # one 16 MiB kernel
    for k in range(files):
        src = synthetic if k % 8 == 7 else CYCLE[k % len(CYCLE)]
        name = f"epoch_{k:03d}" + (".keras" if src.suffix == ".keras" else ".h5")
        dst = folder / f"run_{k % 4}" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    marker.write_text(str(files))
    return folder


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def time_batch(src: Path, jobs: int, runs: int) -> tuple[float, str, dict[str, int]]:
    import ckptfix

    times, digests = [], set()
    counts: dict[str, int] = {}
    for r in range(runs):
        out = OUT / f"batch_out_j{jobs}_{r}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        report = ckptfix.convert_batch(src, out, jobs=jobs, force=True)
        times.append(time.perf_counter() - t)
        digests.add(digest(out))
        counts = {"converted": report.converted, "skipped": report.skipped, "failed": report.failed}
        shutil.rmtree(out)
    assert len(digests) == 1, "runs with the same --jobs wrote different bytes"
    return statistics.median(times), digests.pop(), counts


def time_cp(src: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        dst = OUT / "batch_cp"
        shutil.rmtree(dst, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        times.append(time.perf_counter() - t)
        shutil.rmtree(dst)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=48)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    src = build_inputs(OUT / "batch_in", args.files)
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    results = {}
    base_digest = None
    for jobs in args.jobs:
        seconds, dig, counts = time_batch(src, jobs, args.runs)
        base_digest = base_digest or dig
        results[jobs] = {"seconds": round(seconds, 3), "identical": dig == base_digest, **counts}
    cp = time_cp(src, args.runs)
    first = results[args.jobs[0]]["seconds"]
    print(
        f"{args.files} files, {size / 2**20:.1f} MiB, {os.cpu_count()} CPUs, median of {args.runs}"
    )
    print("| jobs | seconds | speed-up vs first | x cp -r | same bytes | converted/failed |")
    print("|---|---|---|---|---|---|")
    for jobs, r in results.items():
        print(
            f"| {jobs} | {r['seconds']:.2f} | {first / r['seconds']:.2f}x | "
            f"{r['seconds'] / cp:.0f}x | {r['identical']} | {r['converted']}/{r['failed']} |"
        )
    print(f"| cp -r | {cp:.3f} | | 1x | | |")
    print(json.dumps({"files": args.files, "bytes": size, "cp_seconds": cp, "jobs": results}))


if __name__ == "__main__":
    main()
