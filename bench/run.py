"""Conversion benchmarks: ckptfix against `cp` and against the TensorFlow round trip.

    python bench/run.py              # everything (files are generated once into bench/out/)
    python bench/run.py --quick      # 0.25 GiB only, 2 rounds, no TensorFlow
    python bench/run.py --sizes 1 --repeats 7 --no-resnet
    python bench/run.py --baseline ../old-checkout   # also time another tree's ckptfix convert

Every comparison runs its commands round-robin (A B A B …), each as a fresh process started
from the same state (outputs removed, dirty pages written back, a short pause), and reports the
median wall time and the largest peak RSS. Ratios are taken within one comparison, on the same
file, in the same run:

- synthetic parallel weights files of 0.25, 1 and 2 GiB (16 MiB tensors, ``synthetic.py``):
  ``cp`` vs ``ckptfix convert`` (which includes its verification) and ``ckptfix verify`` (a
  second, full verification that reads every stored byte of both files);
- a synthetic parallel TensorFlow checkpoint of the same sizes (``synthetic_tf.py``): ``cp`` of
  its index and shard vs ``ckptfix convert`` to a TF checkpoint of the template (kernel copy of
  the shard, new index, verification reading both shards and every crc32c) and to ``.h5``;
- the ResNet50 parallel files written by tf_keras (``resnet.py``), weights-only and full model:
  the TensorFlow round trip vs ``ckptfix convert`` (and ``cp`` for scale).

With ``--baseline TREE`` every ``ckptfix convert`` row gets a twin run with ``PYTHONPATH=TREE``
(the ckptfix of another checkout, e.g. a commit before a refactoring), in the same alternation,
its ratio taken against the same first row.

The table is printed as Markdown and saved to ``bench/out/results.md``.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Case, Runs, run_alternating  # noqa: E402
from resnet import resnet_paths  # noqa: E402
from synthetic import OUT, ensure_synthetic  # noqa: E402
from synthetic_tf import ensure_synthetic_tf  # noqa: E402

CKPTFIX = [sys.executable, "-m", "ckptfix"]
#: Another checkout whose ``ckptfix convert`` is timed beside this one (``--baseline``).
BASELINE: str | None = None


def with_baseline(case: Case) -> list[Case]:
    """``case``, and its twin running the ``--baseline`` tree's ckptfix (when one is given)."""
    if BASELINE is None:
        return [case]
    twin = Case(f"{case.label}@baseline", case.argv, case.outputs, {"PYTHONPATH": BASELINE})
    return [case, twin]


def baseline_rows(
    item: str, label: str, what: str, runs: dict[str, Runs], base: Runs
) -> list[list[str]]:
    key = f"{label}@baseline"
    if key not in runs:
        return []
    return [_row(item, f"{what} [baseline {BASELINE}]", runs[key], base)]


def synthetic_rows(gib: float, repeats: int, settle: float) -> list[list[str]]:
    src = ensure_synthetic(gib)
    dst = OUT / "bench_out.h5"
    cp = Case("cp", ["cp", str(src), str(dst)], [dst])
    conv = Case("convert", [*CKPTFIX, "convert", str(src), str(dst)], [dst])
    runs = run_alternating([cp, *with_baseline(conv)], repeats, settle, on_run=_tick)
    # `ckptfix verify` needs the converted file: make it once, time the verification alone.
    subprocess.run(conv.argv, check=True, capture_output=True)
    ver = Case("verify", [*CKPTFIX, "verify", str(src), str(dst)])
    vruns = run_alternating([ver], repeats, settle, on_run=_tick)["verify"]
    dst.unlink()
    base = runs["cp"]
    size = f"{src.stat().st_size / (1 << 30):.2f} GiB"
    return [
        _row(f"synthetic {size}", "cp", base, base),
        _row(f"synthetic {size}", "ckptfix convert (verified)", runs["convert"], base),
        *baseline_rows(f"synthetic {size}", "convert", "ckptfix convert", runs, base),
        _row(f"synthetic {size}", "ckptfix verify (every byte, extra)", vruns, base),
    ]


def tf_rows(gib: float, repeats: int, settle: float) -> list[list[str]]:
    """A synthetic parallel TF checkpoint: `cp` of its files vs both ckptfix targets."""
    src = ensure_synthetic_tf(gib)
    files = sorted(src.parent.glob(src.name + ".*"))
    dst_dir = OUT / "bench_tf_out"
    dst_dir.mkdir(exist_ok=True)
    copies = [dst_dir / f.name for f in files]
    cp = Case("cp", ["cp", *map(str, files), str(dst_dir)], copies)
    out = dst_dir / "single"
    outs = [out.with_name("single.index"), out.with_name("single.data-00000-of-00001")]
    conv = Case("convert", [*CKPTFIX, "convert", str(src), str(out)], outs)
    h5 = dst_dir / "single.h5"
    conv_h5 = Case("convert.h5", [*CKPTFIX, "convert", str(src), str(h5)], [h5])
    runs = run_alternating([cp, conv, conv_h5], repeats, settle, on_run=_tick)
    base = runs["cp"]
    size = sum(f.stat().st_size for f in files) / (1 << 30)
    name = f"synthetic TF checkpoint {size:.2f} GiB"
    return [
        _row(name, "cp (index + shard)", base, base),
        _row(name, "ckptfix convert → TF checkpoint (verified)", runs["convert"], base),
        _row(name, "ckptfix convert → .h5 (verified)", runs["convert.h5"], base),
    ]


def resnet_rows(repeats: int, settle: float) -> list[list[str]]:
    weights, model, config = resnet_paths()
    if not all(p.exists() for p in (weights, model, config)):
        subprocess.run([sys.executable, str(HERE / "resnet.py"), "make"], check=True)
    dst = OUT / "bench_out.h5"
    rows: list[list[str]] = []
    for label, src, extra, full in (
        ("ResNet50 weights", weights, ["--reference", str(config)], []),
        ("ResNet50 full model", model, [], ["--full"]),
    ):
        tf = Case(
            "tf",
            [sys.executable, str(HERE / "resnet.py"), "roundtrip", str(src), str(dst), *full],
            [dst],
        )
        conv = Case("convert", [*CKPTFIX, "convert", str(src), str(dst), *extra], [dst])
        cp = Case("cp", ["cp", str(src), str(dst)], [dst])
        runs = run_alternating([tf, *with_baseline(conv), cp], repeats, settle, on_run=_tick)
        base = runs["tf"]
        name = f"{label} ({src.stat().st_size / 1e6:.0f} MB)"
        rows += [
            _row(name, "TensorFlow round trip", base, base),
            _row(name, "ckptfix convert (verified)", runs["convert"], base),
            *baseline_rows(name, "convert", "ckptfix convert", runs, base),
            _row(name, "cp", runs["cp"], base),
        ]
    return rows


def _row(item: str, what: str, runs: Runs, base: Runs) -> list[str]:
    ratio = runs.median_s / base.median_s
    return [
        item,
        what,
        f"{runs.median_s:.3f}",
        f"{ratio:.2f}×" if ratio >= 1 else f"{ratio:.3f}× ({1 / ratio:.1f}× faster)",
        f"{runs.max_rss / 1e6:.0f}",
        " ".join(f"{s:.2f}" for s in runs.seconds),
    ]


def _tick(label: str, seconds: float, rss: int) -> None:
    print(f"  {label:8s} {seconds:7.3f} s  {rss / 1e6:6.0f} MB", file=sys.stderr, flush=True)


def render(rows: Sequence[Sequence[str]], repeats: int) -> str:
    head = ["file", "command", "median s", "ratio", "peak RSS MB", "runs (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    cpu = platform.processor() or platform.machine()
    note = (
        f"\n{repeats} alternating runs each, medians; ratio = median / median of the first row of "
        f"its file; Python {platform.python_version()}, {cpu}, {platform.system()} "
        f"{platform.release()}."
    )
    return "\n".join(lines) + note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="*", default=[0.25, 1, 2], help="GiB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--settle", type=float, default=2.0, help="idle seconds before each run")
    ap.add_argument("--no-resnet", action="store_true", help="skip TensorFlow comparisons")
    ap.add_argument("--quick", action="store_true", help="0.25 GiB, 2 rounds, no TensorFlow")
    ap.add_argument("--baseline", metavar="TREE", help="also time this checkout's ckptfix")
    ap.add_argument("--no-tf", action="store_true", help="skip the TF checkpoint rows")
    args = ap.parse_args(argv)
    global BASELINE
    BASELINE = None if args.baseline is None else str(Path(args.baseline).resolve())
    if args.quick:
        args.sizes, args.repeats, args.no_resnet, args.settle = [0.25], 2, True, 0.5
    rows: list[list[str]] = []
    for gib in args.sizes:
        print(f"synthetic {gib:g} GiB", file=sys.stderr)
        rows += synthetic_rows(gib, args.repeats, args.settle)
    for gib in [] if args.no_tf else args.sizes[:1] if args.quick else args.sizes:
        print(f"synthetic TF checkpoint {gib:g} GiB", file=sys.stderr)
        rows += tf_rows(gib, args.repeats, args.settle)
    if not args.no_resnet:
        print("ResNet50", file=sys.stderr)
        rows += resnet_rows(args.repeats, args.settle)
    table = render(rows, args.repeats)
    print(table)
    (OUT / "results.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
