"""Synthetic Keras 2 parallel weights files, built with h5py, for the size benchmarks.

    python bench/synthetic.py --gib 1 [--out bench/out]

The layout is what tf_keras ``save_weights`` writes for a ``multi_gpu_model`` wrapper of a
stack of Dense layers (DESIGN.md §2.1): root ``layer_names`` = input, one slice Lambda per
replica, the template group, and the merge layer named like the template's output layer; the
template group holds every tensor under ``<layer>/<weight>:0`` with its ``weight_names``. Each
Dense kernel is 2048×2048 float32 (16 MiB) with a 2048 bias; the data is random so no layer of
the stack (page cache, compression) can shortcut it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

OUT = Path(__file__).resolve().parent / "out"
WIDTH = 2048  # 2048 x 2048 float32 = 16 MiB per kernel
REPLICAS = 2


def synthetic_path(gib: float, out: Path = OUT) -> Path:
    """Where the synthetic file of ``gib`` GiB lives."""
    return out / f"synthetic_{gib:g}gib.h5"


def write_synthetic(path: Path, gib: float, seed: int = 0) -> Path:
    """Write a parallel weights file of about ``gib`` GiB of tensors (16 MiB kernels)."""
    layers = max(1, round(gib * 1024 / 16))
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    names = [f"dense_{k + 1}" for k in range(layers)]
    weight_names = [f"{n}/{w}:0".encode() for n in names for w in ("kernel", "bias")]
    layer_names = [b"input_1"] + [f"lambda_{i + 1}".encode() for i in range(REPLICAS)]
    layer_names += [b"model_1", names[-1].encode()]  # the merge is named like the output
    with h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = np.asarray(layer_names)
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for n in layer_names:
            g = f.create_group(n.decode())
            g.attrs["weight_names"] = np.zeros((0,), "f8")
        tpl = f["model_1"]
        tpl.attrs["weight_names"] = np.asarray(weight_names)
        for n in names:
            kernel = rng.standard_normal((WIDTH, WIDTH), dtype=np.float32)
            tpl.create_dataset(f"{n}/kernel:0", data=kernel)
            tpl.create_dataset(f"{n}/bias:0", data=rng.standard_normal(WIDTH, dtype=np.float32))
    tmp.replace(path)
    return path


def ensure_synthetic(gib: float, out: Path = OUT) -> Path:
    """The synthetic file of ``gib`` GiB, written once and reused."""
    p = synthetic_path(gib, out)
    return p if p.exists() else write_synthetic(p, gib)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, nargs="+", default=[0.25, 1, 2])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    for g in args.gib:
        print(ensure_synthetic(g, args.out))


if __name__ == "__main__":
    main()
