"""``inspect``: what a checkpoint is, from metadata only (no tensor data, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

from . import formats
from .convert import ConvertOptions, _module_for
from .report import CheckpointReport


def inspect_checkpoint(
    path: str | Path,
    *,
    template: str | None = None,
    reference: str | Path | None = None,
) -> CheckpointReport:
    """Describe a Keras checkpoint: format, parallel pattern, template, layers, sizes, optimizer.

    Args:
        path: a Keras 2 ``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` or ``.keras`` file.
        template: the nested model to describe when there are several.
        reference: a layout reference, as for :func:`ckptfix.convert_checkpoint`.

    Returns:
        A :class:`CheckpointReport`.

    Raises:
        NotACheckpointError, CorruptCheckpointError, UnsupportedFormatError: bad input.

    Example:
        >>> report = ckptfix.inspect_checkpoint("parallel.h5")  # doctest: +SKIP
        >>> report.parallel, report.template, report.replicas  # doctest: +SKIP
        (True, 'model_1', 2)
    """
    p = Path(path)
    fmt = formats.detect_format(p)
    opts = ConvertOptions(template=template, reference=reference)
    report: CheckpointReport = _module_for(fmt).inspect_checkpoint(p, fmt, opts)
    return report
