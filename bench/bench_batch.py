"""Benchmark: batch migration, ``--jobs 1`` against ``--jobs 2`` and the automatic default.

    python bench/bench_batch.py [--files 10 20 48] [--jobs 1 2 auto] [--runs 3]
    python bench/bench_batch.py --baseline /work/main     # the same, for another tree too

Builds (once per count) ``bench/out/batch_in_N/``: N checkpoints in sub-folders, cycling through
the committed fixtures written by tf_keras and Keras 3 (``deep600`` weights-only: 600 layers,
chunked ``weight_names``; ``multi_io`` and ``cnn`` full models with Adam state; the Keras 3
``parallel/wrapper.keras``) and one synthetic 16 MiB parallel weights file per eight (see
``bench/synthetic.py``). Then for every count and ``--jobs`` value it times
``ckptfix.convert_batch`` (``force=True`` into a fresh output folder; the weights-only files are
inferred, the default), each run in a fresh Python process so that no run profits from an
earlier one's caches, the runs of all configurations alternating, and reports the median of
``--runs``, the speed-up of each ``--jobs`` over ``--jobs 1`` of the same tree, and whether
every run of a tree wrote the same bytes, whatever its ``--jobs``. The time is the
``convert_batch`` call alone (interpreter start and imports, the same for every ``--jobs``,
are left out). ``cp -r`` of each input folder is the floor for touching every byte once.

``--baseline TREE`` also times the ckptfix of another checkout (``PYTHONPATH=TREE``), e.g. the
code before workers were forked, in the same alternation.
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

#: One timed run, in a fresh interpreter: prints the seconds and the counts as JSON.
RUN = """
import json, sys, time
import ckptfix
src, out, jobs = sys.argv[1], sys.argv[2], sys.argv[3]
t = time.perf_counter()
r = ckptfix.convert_batch(src, out, jobs=None if jobs == "auto" else int(jobs), force=True)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "jobs": r.jobs, "converted": r.converted,
                  "failed": r.failed, "skipped": r.skipped}))
"""


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


def run_once(tree: Path, src: Path, jobs: str, out: Path) -> tuple[dict[str, float], str]:
    """One ``convert_batch`` in a fresh interpreter importing ckptfix from ``tree``."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(src), str(out), jobs],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    dig = digest(out)
    shutil.rmtree(out)
    return result, dig


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
    ap.add_argument("--files", type=int, nargs="+", default=[10, 20, 48])
    ap.add_argument("--jobs", nargs="+", default=["1", "2", "auto"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="also time the ckptfix of this checkout")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    trees = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    if "1" not in args.jobs:
        args.jobs.insert(0, "1")  # the reference of every ratio
    rows = []
    print(f"{os.cpu_count()} CPUs (sched_getaffinity: {len(os.sched_getaffinity(0))})")
    for files in args.files:
        src = build_inputs(OUT / f"batch_in_{files}", files)
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        times: dict[tuple[str, str], list[float]] = {}
        info: dict[tuple[str, str], dict[str, float]] = {}
        digests: dict[str, set[str]] = {}
        for _ in range(args.runs):  # alternate: every configuration sees the same load
            for label, tree in trees:
                for jobs in args.jobs:
                    out = OUT / f"batch_out_{label}_{jobs}"
                    result, dig = run_once(tree, src, jobs, out)
                    times.setdefault((label, jobs), []).append(result["seconds"])
                    info[(label, jobs)] = result
                    digests.setdefault(label, set()).add(dig)
        cp = time_cp(src, args.runs)
        for label, _tree in trees:
            serial = statistics.median(times[(label, "1")])
            for jobs in args.jobs:
                med = statistics.median(times[(label, jobs)])
                r = info[(label, jobs)]
                rows.append(
                    {
                        "files": files,
                        "mib": round(size / 2**20, 1),
                        "tree": label,
                        "jobs": jobs,
                        "workers": r["jobs"],
                        "seconds": round(med, 3),
                        "runs": [round(t, 3) for t in times[(label, jobs)]],
                        "speedup_vs_jobs1": round(serial / med, 2),
                        "x_cp": round(med / cp, 1),
                        "converted": r["converted"],
                        "failed": r["failed"],
                    }
                )
        same = all(len(d) == 1 for d in digests.values())  # per tree, any --jobs
        print(f"\n{files} files, {size / 2**20:.1f} MiB; cp -r {cp:.3f} s; same bytes: {same}")
        print("| tree | --jobs | workers | median s | jobs 1 / this | runs (s) | conv/failed |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            if r["files"] == files:
                print(
                    f"| {r['tree']} | {r['jobs']} | {r['workers']} | {r['seconds']:.2f} | "
                    f"{r['speedup_vs_jobs1']:.2f}x | {' '.join(map(str, r['runs']))} | "
                    f"{r['converted']}/{r['failed']} |"
                )
        assert same, "runs wrote different bytes"
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
