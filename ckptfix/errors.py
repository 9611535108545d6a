"""Typed errors and exit codes.

Every failure a user can cause is a :class:`CkptfixError` (a ``ValueError``), whose message is
one line: what was expected, what was found, what to do. The CLI prints that line and exits
with the error's ``exit_code``.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``ckptfix`` command (documented in the README)."""

    OK = 0
    FAILED = 1  # a batch in which some inputs failed; or an internal error
    USAGE = 2  # bad command line (click/typer's own code)
    NOTHING_TO_CONVERT = 3  # the checkpoint is already a single model
    REFUSED = 4  # layout unknowable, ambiguous template, reference does not match
    BAD_INPUT = 5  # unreadable, corrupt, or unsupported input
    OUTPUT = 6  # destination exists / is the source / cannot be written / disk full
    VERIFY = 7  # the written file did not match the source


class CkptfixWarning(UserWarning):
    """Warnings raised by ckptfix itself."""


class CkptfixError(ValueError):
    """Base class of every error ckptfix raises for bad input or refused work."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, *args: object) -> None:
        # Names quoted from a file may hold newlines or terminal escapes: keep one clean line.
        super().__init__(*(_one_line(a) if isinstance(a, str) else a for a in args))


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


#: Library parameters and the command-line flags that set them. Library messages name the
#: parameter (``pass force=True``); the CLI shows the flag (``pass --force``).
CLI_FLAGS = {
    "force": "--force",
    "exact": "--exact",
    "template": "--template",
    "reference": "--reference",
    "model": "--model",
    "out_dir": "--out-dir",
    "jobs": "--jobs",
    "timeout": "--timeout",
    # the trainer's parameters (``ckptfix train``)
    "loss": "--loss",
    "monitor": "--monitor",
    "devices": "--devices",
    "batch_size": "--batch-size",
    "epochs": "--epochs",
    "checkpoint_dir": "--out",
    "save_best_only": "--save-best-only",
    "save_weights_only": "--weights-only",
    "resume": "--resume",
}
#: Boolean parameters whose ``False`` has a flag of its own.
CLI_NEGATIVE_FLAGS = {"resume": "--no-resume"}
#: Library phrases that have no single flag, in the command line's words.
CLI_PHRASES = {
    "validation_data=(x_val, y_val)": "val_x and val_y in the --data file",
}
# A parameter mention stands alone: not inside a path ("runs/model=resnet/…" stays as it is).
_PARAM = re.compile(
    r"(?<![\w/.=-])(" + "|".join(CLI_FLAGS) + r")=(True|False|'[^'/]*'|\"[^\"/]*\"|"
    r"[A-Za-z0-9_.:-]+)?(?![\w/.=-])"
)


def cli_wording(text: str) -> str:
    """A library message in the command line's words: ``template='x'`` → ``--template x``."""
    for phrase, words in CLI_PHRASES.items():
        text = text.replace(phrase, words)

    def flag(m: re.Match[str]) -> str:
        name, value = CLI_FLAGS[m.group(1)], m.group(2)
        if value == "False" and m.group(1) in CLI_NEGATIVE_FLAGS:
            return CLI_NEGATIVE_FLAGS[m.group(1)]
        if value is None or value == "True":
            return name
        if value[:1] in "'\"":
            value = value[1:-1]
        return f"{name} {value}"

    return _PARAM.sub(flag, text)


class NotACheckpointError(CkptfixError):
    """The file is not a Keras checkpoint we can read (not HDF5/zip, or not Keras)."""

    exit_code = ExitCode.BAD_INPUT


class UnsupportedFormatError(CkptfixError):
    """A Keras or TensorFlow format that ckptfix recognises but does not convert."""

    exit_code = ExitCode.BAD_INPUT


class CorruptCheckpointError(CkptfixError):
    """The file looks like a Keras checkpoint but its structure or data is broken."""

    exit_code = ExitCode.BAD_INPUT


class DeadlineExceededError(CorruptCheckpointError):
    """Reading the file made no progress within ``timeout`` seconds (HDF5 looping on damage)."""


class NothingToConvertError(CkptfixError):
    """The checkpoint is already a single model; nothing was written."""

    exit_code = ExitCode.NOTHING_TO_CONVERT


class AmbiguousTemplateError(CkptfixError):
    """Several nested models hold weights and none was chosen."""

    exit_code = ExitCode.REFUSED


class TemplateNotFoundError(CkptfixError):
    """``template`` names no nested model of the file."""

    exit_code = ExitCode.REFUSED


class LayoutError(CkptfixError):
    """The template's layer layout cannot be established safely."""

    exit_code = ExitCode.REFUSED


class LayoutUnknownError(LayoutError):
    """A weights-only file with no layout source, and inference was not asked for."""


class ReferenceMismatchError(LayoutError):
    """The reference (config, file or model) does not describe the checkpoint's template."""


class UnsupportedConversionError(CkptfixError):
    """The destination's format cannot express this checkpoint faithfully (said, not guessed)."""

    exit_code = ExitCode.REFUSED


class UsageError(CkptfixError):
    """A call that cannot be acted on as given: a malformed value, options that do not fit."""

    exit_code = ExitCode.USAGE


class InputError(CkptfixError):
    """An input besides the checkpoint (a reference, a model factory, data) is missing or bad."""

    exit_code = ExitCode.BAD_INPUT


class OptionNotSupportedError(UsageError):
    """An option was given that the file's format (or the destination's) does not support."""

    exit_code = ExitCode.USAGE

    def __init__(self, *args: object, options: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.options = options


class OutputError(CkptfixError):
    """The destination cannot be written (exists, is the source, no space, no folder)."""

    exit_code = ExitCode.OUTPUT


class VerificationError(CkptfixError):
    """The written file does not match the source tensor for tensor."""

    exit_code = ExitCode.VERIFY


class TrainingError(CkptfixError):
    """The trainer cannot run as asked (devices, model factory, data, loss, resume state)."""

    exit_code = ExitCode.FAILED


class TrainingSetupError(TrainingError, UsageError):
    """The trainer was called in a way it refuses before training (nothing to monitor, no loss)."""

    exit_code = ExitCode.USAGE


class TrainingDataError(TrainingError, InputError):
    """The training data cannot be used (missing, not an .npz of arrays, mismatched lengths)."""

    exit_code = ExitCode.BAD_INPUT


class MissingDependencyError(CkptfixError):
    """An optional dependency (TensorFlow) is needed for this call."""

    exit_code = ExitCode.FAILED


def require_tensorflow() -> None:
    """Raise a clear error when TensorFlow is not installed (the trainer, ``model=``)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(
            "expected TensorFlow, which the trainer and model= need; found it not installed; "
            "install it with: pip install 'ckptfix[tf]'"
        )
