"""ckptfix: repair and prevent broken Keras checkpoints from data-parallel training.

The core (inspect, convert, verify) needs h5py and numpy only; TensorFlow is imported by
:mod:`ckptfix.train` and by the optional live-model paths, never at import time.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .batch import BatchEntry, BatchProgress, BatchReport, convert_batch
from .checkpoint import Checkpoint
from .convert import convert_checkpoint, read_checkpoint, verify_conversion
from .deadline import DEFAULT_TIMEOUT
from .errors import (
    AmbiguousTemplateError,
    CkptfixError,
    CorruptCheckpointError,
    DeadlineExceededError,
    ExitCode,
    InputError,
    LayoutError,
    LayoutUnknownError,
    NotACheckpointError,
    NothingToConvertError,
    OptionNotSupportedError,
    OutputError,
    ReferenceMismatchError,
    TemplateNotFoundError,
    UnsupportedConversionError,
    UnsupportedFormatError,
    UsageError,
    VerificationError,
)
from .report import (
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    OptimizerState,
    TensorEntry,
    VerificationResult,
    inspect_checkpoint,
)
from .survey import InspectEntry, inspect_checkpoints

__all__ = [
    "__version__",
    "DEFAULT_TIMEOUT",
    "BatchEntry",
    "BatchProgress",
    "BatchReport",
    "Checkpoint",
    "convert_batch",
    "convert_checkpoint",
    "inspect_checkpoint",
    "inspect_checkpoints",
    "read_checkpoint",
    "verify_conversion",
    "AmbiguousTemplateError",
    "CheckpointReport",
    "CkptfixError",
    "ConversionResult",
    "CorruptCheckpointError",
    "DeadlineExceededError",
    "ExitCode",
    "InputError",
    "InspectEntry",
    "LayerEntry",
    "LayoutError",
    "LayoutUnknownError",
    "NotACheckpointError",
    "NothingToConvertError",
    "OptimizerState",
    "OptionNotSupportedError",
    "OutputError",
    "ReferenceMismatchError",
    "TemplateNotFoundError",
    "TensorEntry",
    "UnsupportedConversionError",
    "UnsupportedFormatError",
    "UsageError",
    "VerificationError",
    "VerificationResult",
]
