"""ckptfix: repair and prevent broken Keras checkpoints from data-parallel training.

The core (inspect, convert, verify) needs h5py and numpy only; TensorFlow is imported by
:mod:`ckptfix.train` and by the optional live-model paths, never at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .batch import BatchEntry, BatchProgress, BatchReport, convert_batch
from .convert import ConvertOptions, convert_checkpoint, verify_conversion
from .errors import (
    AmbiguousTemplateError,
    CkptfixError,
    CorruptCheckpointError,
    ExitCode,
    LayoutError,
    LayoutUnknownError,
    NotACheckpointError,
    NothingToConvertError,
    OutputError,
    ReferenceMismatchError,
    UnsupportedFormatError,
    VerificationError,
)
from .inspect import inspect_checkpoint
from .report import (
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    OptimizerState,
    TensorEntry,
    VerificationResult,
)

__all__ = [
    "__version__",
    "BatchEntry",
    "BatchProgress",
    "BatchReport",
    "ConvertOptions",
    "convert_batch",
    "convert_checkpoint",
    "inspect_checkpoint",
    "verify_conversion",
    "AmbiguousTemplateError",
    "CheckpointReport",
    "CkptfixError",
    "ConversionResult",
    "CorruptCheckpointError",
    "ExitCode",
    "LayerEntry",
    "LayoutError",
    "LayoutUnknownError",
    "NotACheckpointError",
    "NothingToConvertError",
    "OptimizerState",
    "OutputError",
    "ReferenceMismatchError",
    "TensorEntry",
    "UnsupportedFormatError",
    "VerificationError",
    "VerificationResult",
]
