"""``inspect``: what a checkpoint is, from metadata only (no tensor data, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from . import formats
from .convert import ConvertOptions
from .errors import CkptfixError, CorruptCheckpointError
from .h5util import damaged_file_errors
from .report import CheckpointReport


def inspect_checkpoint(
    path: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
) -> CheckpointReport:
    """Describe a Keras checkpoint: format, parallel pattern, template, layers, sizes, optimizer.

    Only metadata is read (names, shapes, dtypes, attributes; the optimizer's iteration
    counter is the one scalar read), so a file of any size is described in well under a
    second, and TensorFlow is never imported.

    Args:
        path: a Keras 2 ``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` or ``.keras`` file.
        template: the nested model to describe when there are several.
        reference: a layout reference, as for :func:`ckptfix.convert_checkpoint` (a
            ``model.to_json()`` file or a ``.h5`` saved from the template); it makes the
            reported layout of a Keras 2 weights-only file exact.

    Returns:
        A :class:`CheckpointReport` (``report.parallel``, ``report.template``,
        ``report.replicas``, ``report.layers``, ``report.layout``, ``report.convert_command``…).

    Raises:
        NotACheckpointError: not HDF5 or zip, or HDF5 not written by Keras.
        UnsupportedFormatError: a TensorFlow-format checkpoint or a SavedModel folder.
        CorruptCheckpointError: Keras structure that is truncated or inconsistent.
        LayoutError: ``template`` names no nested model of the file.

    Example:
        >>> report = ckptfix.inspect_checkpoint("parallel.h5")  # doctest: +SKIP
        >>> report.parallel, report.template, report.replicas  # doctest: +SKIP
        (True, 'model_1', 2)
    """
    p = Path(path)
    fmt = formats.detect_format(p)
    try:
        with damaged_file_errors(p):
            return _inspect_format(p, fmt, ConvertOptions(template=template, reference=reference))
    except CkptfixError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        # h5py reports damaged structure (truncated files, broken links) with these.
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CorruptCheckpointError(
            f"expected a readable Keras checkpoint; found HDF5/zip refused to read {p.name} "
            f"({first}); the file is truncated or damaged"
        ) from exc


def _inspect_format(p: Path, fmt: str, opts: ConvertOptions) -> CheckpointReport:
    """Dispatch to the format module's ``inspect_checkpoint(path, fmt, opts)``."""
    from .convert import _module_for

    report: CheckpointReport = _module_for(fmt).inspect_checkpoint(p, fmt, opts)
    return report
