"""Conversion pipeline: read → detect → layout → plan → write → verify → atomic rename.

:func:`convert_checkpoint` picks the format module, runs it into a temporary file beside the
destination, verifies that file against the source, and only then renames it into place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import formats
from .errors import OutputError, VerificationError
from .h5util import damaged_file_errors
from .output import atomic_destination, check_self_contained
from .report import ConversionResult, VerificationResult

#: ``progress(done_bytes, total_bytes)``, called while tensors are written.
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class ConvertOptions:
    """Options that every format's converter understands."""

    template: str | None = None  # name of the nested model to lift out (several: required)
    reference: str | Path | None = None  # single-model .h5, full-model .h5 or JSON config
    model: Any = None  # a live Keras model (the template), for an exact layout
    infer: bool = False  # allow a layout inferred from weight names (weights-only files)
    progress: ProgressCallback | None = None


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
    model: Any = None,
    infer: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ConversionResult:
    """Rewrite a parallel (or wrapped) checkpoint as the single template model's checkpoint.

    Args:
        src: the parallel checkpoint (Keras 2 ``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` or
            ``.keras``). Never modified.
        dst: where to write the single-model checkpoint (same format family as ``src``).
        template: the nested model to lift out, by its layer name, when there are several.
        reference: an exact layout for Keras 2 weights-only files: a single-model ``.h5``
            saved from the template, a full-model ``.h5``, or a ``model.to_json()`` file.
        model: a live Keras model built like the template (exact layout; needs TensorFlow).
        infer: for a Keras 2 weights-only file with no ``reference`` or ``model``, rebuild the
            layout from weight names (``layout="inferred"``). Off by default: such a file does
            not record the template's layers, and a model nested inside the template cannot be
            seen in it. Orders that are visibly unknowable are refused even with ``infer``.
        force: replace an existing ``dst`` (never the source itself).
        progress: called as ``progress(done_bytes, total_bytes)`` while writing.

    Returns:
        A :class:`ConversionResult` saying what was written and that it was verified.

    Raises:
        NothingToConvertError: ``src`` is already a single model (nothing written).
        AmbiguousTemplateError, LayoutError: refused; the message says how to make it exact.
        NotACheckpointError, CorruptCheckpointError, UnsupportedFormatError: bad input.
        OutputError: the destination cannot be written. VerificationError: a bad write.

    Example:
        >>> import ckptfix
        >>> r = ckptfix.convert_checkpoint("parallel.h5", "single.h5")  # doctest: +SKIP
        >>> r.template, r.replicas, r.layout  # doctest: +SKIP
        ('model_1', 2, 'exact')
    """
    start = time.perf_counter()
    opts = ConvertOptions(
        template=template, reference=reference, model=model, infer=infer, progress=progress
    )
    fmt = formats.detect_format(src)
    check_output_name(fmt, dst)
    module = _module_for(fmt)
    with atomic_destination(src, dst, force) as tmp, damaged_file_errors(src):
        result: ConversionResult = module.write_conversion(Path(src), tmp, fmt, opts)
        check_self_contained(tmp)
        check = module.verify_conversion(Path(src), tmp, template=result.template)
        if not check.ok:
            raise VerificationError(
                f"expected the written file to match the source; found {len(check.mismatches)} "
                f"mismatching tensors (first: {check.mismatches[0]}); nothing was written; "
                "please report this"
            )
    return replace(
        result,
        destination=str(dst),
        verified=True,
        seconds=time.perf_counter() - start,
    )


def verify_conversion(
    src: str | Path, dst: str | Path, *, template: str | None = None
) -> VerificationResult:
    """Compare the template inside ``src`` with the single-model file ``dst``, tensor by tensor.

    Returns a :class:`VerificationResult`; ``ok`` is False with the mismatches listed when they
    differ (names, shapes, dtypes or bytes).
    """
    fmt = formats.detect_format(src)
    with damaged_file_errors(src):
        return _module_for(fmt).verify_conversion(Path(src), Path(dst), template=template)


def check_output_name(fmt: str, dst: str | Path) -> None:
    """Refuse a destination name that Keras would read as another format.

    Keras picks its loader by suffix: ``.weights.h5`` and ``.keras`` are Keras 3 formats,
    ``.h5``/``.hdf5`` the legacy one (tf_keras reads any other name as a TF checkpoint).

    Raises:
        OutputError: the name does not fit the format being written.
    """
    name = Path(dst).name.lower()
    if fmt in (formats.KERAS2_WEIGHTS, formats.KERAS2_MODEL):
        if name.endswith(".weights.h5") or not name.endswith((".h5", ".hdf5")):
            stem = Path(dst).name.split(".")[0] or "single"
            raise OutputError(
                f"expected a Keras 2 output name ending in .h5 or .hdf5 (not .weights.h5); found "
                f"{Path(dst).name!r}, which Keras would read as another format; name it like "
                f"{stem}_single.h5"
            )
    elif fmt == formats.KERAS3_WEIGHTS and not name.endswith(".weights.h5"):
        raise OutputError(
            f"expected a Keras 3 weights output name ending in .weights.h5; found "
            f"{Path(dst).name!r}, which Keras 3 would not load; name it like single.weights.h5"
        )
    elif fmt == formats.KERAS3_ARCHIVE and not name.endswith(".keras"):
        raise OutputError(
            f"expected a .keras output name for a Keras 3 archive; found {Path(dst).name!r}; "
            "name it like single.keras"
        )


def _module_for(fmt: str) -> Any:
    if fmt in (formats.KERAS2_WEIGHTS, formats.KERAS2_MODEL):
        from .formats import legacy_h5

        return legacy_h5
    if fmt == formats.KERAS3_WEIGHTS:
        from .formats import keras3_weights

        return keras3_weights
    from .formats import keras_archive

    return keras_archive
