"""Keras 3 ``.keras`` archives: a zip of ``config.json``, ``metadata.json``, ``model.weights.h5``.

Reading takes the configs as JSON data (never code) and opens the weights member in place
(Keras stores it uncompressed), so nothing is read into memory whole. Converting lifts the
template's config out of the wrapper's ``config.json`` (the wrapper's slices, merges and
Lambda layers are gone, the compile config is kept), re-roots its weights subtree
(:mod:`.keras3_weights`) and keeps the optimizer variables that belong to it, so that
``keras.models.load_model(out)`` works in safe mode.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py

from ..checkpoint import Checkpoint, Family, JSONObject
from ..errors import CorruptCheckpointError, NotACheckpointError, UnsupportedConversionError
from ..h5util import open_h5_member
from ..output import temp_path_for
from . import KERAS3_ARCHIVE, is_zip
from . import keras3_weights as kw
from .base import Planned, Probe, ReadOptions, WriteOptions, Written

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
_MODEL_CLASSES = ("Functional", "Sequential", "Model")
#: Largest config.json / metadata.json read into memory (real ones are KBs to a few MB).
_MAX_JSON = 256 << 20
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # zip's epoch: entries carry no wall-clock time


def read_json_members(path: Path) -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    """``config.json`` and ``metadata.json`` of a ``.keras`` zip, and its other members.

    Raises:
        NotACheckpointError: not a zip, or a zip without ``config.json``.
        CorruptCheckpointError: a member that is missing, damaged or expands like a zip bomb.
    """
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
            for info in zf.infolist():  # a zip bomb would be inflated below
                if info.file_size > max(100 * info.compress_size, 64 << 20):
                    raise CorruptCheckpointError(
                        f"expected {info.filename} of {path.name} to expand like Keras data; "
                        f"found {info.compress_size:,} bytes expanding to {info.file_size:,}; "
                        "refusing (a zip bomb or a damaged archive)"
                    )
                if info.filename in (CONFIG, METADATA) and info.file_size > _MAX_JSON:
                    raise CorruptCheckpointError(
                        f"expected a {info.filename} of a few MB in {path.name}; found "
                        f"{info.file_size:,} bytes; refusing (a damaged or forged archive)"
                    )
            config = _json(zf.read(CONFIG), CONFIG, path)
            metadata = _json(zf.read(METADATA), METADATA, path) if METADATA in names else {}
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
    return config, metadata if isinstance(metadata, dict) else {}, others


def _json(data: bytes, name: str, path: Path) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptCheckpointError(
            f"expected JSON in {name} of {path.name}; found text that does not parse ({exc}); "
            "the archive is damaged"
        ) from exc


def _is_model(entry: JSONObject) -> bool:
    return entry.get("class_name") in _MODEL_CLASSES or bool(kw.config_entries(entry))


def variable_order(
    root: h5py.Group, config: JSONObject, nested: kw.NestedModel
) -> list[tuple[str, bool]]:
    """The wrapper's variables in Keras ``weights`` order: (dataset path, in the template)."""
    out: list[tuple[str, bool]] = []

    def own(group: h5py.Group, prefix: str, inside: bool) -> None:
        v = group.get("vars")
        if isinstance(v, h5py.Group):
            out.extend((f"{prefix}vars/{k}", inside) for k in kw.numeric_keys(v))
        for key in sorted(group):
            if key in ("vars", "layers") or (prefix == "" and key == "optimizer"):
                continue
            if isinstance(group[key], h5py.Group):
                own(group[key], f"{prefix}{key}/", inside)

    def walk(group: h5py.Group, cfg: JSONObject, prefix: str, inside: bool) -> None:
        own(group, prefix, inside)
        layers = group.get("layers")
        if not isinstance(layers, h5py.Group):
            return
        by_name = {name: seg for seg, name in kw.top_layers(group)}
        for entry in kw.config_entries(cfg):
            seg = by_name.get(kw.entry_name(entry) or "")
            if seg is None:
                continue
            sub_inside = inside or (prefix == "" and seg == nested.segment)
            walk(layers[seg], entry, f"{prefix}layers/{seg}/", sub_inside)

    walk(root, config, "", False)
    return out


def _is_schedule(config: JSONObject) -> bool | None:
    opt = (config.get("compile_config") or {}).get("optimizer")
    if not isinstance(opt, dict):
        return None
    return isinstance((opt.get("config") or {}).get("learning_rate"), dict)


def template_config(config: JSONObject, template: str) -> dict[str, Any]:
    """The template's own ``config.json``: its nested entry, plus the wrapper's compile config.

    Raises:
        CorruptCheckpointError: the config has no model entry of that name.
    """
    for entry in kw.config_entries(config):
        if kw.entry_name(entry) == template and _is_model(entry):
            keys = ("module", "class_name", "config", "registered_name", "build_config")
            out = {k: entry[k] for k in keys if k in entry}
            if "compile_config" in config:
                out["compile_config"] = config["compile_config"]
            return out
    raise CorruptCheckpointError(
        f"expected the config of the nested model {template!r} in {CONFIG}; found no such "
        "layer; the archive's config and weights disagree"
    )


def read(path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
    """Read a ``.keras`` archive into a Checkpoint (configs as data, weights in place)."""
    config, metadata, others = read_json_members(path)
    entries = kw.config_entries(config)
    slices = [n for e in entries if e.get("class_name") == "Lambda" and (n := kw.entry_name(e))]
    merges = [
        n
        for e in entries
        if e.get("class_name") == "Concatenate"
        and (e.get("config") or {}).get("axis") == 0
        and (n := kw.entry_name(e))
    ]
    compile_config = config.get("compile_config")
    opt = (compile_config or {}).get("optimizer") if isinstance(compile_config, dict) else None
    opt_class = opt.get("class_name") if isinstance(opt, dict) else None
    notes: list[str] = []
    if slices:
        notes.append(
            f"{len(slices)} Lambda layers hold Python bytecode or function names; they are "
            "never run and are dropped by convert"
        )
    if others:
        notes.append(f"archive entries not carried over: {', '.join(others[:5])}")
    with open_h5_member(path, WEIGHTS) as (f, _disk, _start):
        ck = kw.read_tree(
            f,
            path,
            fmt,
            options.template,
            member=WEIGHTS,
            config=config,
            order_for=lambda nested: variable_order(f, config, nested),
            schedule=_is_schedule(config),
            slices=slices,
            merges=merges,
            compile_config=compile_config if isinstance(compile_config, dict) else None,
            metadata=metadata,
            optimizer_class=opt_class if isinstance(opt_class, str) else None,
            keras_version=metadata.get("keras_version"),
        )
    return replace(ck, notes=tuple(notes))


def _fixed_time(name: str) -> zipfile.ZipInfo:
    return zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)


def _zip_plan_members(
    tmp: Path, metadata: str, config: str, weights_tmp: Path
) -> None:
    """The archive: metadata.json, config.json, model.weights.h5 (stored, fixed times)."""
    with zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(_fixed_time(METADATA), metadata)
        zf.writestr(_fixed_time(CONFIG), config)
        info = zipfile.ZipInfo.from_file(weights_tmp, WEIGHTS)
        info.date_time = ZIP_DATE_TIME
        with open(weights_tmp, "rb") as fh, zf.open(info, "w") as dest:
            shutil.copyfileobj(fh, dest, 1 << 20)


def write_migration(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """A Keras 2 full model (or weights with a config) as a Keras 3 ``.keras`` archive.

    The plan (:mod:`ckptfix.keras3_migration`) says where each tensor goes and what the
    configs hold; the weights are written to a temporary HDF5 file beside ``tmp`` (tensors
    copied by HDF5 in constant memory) and stored uncompressed in the zip, as Keras does.
    """
    from ..keras3_migration import config_json, metadata_json

    plan = kw.migration_plan(ck, full_model=True)
    weights_tmp = temp_path_for(tmp.parent / WEIGHTS)
    try:
        with h5py.File(weights_tmp, "w") as out:
            kw.write_plan(plan, out, options)
        _zip_plan_members(tmp, metadata_json(plan), config_json(plan), weights_tmp)
    finally:
        if weights_tmp.exists():
            os.unlink(weights_tmp)
    return Written(
        tmp,
        KERAS3_ARCHIVE,
        plan.tensors,
        plan.optimizer,
        member=WEIGHTS,
        full_model=True,
        warnings=plan.warnings,
        notes=plan.notes,
    )


def write(ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
    """Write the template's ``.keras`` archive to ``tmp`` (a Keras 2 source: migrated)."""
    if ck.family == "keras2":
        return write_migration(ck, tmp, options)
    if ck.family != "keras3" or ck.model_config is None:
        raise UnsupportedConversionError(
            f"expected a Keras 3 .keras source for a .keras output; found {ck.format}; "
            "name the output like the source's format"
        )
    subject = ck.subject
    config = (
        template_config(ck.model_config, subject.name)
        if ck.template is not None
        else dict(ck.model_config)
    )
    tensors, optimizer = kw.plan_tensors(ck)
    total = sum(t.nbytes for t in tensors + optimizer)
    if options.progress is not None:
        options.progress(0, total)
    weights_tmp = temp_path_for(tmp.parent / WEIGHTS)
    try:
        with open_h5_member(Path(ck.path), WEIGHTS) as (f, _disk, _start):
            with h5py.File(weights_tmp, "w") as out:
                kw.write_tree(f, out, ck)
        # The source's metadata (its date_saved too) and fixed entry times: the same input
        # always gives the same bytes (a batch run with any --jobs, a rerun, a checksum).
        _zip_plan_members(
            tmp, json.dumps(dict(ck.metadata or {})), json.dumps(config), weights_tmp
        )
    finally:
        if weights_tmp.exists():
            os.unlink(weights_tmp)
    if options.progress is not None:
        options.progress(total, total)
    notes = tuple(n for n in ck.notes if n.startswith("archive entries not carried over"))
    return Written(
        tmp,
        KERAS3_ARCHIVE,
        tensors,
        optimizer,
        member=WEIGHTS,
        full_model=True,
        warnings=kw.warnings(ck) + notes,
    )


def check_migration(source: Checkpoint, output: Checkpoint) -> list[str]:
    """A migrated archive holds the plan's config.json, metadata.json and weights tree."""
    plan = kw.migration_plan(source, full_model=True)
    problems = []
    config, metadata, others = read_json_members(Path(output.path))
    want = json.loads(json.dumps(plan.config))  # as JSON reads it back (tuples are lists)
    if config != want:
        keys = sorted(k for k in set(config) | set(want) if config.get(k) != want.get(k))
        problems.append(f"{CONFIG}: differs from the translation ({', '.join(keys)})")
    if metadata != json.loads(json.dumps(plan.metadata)):
        problems.append(f"{METADATA}: differs from the plan")
    if others:
        problems.append(f"zip: members not planned: {', '.join(others[:5])}")
    with open_h5_member(Path(output.path), WEIGHTS) as (f, _disk, _start):
        problems += kw.check_migration(plan, output, f)
    return problems + _crc_problems(output)


def _crc_problems(output: Checkpoint) -> list[str]:
    try:  # Keras reads every member through zipfile, which checks its CRC
        with zipfile.ZipFile(output.path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        bad = f"the archive ({exc})"
    if bad is not None:
        return [f"zip: {bad} fails its CRC check (Keras would refuse to load it)"]
    return []


def check(source: Checkpoint, output: Checkpoint) -> list[str]:
    """The output's ``config.json`` is the template's own config; its weights as for Keras 3."""
    if output.family != "keras3":
        return [f"format: {output.format} is not a Keras 3 file"]
    if source.family == "keras2":
        return check_migration(source, output)
    problems = kw.check(source, output)
    if source.model_config is None:
        return problems
    want = (
        template_config(source.model_config, source.subject.name)
        if source.template is not None
        else source.model_config
    )
    got = output.model_config or {}
    if got.get("config") != want.get("config"):
        problems.append(f"{CONFIG}: not the template's config")
    return problems + _crc_problems(output)


class Keras3Archive:
    """Keras 3 ``.keras`` archives."""

    name = "Keras 3 .keras archive"
    family: Family = "keras3"
    ids: tuple[str, ...] = (KERAS3_ARCHIVE,)
    read_options = frozenset({"template", "exact"})  # exact: always, by paths
    write_options = frozenset({"progress"})

    def sniff(self, probe: Probe) -> str | None:
        return KERAS3_ARCHIVE if probe.h5_keys is None and is_zip(probe) else None

    def read(self, path: Path, fmt: str, options: ReadOptions) -> Checkpoint:
        return read(path, fmt, options)

    def writes(self, dst: Path, ck: Checkpoint) -> str | None:
        return KERAS3_ARCHIVE if dst.name.lower().endswith(".keras") else None

    def accepts(self, ck: Checkpoint) -> bool:
        return ck.family == "keras2" or (ck.family == "keras3" and ck.model_config is not None)

    def plan(self, ck: Checkpoint) -> Planned:
        if ck.family == "keras2":
            plan = kw.migration_plan(ck, full_model=True)
            return plan.tensors, plan.optimizer
        return kw.plan_tensors(ck)

    def write(self, ck: Checkpoint, tmp: Path, options: WriteOptions) -> Written:
        return write(ck, tmp, options)

    def check(self, source: Checkpoint, output: Checkpoint) -> list[str]:
        return check(source, output)

    def suggest(self, path: Path) -> Path:
        stem = path.name[: -len(".keras")] if path.name.endswith(".keras") else path.stem
        return path.with_name(stem + ".single.keras")


FORMAT = Keras3Archive()
