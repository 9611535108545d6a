"""The conversion pipeline: sniff → read → choose template and layout → writer → verify → rename.

Every format reads into one :class:`~ckptfix.checkpoint.Checkpoint` and writes out of one
(:mod:`ckptfix.formats`), so this module never branches on a format: it asks the registry for
the reader of the source and the writer of the destination (by its name), checks that every
option given is one they support, writes into a temporary file beside the destination,
verifies that file with :mod:`ckptfix.storage` (tensor by tensor, and read back by its own
format's reader), and only then renames it into place.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

from . import formats
from .checkpoint import BundleLocation, Checkpoint, Layer, TensorRef, weights_in_order
from .deadline import DEFAULT_TIMEOUT, resolve_timeout, run_isolated
from .errors import (
    CkptfixError,
    CorruptCheckpointError,
    LayoutUnknownError,
    VerificationError,
)
from .formats.base import (
    Format,
    LiveModel,
    Planned,
    ProgressCallback,
    ReadOptions,
    WriteOptions,
    WrittenTensor,
    check_options,
)
from .h5util import damaged_file_errors
from .layout import MAKE_EXACT, as_shapes
from .output import atomic_destination, check_self_contained, discard_temps_of
from .report import ConversionResult, VerificationResult, output_path
from .storage import (
    SOURCE_CRC_FAILED,
    CopyRecord,
    TensorPair,
    compare_pairs,
    stray_datasets,
    stray_entries,
)


def read_checkpoint(
    path: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: LiveModel | None = None,
    exact: bool = False,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Checkpoint:
    """Read any supported checkpoint into the format-neutral :class:`Checkpoint` (metadata only).

    Args:
        path: the checkpoint (any format :func:`ckptfix.formats.sniff` recognises).
        template: the nested model to lift out, by name, when there are several.
        reference: a layout reference for Keras 2 weights-only files (a ``model.to_json()``
            file, or a ``.h5`` saved from the template).
        model: a live Keras model built like the template, for an exact layout.
        exact: refuse a layout that would only be inferred from weight names.
        timeout: seconds the file may be read without progress, in a worker process (see
            :mod:`ckptfix.deadline`); None or 0 reads it in this process, without a deadline.

    Raises:
        NotACheckpointError, CorruptCheckpointError, UnsupportedFormatError: bad input.
        DeadlineExceededError: reading made no progress for ``timeout`` seconds.
        OptionNotSupportedError: an option this file's format does not support.
        TemplateNotFoundError: ``template`` names no nested model of the file.
    """
    return run_isolated(
        _read,
        (path,),
        {"template": template, "reference": reference, "model": as_shapes(model), "exact": exact},
        timeout=resolve_timeout(timeout),
        subject=path,
    )


def _read(
    path: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: LiveModel | None = None,
    exact: bool = False,
) -> Checkpoint:
    p = Path(path)
    fmt, fid = formats.sniff(p)
    options = ReadOptions(template=template, reference=reference, model=model, exact=exact)
    check_options(fmt.name, fmt.read_options, options.given(), _why_not(fmt))
    with damaged_file_errors(p):
        return fmt.read(p, fid, options)


def _why_not(fmt: Format) -> str:
    if fmt.family == "keras3":
        return "a Keras 3 file records its layout exactly by object paths"
    return "it does not apply to this format"


def convert_checkpoint(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: LiveModel | None = None,
    exact: bool = False,
    infer: bool | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> ConversionResult:
    """Rewrite a parallel (or wrapped) checkpoint as the single template model's checkpoint.

    The destination's name picks the format written (``.h5``/``.hdf5``: Keras 2,
    ``.weights.h5`` and ``.keras``: Keras 3), as Keras picks its loader by suffix.

    Args:
        src: the parallel checkpoint (Keras 2 ``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` or
            ``.keras``). Never modified.
        dst: where to write the single-model checkpoint. ``None``: ``X.single.<suffix>``
            beside the source (:func:`ckptfix.report.suggested_output`); an existing folder:
            the source's name inside it, as ``cp`` does.
        template: the nested model to lift out, by its layer name, when there are several.
        reference: an exact layout for Keras 2 weights-only files: a single-model ``.h5``
            saved from the template, a full-model ``.h5``, or a ``model.to_json()`` file.
        model: a live Keras model built like the template (exact layout; needs TensorFlow),
            or its :class:`~ckptfix.layout.ModelShapes`.
        exact: refuse a layout only inferred from weight names (a Keras 2 weights-only file
            without ``reference`` or ``model``). By default such a layout is inferred, checked,
            and reported as ``layout="inferred"`` with a warning saying how to make it exact;
            orders the file shows to be unknowable are refused either way.
        infer: deprecated: inference is the default; ``infer=False`` means ``exact=True``.
        force: replace an existing ``dst`` (never the source itself).
        progress: called as ``progress(done_bytes, total_bytes)`` while writing.
        timeout: seconds the conversion may go without progress (copying and comparing
            tensor bytes is progress; reading, rewriting and verifying the file's structure
            is not) before ``src`` is refused as damaged. The whole conversion runs in a
            worker process (:mod:`ckptfix.deadline`), killed at the deadline: HDF5 can loop
            forever on a crafted file, where nothing in Python could interrupt it. None or 0
            converts in this process, without a deadline.

    Returns:
        A :class:`ConversionResult` saying what was written and that it was verified.

    Raises:
        NothingToConvertError: ``src`` is already a single model (nothing written).
        AmbiguousTemplateError, LayoutError: refused; the message says how to make it exact.
        NotACheckpointError, CorruptCheckpointError, UnsupportedFormatError: bad input.
        DeadlineExceededError: no progress for ``timeout`` seconds (nothing written).
        OptionNotSupportedError: an option the source's or destination's format does not take.
        OutputError: the destination cannot be written. VerificationError: a bad write.

    Example:
        >>> import ckptfix
        >>> r = ckptfix.convert_checkpoint("parallel.h5", "single.h5")  # doctest: +SKIP
        >>> r.template, r.replicas, r.layout  # doctest: +SKIP
        ('model_1', 2, 'exact')
    """
    exact = exact or infer is False
    return run_isolated(
        _convert,
        (src, dst),
        {
            "template": template,
            "reference": reference,
            "model": as_shapes(model),
            "exact": exact,
            "force": force,
        },
        timeout=resolve_timeout(timeout),
        subject=src,
        progress=progress,
        cleanup=functools.partial(discard_temps_of, _output_folder(src, dst)),
    )


def _output_folder(src: str | Path, dst: str | Path | None) -> Path:
    """The folder a conversion writes its temporaries in (see :func:`output_path`)."""
    if dst is None:
        return Path(src).absolute().parent
    d = Path(dst)
    return d if d.is_dir() else d.absolute().parent


def _convert(
    src: str | Path,
    dst: str | Path | None,
    *,
    template: str | None,
    reference: str | Path | None,
    model: LiveModel | None,
    exact: bool,
    force: bool,
    progress: ProgressCallback | None = None,
) -> ConversionResult:
    start = time.perf_counter()
    ck = _read(src, template=template, reference=reference, model=model, exact=exact)
    dst = output_path(ck, dst)
    writer, wid = formats.writer_for(dst, ck)
    wopts = WriteOptions(progress=progress)
    check_options(writer.name, writer.write_options, _given_write(wopts), "writers take progress=")
    require_convertible(ck, writer, exact)
    suffixes, protect = output_files(writer, ck), input_files(ck)
    with (
        atomic_destination(src, dst, force, suffixes=suffixes, protect=protect) as tmp,
        damaged_file_errors(src),
    ):
        written = writer.write(ck, tmp, wopts)
        if suffixes == ("",):  # one HDF5 file or zip (a TF checkpoint has no links to follow)
            check_self_contained(tmp)
        planned = (written.tensors, written.optimizer)
        check = verify_output(ck, writer, wid, planned, tmp, written.copy_record)
        if not check.ok:
            damaged = [m for m in check.mismatches if m.endswith(SOURCE_CRC_FAILED)]
            if damaged and len(damaged) == len(check.mismatches):
                raise CorruptCheckpointError(
                    f"expected every tensor of {Path(src).name} to match the crc32c its index "
                    f"records; found {len(damaged)} that do not (first: "
                    f"{damaged[0].split(':', 1)[0]}); the data shard is damaged, nothing was "
                    "written"
                )
            raise VerificationError(
                f"expected the written file to match the source; found {len(check.mismatches)} "
                f"problem(s) (first: {check.mismatches[0]}); nothing was written; "
                "please report this"
            )
    subject = ck.subject
    return ConversionResult(
        source=str(src),
        destination=str(dst),
        format=ck.format,
        template=subject.name,
        replicas=ck.pattern.replicas,
        layers=count_leaves(subject),
        tensors=check.tensors,
        bytes=check.bytes,
        layout="inferred" if ck.layout.status == "inferred" else "exact",
        layout_source=ck.layout.source or "paths",
        verified=True,
        optimizer_kept=bool(written.optimizer),
        full_model=written.full_model,
        seconds=time.perf_counter() - start,
        warnings=written.warnings,
        output_format=wid,
    )


def output_files(writer: Format, ck: Checkpoint) -> tuple[str, ...]:
    """The suffixes of the files a writer writes for one destination name, in commit order.

    One file (``("",)``) for every format but TensorFlow checkpoints (``.data-*``, ``.index``).
    """
    suffixes = getattr(writer, "output_suffixes", None)
    return tuple(suffixes(ck)) if callable(suffixes) else ("",)


def input_files(ck: Checkpoint) -> tuple[Path, ...]:
    """Every file a checkpoint consists of (a TF checkpoint: its index and data shards)."""
    files = getattr(formats.by_id(ck.format), "input_files", None)
    return tuple(files(ck)) if callable(files) else (Path(ck.path),)


def _given_write(options: WriteOptions) -> frozenset[str]:
    return frozenset({"progress"}) if options.progress is not None else frozenset()


def require_convertible(ck: Checkpoint, writer: Format, exact: bool = False) -> None:
    """Refuse what cannot be converted: no template (unless migrating), an unknown layout.

    Raises:
        NothingToConvertError, AmbiguousTemplateError: no template to lift out.
        LayoutError: the layout is unknown (or only inferred, with ``exact``).
    """
    if ck.template is None:
        migrating = writer.family != ck.family and ck.pattern.kind in ("single", "container")
        if not migrating and ck.pattern.refusal is not None:
            raise ck.pattern.refusal
    if ck.layout.status == "unknown" and ck.layout.refusal is not None:
        raise ck.layout.refusal
    if exact and ck.layout.status == "inferred":
        raise LayoutUnknownError(
            f"expected a known layout for {Path(ck.path).name} (exact=True); found it would only "
            f"be inferred from weight names; {MAKE_EXACT}"
        )


def count_leaves(layer: Layer) -> int:
    """Layers of a model that hold weights, nested models' layers counted one by one."""
    return sum(1 for _ in layer.leaves()) if layer.layers else 0


# --- verification -------------------------------------------------------------------------------


def verify_output(
    ck: Checkpoint,
    fmt: Format,
    fid: str,
    planned: Planned,
    out: Path,
    record: CopyRecord | None = None,
) -> VerificationResult:
    """Check that ``out`` holds exactly the ``planned`` tensors, each equal to its source.

    The file is read back by its own format's reader (so it is what Keras will see), every
    planned tensor is compared with its source by :func:`ckptfix.storage.compare_pairs`,
    nothing else may be stored, a Keras 2 file must list its weights in the planned load
    order, and the format checks its configs (:meth:`Format.check`).
    """
    tensors, optimizer = planned
    problems: list[str] = []
    try:
        with damaged_file_errors(out):
            back = fmt.read(out, fid, ReadOptions())
    except CkptfixError as exc:
        return _result(ck, out, tensors, optimizer, [f"unreadable output: {_first(exc)}"])
    refs = dict(_tensors_of(back))
    if optimizer and back.optimizer is None and fmt.family == "keras3":
        optimizer = ()  # a Keras 3 file saved without optimizer state loads with a fresh one
    pairs = []
    for t in tensors + optimizer:
        out_ref = refs.get(t.path)
        if out_ref is None:
            problems.append(f"{t.name}: missing from output")
        else:
            pairs.append(TensorPair(t.name, t.source, out_ref, t.how, t.derived))
    member = next((getattr(r.location, "member", None) for r in refs.values()), None)
    bundle_out = any(isinstance(r.location, BundleLocation) for r in refs.values())
    try:
        expected = {t.path for t in tensors + optimizer}
        stray = (
            stray_entries(out, expected)
            if bundle_out
            else stray_datasets(str(out), member, expected)
        )
        problems += [f"{p}: not in the template" for p in stray]
    except CkptfixError as exc:
        problems.append(f"unreadable output: {_first(exc)}")
    if back.family == "keras2":
        order = [_path(w.tensor) for w in weights_in_order(back.model)]
        if order != [t.path for t in tensors] and not problems:
            problems.append("layer order: the weights are not listed in the template's load order")
    problems += fmt.check(ck, back)
    cmp = compare_pairs(pairs, record)
    problems += cmp.mismatches
    return _result(ck, out, tensors, optimizer, problems)


def _result(
    ck: Checkpoint,
    out: Path,
    tensors: tuple[WrittenTensor, ...],
    optimizer: tuple[WrittenTensor, ...],
    problems: list[str],
) -> VerificationResult:
    return VerificationResult(
        source=ck.path,
        destination=str(out),
        tensors=len(tensors),
        bytes=sum(t.nbytes for t in tensors),
        ok=not problems,
        mismatches=tuple(problems),
        optimizer_tensors=len(optimizer),
    )


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__  # whole: never cut mid-word


def _path(ref: TensorRef) -> str:
    return str(getattr(ref.location, "path", ""))


def _tensors_of(ck: Checkpoint) -> Iterator[tuple[str, TensorRef]]:
    """Every stored tensor of a checkpoint's model and optimizer, by its path."""
    seen: set[str] = set()

    def visit(layer: Layer) -> Iterator[tuple[str, TensorRef]]:
        for w in layer.weights:
            p = _path(w.tensor)
            if p not in seen:
                seen.add(p)
                yield p, w.tensor
        for sub in layer.layers:
            yield from visit(sub)

    yield from visit(ck.model)
    for v in ck.optimizer.variables if ck.optimizer else ():
        yield _path(v.tensor), v.tensor


def verify_conversion(
    src: str | Path,
    dst: str | Path,
    *,
    template: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> VerificationResult:
    """Compare the template inside ``src`` with the converted file ``dst``, tensor by tensor.

    Every stored byte of both files is compared (in constant memory); a Keras 2 ``dst`` also
    serves as the layout of a weights-only ``src``, whose own file does not record it.

    Args:
        src: the parallel checkpoint.
        dst: the converted file.
        template: the nested model, when there are several.
        timeout: seconds without progress before the files are refused, as for
            :func:`convert_checkpoint`; None or 0: in this process, without a deadline.

    Returns:
        A :class:`VerificationResult`; ``ok`` is False with the mismatches listed when they
        differ (names, shapes, dtypes, storage or bytes).

    Raises:
        NotACheckpointError, CorruptCheckpointError: ``src`` or ``dst`` is missing, unreadable,
            truncated or damaged (bad input, not a mismatch).
        DeadlineExceededError: no progress for ``timeout`` seconds.
        NothingToConvertError: ``src`` is a single model (there is nothing to compare with).
    """
    return run_isolated(
        _verify,
        (src, dst),
        {"template": template},
        timeout=resolve_timeout(timeout),
        subject=src,
    )


def _verify(src: str | Path, dst: str | Path, *, template: str | None) -> VerificationResult:
    ck = _read(src, template=template)
    dst_path = Path(dst)
    fmt, fid = formats.sniff(dst_path)
    with damaged_file_errors(dst_path):
        fmt.read(dst_path, fid, ReadOptions())  # an unreadable dst is bad input, not a mismatch
    if (
        ck.template is not None
        and ck.family == "keras2"
        and fmt.family == "keras2"
        and ck.layout.source not in ("config", "model")
    ):
        # The file does not record the template's layout: check dst's as the reference.
        ck = _read(src, template=template, reference=dst_path)
        if ck.layout.status == "unknown":
            why = ck.layout.note or "its layers do not match the source's template"
            return _result(ck, dst_path, (), (), [f"layout: {why}"])
    require_convertible(ck, fmt)
    return verify_output(ck, fmt, fid, fmt.plan(ck), dst_path)
