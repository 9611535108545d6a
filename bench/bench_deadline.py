"""Benchmark: what the deadline costs a normal file (a worker process per call).

    python bench/bench_deadline.py [--repeats 7] [--calls 30] [--baseline /work/main]

Every file ckptfix reads is read in a worker process (forked on Linux) so that a file on
which HDF5 loops forever can be refused (``ckptfix.deadline``). This measures what that costs
on files that are fine, two ways, each as a ratio within one run on the same machine:

- **commands**, as a user runs them (interpreter start included): ``ckptfix inspect FILE`` and
  ``ckptfix convert FILE OUT`` with the deadline (the default) against ``--timeout 0`` (the
  same code, in one process, no worker), round-robin, median of ``--repeats``; with
  ``--baseline TREE`` also the ckptfix of another checkout (the code before the deadline);
- **library calls** in one warm process (``inspect_checkpoint``, ``convert_checkpoint``),
  ``timeout=`` default against ``timeout=None``, median of ``--calls``: the fixed cost of a
  worker (fork, its copy-on-write pages, the answer's pickle) without the interpreter start.

Files: two small tf_keras fixtures (a full model, 60 KB; the 600-layer weights-only file) and
the ResNet50 parallel files of ``bench/resnet.py`` (103 MB weights-only, 308 MB full model with
Adam state; built once with TensorFlow, skipped with ``--no-resnet``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from measure import Case, run_alternating  # noqa: E402
from resnet import resnet_paths  # noqa: E402

FIXTURES = ROOT / "fixtures" / "keras2"
SMALL = [
    ("cnn full model (60 KB)", FIXTURES / "cnn/parallel_model.h5"),
    ("deep600 weights (600 layers)", FIXTURES / "deep600/parallel_weights.h5"),
]


def files(with_resnet: bool) -> list[tuple[str, Path]]:
    found = list(SMALL)
    if with_resnet:
        weights, model, _config = resnet_paths()
        if not weights.exists():
            subprocess.run([sys.executable, str(HERE / "resnet.py"), "make"], check=True)
        found += [("ResNet50 weights (103 MB)", weights), ("ResNet50 full model (308 MB)", model)]
    return found


def command_rows(
    label: str, src: Path, out: Path, repeats: int, baseline: Path | None
) -> list[str]:
    dst = out / "single.h5"
    trees = [("", ROOT)] + ([("baseline ", baseline)] if baseline else [])
    rows = []
    for command in ("inspect", "convert"):
        argv = [sys.executable, "-m", "ckptfix", command, str(src)]
        argv += [str(dst)] if command == "convert" else ["--json"]
        cases = []
        for prefix, tree in trees:
            env = {"PYTHONPATH": str(tree)}
            if prefix:  # the other checkout, as it is (it may have no --timeout)
                cases.append(Case(f"{prefix}{command}", argv, [dst], env))
            else:
                cases.append(Case(f"{command} (deadline)", argv, [dst], env))
                off = [*argv, "--timeout", "0"]
                cases.append(Case(f"{command} --timeout 0", off, [dst], env))
        runs = run_alternating(cases, repeats, settle=0.5)
        base = runs[f"{command} --timeout 0"].median_s
        for c in cases:
            r = runs[c.label]
            rows.append(
                f"| {label} | {c.label} | {r.median_s:.3f} | {r.median_s / base:.2f}x | "
                f"{r.median_s - base:+.3f} | {' '.join(f'{s:.2f}' for s in r.seconds)} |"
            )
    return rows


def library_rows(label: str, src: Path, out: Path, calls: int) -> list[str]:
    import ckptfix

    def inspect(timeout: float | None) -> None:
        ckptfix.inspect_checkpoint(src, timeout=timeout)

    def convert(timeout: float | None) -> None:
        dst = out / "lib.h5"
        ckptfix.convert_checkpoint(src, dst, force=True, timeout=timeout)

    rows = []
    for name, fn in (("inspect_checkpoint", inspect), ("convert_checkpoint", convert)):
        fn(None)
        fn(ckptfix.DEFAULT_TIMEOUT)  # warm both paths
        times: dict[str, list[float]] = {"worker": [], "in process": []}
        for _ in range(calls):
            for key, timeout in (("worker", ckptfix.DEFAULT_TIMEOUT), ("in process", None)):
                t = time.perf_counter()
                fn(timeout)
                times[key].append(time.perf_counter() - t)
        worker = statistics.median(times["worker"])
        inproc = statistics.median(times["in process"])
        rows.append(
            f"| {label} | {name} | {worker * 1000:.1f} | {inproc * 1000:.1f} | "
            f"{(worker - inproc) * 1000:+.1f} | {worker / inproc:.2f}x |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--baseline", type=Path, help="also time the ckptfix of this checkout")
    ap.add_argument("--no-resnet", action="store_true")
    args = ap.parse_args()
    chosen = files(not args.no_resnet)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(dir=HERE / "out" if (HERE / "out").is_dir() else None) as t:
        out = Path(t)
        print("\nCommands (interpreter start included), median of", args.repeats)
        print("| file | command | median s | vs --timeout 0 | difference s | runs (s) |")
        print("|---|---|---|---|---|---|")
        for label, src in chosen:
            for row in command_rows(label, src, out, args.repeats, args.baseline):
                print(row, flush=True)
        print("\nLibrary calls in one warm process, median of", args.calls)
        print("| file | call | worker ms | in process ms | difference ms | ratio |")
        print("|---|---|---|---|---|---|")
        for label, src in chosen:
            for row in library_rows(label, src, out, args.calls):
                print(row, flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
