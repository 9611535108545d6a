"""Build Keras-2-style HDF5 checkpoints with h5py, for what no writer produces on demand.

``wrap_single_file`` turns a real single-model file (weights-only or full model) into the
parallel file ``multi_gpu_model`` would have written for it: the template nested in one
group (all trainable weights, then all non-trainable ones), Lambda slice layers before it and
Concatenate merges after it, named like the template's outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ckptfix.h5util import read_attr_list, write_attr_list

#: The Keras 2 files of ../shared/realworld: (template outputs, inputs) as multi_gpu_model
#: would have named them around each one.
REALWORLD_FILES = {
    # file: (template outputs, inputs) as multi_gpu_model would have named them
    "CarBehaviorCloning__model.h5": (("steering_output",), ("images",)),
    "neurowriter__chupitos.h5": (("dense_1",), ("input_1",)),
    "Online-Signature-Verification__siamese_model.h5": (
        ("classification_layer",),
        ("input_data", "validation_data"),
    ),
    "mastersthesis__gender_8.hdf5": (("dense_1",), ("conv2d_1_input",)),
    "DeepAnomaly__lstm_model.h5": (("activation_3",), ("lstm_1_input",)),
}

NON_TRAINABLE = re.compile(r"(moving_mean|moving_variance)(:\d+)?$")


def _names(values: Sequence[str], as_bytes: bool) -> Any:
    if as_bytes:
        return np.asarray([v.encode() for v in values]) if values else np.zeros((0,), "f8")
    return np.asarray(values, dtype=h5py.string_dtype()) if values else np.zeros((0,), "f8")


def write_layers(
    g: h5py.Group,
    layers: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    *,
    as_bytes: bool = True,
    chunk_layer_names: bool = False,
) -> None:
    """Write ``[(layer, [(weight name, array), ...]), ...]`` the way Keras 2 does."""
    names = [n for n, _ in layers]
    if chunk_layer_names:
        write_attr_list(g, "layer_names", names)
    else:
        g.attrs["layer_names"] = _names(names, as_bytes)
    g.attrs["backend"] = b"tensorflow" if as_bytes else "tensorflow"
    g.attrs["keras_version"] = b"2.2.4" if as_bytes else "2.2.4"
    for name, weights in layers:
        lg = g.create_group(name)
        lg.attrs["weight_names"] = _names([w for w, _ in weights], as_bytes)
        for w, arr in weights:
            lg.create_dataset(w, data=arr)


def read_single(path: Path) -> tuple[list[str], dict[str, list[tuple[str, np.ndarray]]], Any]:
    """(layer_names, {layer: [(weight, array)]}, model_config or None) of a single-model file."""
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        names = read_attr_list(root, "layer_names")
        weights = {
            n: [(w, root[n][w][()]) for w in read_attr_list(root[n], "weight_names")] for n in names
        }
        cfg = f.attrs.get("model_config")
        cfg = (
            json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg) if cfg is not None else None
        )
    return names, weights, cfg


def nested_order(
    names: Sequence[str], weights: dict[str, list[tuple[str, np.ndarray]]]
) -> list[tuple[str, np.ndarray]]:
    """All trainable weights in layer order, then all non-trainable ones (moving statistics)."""
    flat = [(w, a) for n in names for w, a in weights[n]]
    return [x for x in flat if not NON_TRAINABLE.search(x[0])] + [
        x for x in flat if NON_TRAINABLE.search(x[0])
    ]


def wrap_single_file(
    single: Path,
    out: Path,
    *,
    replicas: int = 2,
    template: str = "model_1",
    outputs: Sequence[str] = ("output",),
    inputs: Sequence[str] = ("input_1",),
) -> None:
    """Write the parallel checkpoint that multi_gpu_model would have saved for ``single``."""
    names, weights, cfg = read_single(single)
    slices = [f"lambda_{100 + i}" for i in range(replicas * len(inputs))]
    nested = nested_order(names, weights)
    with h5py.File(single, "r") as src, h5py.File(out, "w") as f:
        full = "model_weights" in src
        root = f.create_group("model_weights") if full else f
        layer_names = [*inputs, *slices, template, *outputs]
        write_attr_list(root, "layer_names", layer_names)
        for k in ("backend", "keras_version"):
            if k in src.attrs:
                f.attrs[k] = src.attrs[k]
                if full:
                    root.attrs[k] = src.attrs[k]
        for n in [*inputs, *slices, *outputs]:
            write_attr_list(root.create_group(n), "weight_names", [])
        tg = root.create_group(template)
        write_attr_list(tg, "weight_names", [w for w, _ in nested])
        sroot = src["model_weights"] if full else src
        by_name = {w: (n, w) for n in names for w, _ in weights[n]}
        for w, _ in nested:
            n, _ = by_name[w]
            parent = tg.require_group(w.rsplit("/", 1)[0]) if "/" in w else tg
            src.copy(sroot[n][w], parent, name=w.rsplit("/", 1)[-1])
        if full:
            layers: list[dict[str, Any]] = [
                {"class_name": "InputLayer", "name": i, "config": {"name": i}, "inbound_nodes": []}
                for i in inputs
            ]
            for r in range(replicas):
                for j, i in enumerate(inputs):
                    s = slices[r * len(inputs) + j]
                    layers.append(
                        {
                            "class_name": "Lambda",
                            "name": s,
                            "config": {"name": s, "function": ["AAAA", None, None]},
                            "inbound_nodes": [[[i, 0, 0, {}]]],
                        }
                    )
            layers.append(
                {
                    "class_name": cfg["class_name"],
                    "name": template,
                    "config": cfg["config"],
                    "inbound_nodes": [
                        [[slices[r * len(inputs) + j], 0, 0, {}] for j in range(len(inputs))]
                        for r in range(replicas)
                    ],
                }
            )
            for o in outputs:
                layers.append(
                    {
                        "class_name": "Concatenate",
                        "name": o,
                        "config": {"name": o, "axis": 0},
                        "inbound_nodes": [[[template, r, 0, {}] for r in range(replicas)]],
                    }
                )
            pcfg = {"class_name": "Model", "config": {"name": "model_2", "layers": layers}}
            f.attrs["model_config"] = json.dumps(pcfg).encode()
            if "training_config" in src.attrs:
                f.attrs["training_config"] = src.attrs["training_config"]
            if "optimizer_weights" in src:
                src.copy(src["optimizer_weights"], f, name="optimizer_weights")
