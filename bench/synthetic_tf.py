"""Synthetic TensorFlow checkpoints of a parallel model, built without TensorFlow, for benchmarks.

    python bench/synthetic_tf.py --gib 1 [--out bench/out]

The object graph is what tf_keras ``save_weights`` writes for a ``multi_gpu_model`` wrapper of a
stack of Dense layers (``fixtures/tf``; DESIGN.md §2.5): root children ``layer-0`` (the input,
shared with the template), ``layer-1``/``layer-2`` (slices), ``layer_with_weights-0`` (the
template, its Dense layers ``layer_with_weights-K`` holding ``kernel`` and ``bias``) and
``layer-4`` (the merge). Kernels are 2048×2048 float32 (16 MiB) of random bytes; the index and
the shard are written with :mod:`ckptfix.bundle` (the table writer that reproduces TensorFlow's
index files byte for byte), every entry with its crc32c.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ckptfix import bundle
from ckptfix.protos import TrackableObjectGraph

OUT = Path(__file__).resolve().parent / "out"
WIDTH = 2048


def synthetic_tf_path(gib: float, out: Path = OUT) -> Path:
    """The prefix of the synthetic checkpoint of ``gib`` GiB."""
    return out / f"synthetic_tf_{gib:g}gib" / "ckpt"


def write_synthetic_tf(prefix: Path, gib: float, seed: int = 0) -> Path:
    """Write a parallel TF checkpoint of about ``gib`` GiB of tensors; return its prefix."""
    layers = max(1, round(gib * 1024 / 16))
    rng = np.random.default_rng(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    g = TrackableObjectGraph()
    root, inp, s1, s2, tpl, merge = (g.nodes.add() for _ in range(6))
    for name, node in (("layer-0", 1), ("layer-1", 2), ("layer-2", 3), ("layer-3", 4)):
        root.children.add(node_id=node, local_name=name)
    root.children.add(node_id=4, local_name="layer_with_weights-0")
    root.children.add(node_id=5, local_name="layer-4")
    tpl.children.add(node_id=1, local_name="layer-0")
    entries: list[tuple[str, bytes]] = []
    shard = bundle.data_file(prefix, 0, 1)
    offset = 0
    with open(shard, "wb") as fh:
        for k in range(layers):
            layer_id = len(g.nodes)
            layer = g.nodes.add()
            tpl.children.add(node_id=layer_id, local_name=f"layer_with_weights-{k}")
            tpl.children.add(node_id=layer_id, local_name=f"layer-{k + 1}")
            for w, shape in (("kernel", (WIDTH, WIDTH)), ("bias", (WIDTH,))):
                var_id = len(g.nodes)
                var = g.nodes.add()
                layer.children.add(node_id=var_id, local_name=w)
                key = f"layer_with_weights-0/layer_with_weights-{k}/{w}/.ATTRIBUTES/VARIABLE_VALUE"
                name = "dense" if k == 0 else f"dense_{k}"
                var.attributes.add(
                    name="VARIABLE_VALUE", full_name=f"{name}/{w}", checkpoint_key=key
                )
                data = rng.standard_normal(shape, dtype=np.float32).tobytes()
                fh.write(data)
                crc = bundle.mask(bundle.crc32c(data))
                entries.append((key, bundle.entry_bytes(1, shape, 0, offset, len(data), crc)))
                offset += len(data)
        graph, crc = bundle.encode_string_scalar(g.SerializeToString())
        fh.write(graph)
    entries.append((bundle.GRAPH_KEY, bundle.entry_bytes(7, (), 0, offset, len(graph), crc)))
    bundle.index_file(prefix).write_bytes(bundle.index_bytes(1, entries))
    return prefix


def ensure_synthetic_tf(gib: float, out: Path = OUT) -> Path:
    """The synthetic checkpoint of ``gib`` GiB, written once."""
    prefix = synthetic_tf_path(gib, out)
    if not bundle.index_file(prefix).exists():
        write_synthetic_tf(prefix, gib)
    return prefix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    print(ensure_synthetic_tf(args.gib, args.out))


if __name__ == "__main__":
    main()
