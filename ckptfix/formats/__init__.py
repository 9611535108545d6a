"""One module per checkpoint format; :func:`detect_format` tells which one a path holds."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import NotACheckpointError, UnsupportedFormatError
from ..h5util import HDF5_SIGNATURE, require_file

KERAS2_WEIGHTS = "keras2-h5-weights"
KERAS2_MODEL = "keras2-h5-model"
KERAS3_WEIGHTS = "keras3-weights"
KERAS3_ARCHIVE = "keras3-archive"


def detect_format(path: str | Path) -> str:
    """Say which checkpoint format ``path`` holds, from its first bytes and structure.

    Returns one of ``keras2-h5-weights``, ``keras2-h5-model``, ``keras3-weights``,
    ``keras3-archive``.

    Raises:
        UnsupportedFormatError: a TF-format checkpoint or a SavedModel folder.
        NotACheckpointError: anything else.
    """
    p = Path(path)
    tf_ckpt = _tf_checkpoint_hint(p)
    if tf_ckpt:
        raise UnsupportedFormatError(tf_ckpt)
    require_file(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise NotACheckpointError(
            f"expected a readable file; found {p} cannot be read ({exc.strerror}); "
            "check permissions"
        ) from exc
    if head == HDF5_SIGNATURE:
        from ..h5util import damaged_file_errors
        from .legacy_h5 import sniff_hdf5

        with damaged_file_errors(p):
            return sniff_hdf5(p)
    if head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(p):
        return KERAS3_ARCHIVE
    raise NotACheckpointError(
        f"expected a Keras checkpoint (HDF5 .h5 or .keras zip); found a file of another kind "
        f"({p.name}, starts with {head[:8]!r}); check the path or the download"
    )


def _tf_checkpoint_hint(p: Path) -> str | None:
    """A message when ``p`` is a TF checkpoint prefix/part or a SavedModel folder."""
    if p.is_dir() and (p / "saved_model.pb").exists():
        return (
            f"expected a Keras checkpoint file; found a TensorFlow SavedModel folder {p}, which "
            "ckptfix does not rewrite; load it with tf_keras's load_model (or "
            "tf.saved_model.load), take the template out of the loaded model and save it with "
            "template.save('x.keras')"
        )
    name = p.name
    prefix: Path | None = None
    if name.endswith(".index"):
        prefix = p.with_name(name[: -len(".index")])
    elif ".data-" in name:
        prefix = p.with_name(name.split(".data-", 1)[0])
    elif not p.exists() and p.with_name(name + ".index").exists():
        prefix = p
    if prefix is None:
        return None
    return (
        f"expected a Keras .h5/.keras checkpoint; found a TensorFlow-format checkpoint "
        f"(prefix {prefix}); restore it with tf.train.Checkpoint or model.load_weights('{prefix}') "
        "into the model that saved it, then save the template with model.save_weights('x.h5')"
    )
