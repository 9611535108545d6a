"""Keras 3 ``.keras`` archives: a zip of ``config.json``, ``metadata.json``, ``model.weights.h5``.

Converting lifts the template's config out of the wrapper's ``config.json`` (the wrapper's
slices, merges and Lambda layers are gone, the compile config is kept), re-roots its weights
subtree (:mod:`.keras3_weights`) and keeps the optimizer variables that belong to it, so that
``keras.models.load_model(out)`` works in safe mode. The config is read as JSON data only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..errors import CorruptCheckpointError, NotACheckpointError
from ..h5util import check_global_heaps
from ..output import temp_path_for
from ..report import CheckpointReport, ConversionResult, VerificationResult
from . import keras3_weights as kw

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
_MODEL_CLASSES = ("Functional", "Sequential", "Model")


@dataclass(frozen=True)
class Archive:
    """The JSON parts of a ``.keras`` archive and its weights file's bytes."""

    config: dict[str, Any]
    metadata: dict[str, Any]
    weights: bytes
    others: tuple[str, ...]


def read_archive(path: Path) -> Archive:
    """Read a ``.keras`` zip (configs as data, weights as bytes); refuse what is not one."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if CONFIG not in names:
                raise NotACheckpointError(
                    f"expected a Keras archive (a zip with {CONFIG}); found a zip without it in "
                    f"{path.name} ({', '.join(names[:4]) or 'empty'}); check the file"
                )
            if WEIGHTS not in names:
                raise CorruptCheckpointError(
                    f"expected {WEIGHTS} in the Keras archive {path.name}; found only "
                    f"{', '.join(names[:4])}; re-save the model with model.save('x.keras')"
                )
            for info in zf.infolist():  # a zip bomb would be read into memory below
                if info.file_size > max(100 * info.compress_size, 64 << 20):
                    raise CorruptCheckpointError(
                        f"expected {info.filename} of {path.name} to expand like Keras data; "
                        f"found {info.compress_size:,} bytes expanding to {info.file_size:,}; "
                        "refusing (a zip bomb or a damaged archive)"
                    )
            config = _json(zf.read(CONFIG), CONFIG, path)
            metadata = _json(zf.read(METADATA), METADATA, path) if METADATA in names else {}
            weights = zf.read(WEIGHTS)
            others = tuple(n for n in names if n not in (CONFIG, METADATA, WEIGHTS))
    except zipfile.BadZipFile as exc:
        raise NotACheckpointError(
            f"expected a .keras zip archive; found a file zipfile cannot read ({path.name}: "
            f"{exc}); check the file or the download"
        ) from exc
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise CorruptCheckpointError(
            f"expected a model config object in {CONFIG} of {path.name}; found "
            f"{type(config).__name__}; re-save the model with model.save('x.keras')"
        )
    return Archive(config, metadata if isinstance(metadata, dict) else {}, weights, others)


def _json(data: bytes, name: str, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"expected JSON in {name} of {path.name}; found text that does not parse ({exc}); "
            "the archive is damaged"
        ) from exc


def _open_weights(archive: Archive, path: Path) -> h5py.File:
    check_global_heaps(archive.weights, f"{WEIGHTS} of {path.name}")
    try:
        return h5py.File(io.BytesIO(archive.weights), "r")
    except OSError as exc:
        raise CorruptCheckpointError(
            f"expected an HDF5 {WEIGHTS} in {path.name}; found one HDF5 cannot open ({exc}); "
            "the archive is damaged"
        ) from exc


def _layer_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    layers = config.get("config", {}).get("layers", [])
    return [x for x in layers if isinstance(x, dict)] if isinstance(layers, list) else []


def _name(entry: dict[str, Any]) -> str | None:
    cfg = entry.get("config")
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name) if name is not None else entry.get("name")


def _is_model(entry: dict[str, Any]) -> bool:
    return entry.get("class_name") in _MODEL_CLASSES or bool(_layer_configs(entry))


def _order(config: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(n, e.get("class_name")) for e in _layer_configs(config) if (n := _name(e))]


def _nested_orders(config: dict[str, Any]) -> dict[str, list[tuple[str, str | None]]]:
    return {
        n: _order(e) for e in _layer_configs(config) if _is_model(e) and (n := _name(e)) is not None
    }


def variable_order(
    root: h5py.Group, config: dict[str, Any], nested: kw.NestedModel
) -> list[tuple[str, bool]]:
    """The wrapper's variables in Keras ``weights`` order: (dataset path, in the template)."""
    out: list[tuple[str, bool]] = []

    def own(group: h5py.Group, prefix: str, inside: bool) -> None:
        v = group.get("vars")
        if isinstance(v, h5py.Group):
            out.extend((f"{prefix}vars/{k}", inside) for k in kw._numeric_keys(v))
        for key in sorted(group):
            if key in ("vars", "layers") or (prefix == "" and key == "optimizer"):
                continue
            if isinstance(group[key], h5py.Group):
                own(group[key], f"{prefix}{key}/", inside)

    def walk(group: h5py.Group, cfg: dict[str, Any], prefix: str, inside: bool) -> None:
        own(group, prefix, inside)
        layers = group.get("layers")
        if not isinstance(layers, h5py.Group):
            return
        by_name = {name: seg for seg, name in kw.top_layers(group)}
        for entry in _layer_configs(cfg):
            seg = by_name.get(_name(entry) or "")
            if seg is None:
                continue
            sub_inside = inside or (prefix == "" and seg == nested.segment)
            walk(layers[seg], entry, f"{prefix}layers/{seg}/", sub_inside)

    walk(root, config, "", False)
    return out


def _is_schedule(config: dict[str, Any]) -> bool | None:
    opt = (config.get("compile_config") or {}).get("optimizer")
    if not isinstance(opt, dict):
        return None
    return isinstance((opt.get("config") or {}).get("learning_rate"), dict)


def template_config(config: dict[str, Any], nested: kw.NestedModel) -> dict[str, Any]:
    """The template's own ``config.json``: its nested entry, plus the wrapper's compile config."""
    for entry in _layer_configs(config):
        if _name(entry) == nested.name and _is_model(entry):
            keys = ("module", "class_name", "config", "registered_name", "build_config")
            out = {k: entry[k] for k in keys if k in entry}
            if "compile_config" in config:
                out["compile_config"] = config["compile_config"]
            return out
    raise CorruptCheckpointError(
        f"expected the config of the nested model {nested.name!r} in {CONFIG}; found no such "
        "layer; the archive's config and weights disagree"
    )


def _plan(
    archive: Archive, f: h5py.File, path: Path, template: str | None
) -> tuple[kw.NestedModel, kw.OptimizerPlan]:
    nested = kw.choose_template(kw.find_nested(f), template, path)
    order = variable_order(f, archive.config, nested)
    plan = kw.plan_optimizer(f, nested, order, _is_schedule(archive.config))
    return nested, plan


ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: entries carry no wall-clock time


def _fixed_time(name: str) -> zipfile.ZipInfo:
    return zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)


def write_conversion(src: Path, tmp: Path, fmt: str, opts: Any) -> ConversionResult:
    """Write the template's ``.keras`` archive to ``tmp``."""
    archive = read_archive(src)
    weights_tmp = temp_path_for(tmp.parent / "model.weights.h5")
    try:
        with _open_weights(archive, src) as f:
            nested, plan = _plan(archive, f, src, opts.template)
            config = template_config(archive.config, nested)
            with h5py.File(weights_tmp, "w") as out:
                tensors, nbytes = kw.write_weights(f, out, nested, plan)
            replicas = kw._replicas(f, nested)
            layers = kw._weighted_layers(f["layers"][nested.segment])
        # The source's metadata (its date_saved too) and fixed entry times: the same input
        # always gives the same bytes (a batch run with any --jobs, a rerun, a checksum).
        metadata = dict(archive.metadata)
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(_fixed_time(METADATA), json.dumps(metadata))
            zf.writestr(_fixed_time(CONFIG), json.dumps(config))
            info = zipfile.ZipInfo.from_file(weights_tmp, WEIGHTS)
            info.date_time = ZIP_DATE_TIME
            with open(weights_tmp, "rb") as fh, zf.open(info, "w") as dest:
                shutil.copyfileobj(fh, dest, 1 << 20)
    finally:
        if weights_tmp.exists():
            os.unlink(weights_tmp)
    others = archive.others
    extra = (f"archive entries not carried over: {', '.join(others[:5])}",) if others else ()
    return kw.conversion_result(
        src,
        tmp,
        fmt,
        nested,
        plan,
        replicas=replicas,
        layers=layers,
        tensors=tensors,
        nbytes=nbytes,
        full_model=True,
        warnings=extra,
    )


def verify_conversion(src: Path, dst: Path, *, template: str | None = None) -> VerificationResult:
    """Compare the template inside the ``src`` archive with the single-model archive ``dst``."""
    a, b = read_archive(src), read_archive(dst)
    with _open_weights(a, src) as f, _open_weights(b, dst) as g:
        nested, plan = _plan(a, f, src, template)
        if plan.keep is not None and "optimizer" not in g:
            plan = kw.OptimizerPlan(None)
        tensors, nbytes, problems = kw.compare_weights(f, g, nested, plan)
    if b.config.get("config") != template_config(a.config, nested).get("config"):
        problems.append(f"{CONFIG}: not the template's config")
    return VerificationResult(
        source=str(src),
        destination=str(dst),
        tensors=tensors,
        bytes=nbytes,
        ok=not problems,
        mismatches=tuple(problems),
    )


def inspect_checkpoint(path: Path, fmt: str, opts: Any = None) -> CheckpointReport:
    """Describe a ``.keras`` archive: its nested models, layers and optimizer.

    ``opts.template`` picks one of several nested models to describe.
    """
    archive = read_archive(path)
    entries = _layer_configs(archive.config)
    slices = [n for e in entries if e.get("class_name") == "Lambda" and (n := _name(e))]
    merges = [
        n
        for e in entries
        if e.get("class_name") == "Concatenate"
        and (e.get("config") or {}).get("axis") == 0
        and (n := _name(e))
    ]
    opt = (archive.config.get("compile_config") or {}).get("optimizer")
    opt_class = opt.get("class_name") if isinstance(opt, dict) else None
    notes = []
    if slices:
        notes.append(
            f"{len(slices)} Lambda layers hold Python bytecode or function names; they are "
            "never run and are dropped by convert"
        )
    with _open_weights(archive, path) as f:
        return kw.build_report(
            path,
            fmt,
            f,
            keras_version=archive.metadata.get("keras_version"),
            order=_order(archive.config),
            nested_order=_nested_orders(archive.config),
            optimizer_class=opt_class,
            slices=slices,
            merges=merges,
            notes=notes,
            choice=getattr(opts, "template", None),
        )
