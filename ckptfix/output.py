"""Safe destinations: never the source, never overwritten without force, always atomic.

A conversion writes into a temporary file next to the destination, verifies it, then
renames it into place with :func:`os.replace` (atomic on POSIX). A process killed half-way
leaves only a clearly named temporary file (``.NAME.ckptfix-tmp-PID-XXXX``) that the next
run into that folder removes.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import CkptfixError, OutputError, VerificationError

TEMP_MARK = ".ckptfix-tmp-"


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (symlinks, ``./`` and hard links too)."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _how_same(s: Path, d: Path) -> str:
    """Why two different spellings name one file: a symlink, a hard link, or the same path."""
    if d.is_symlink() or s.is_symlink():
        return "through a symbolic link"
    if os.path.realpath(s) != os.path.realpath(d):
        return "a hard link to it"
    return "the same file by another path"


def check_destination(
    src: str | Path,
    dst: str | Path,
    force: bool,
    *,
    suffixes: Sequence[str] = ("",),
    protect: Sequence[Path] = (),
) -> Path:
    """Validate ``dst`` for writing a conversion of ``src``; return it as a Path.

    ``dst`` names the files ``dst + suffix`` for each of ``suffixes`` (a TensorFlow checkpoint
    prefix names several); ``protect`` lists the source's own files besides ``src``.

    Raises:
        OutputError: ``dst`` is the source, exists without ``force``, is a folder, or its
            folder does not exist.
    """
    s, d = Path(src), Path(dst)
    finals = [Path(str(d) + suf) for suf in suffixes]
    clash = next(((p, f) for p in (s, *protect) for f in (d, *finals) if same_file(p, f)), None)
    if clash is not None:
        p, f = clash
        found = f"both are {p}"
        if str(p) != str(f):
            found = f"{f} is the source {p} ({_how_same(p, f)})"
        raise OutputError(
            f"expected a destination other than the source; found {found}; "
            "choose another output path (the input is never overwritten, even with force=True)"
        )
    if d.is_dir():
        raise OutputError(
            f"expected a file path as destination; found a folder {d}; add a file name"
        )
    if not d.parent.is_dir():
        raise OutputError(
            f"expected an existing output folder; found no folder {d.parent}; create it first"
        )
    existing = next((f for f in finals if f.exists() or f.is_symlink()), None)
    if existing is not None and not force:
        raise OutputError(
            f"expected a new destination; found {existing} already exists; pass force=True to "
            "replace it"
        )
    return d


def clean_stale_temps(folder: Path) -> list[Path]:
    """Remove ckptfix temporaries in ``folder`` left by processes that no longer run."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if TEMP_MARK not in p.name or not p.name.startswith("."):
            continue
        pid_part = p.name.split(TEMP_MARK, 1)[1].split("-", 1)[0]
        if not pid_part.isdigit() or _pid_alive(int(pid_part)):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def discard_temps_of(folder: str | Path, pid: int) -> list[Path]:
    """Remove the ckptfix temporaries in ``folder`` written by process ``pid`` (a killed worker).

    Example:
        >>> discard_temps_of("out", 12345)  # doctest: +SKIP
        [PosixPath('out/.single.h5.ckptfix-tmp-12345-0a1b2c3d')]
    """
    removed: list[Path] = []
    mark = f"{TEMP_MARK}{pid}-"
    try:
        entries = [p for p in Path(folder).iterdir() if p.name.startswith(".") and mark in p.name]
    except OSError:
        return removed
    for p in entries:
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """True for a process that has ended but not been reaped (an orphaned worker whose new
    parent never reaps, as PID 1 of some containers): it writes nothing any more."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # not Linux, or gone: kill() above already answered
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def temp_path_for(dst: Path) -> Path:
    """A fresh temporary path beside ``dst`` whose name says what it is and who made it."""
    return dst.parent / f".{dst.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


@contextmanager
def atomic_destination(
    src: str | Path,
    dst: str | Path,
    force: bool,
    *,
    suffixes: Sequence[str] = ("",),
    protect: Sequence[Path] = (),
) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it onto ``dst``, else remove it.

    With ``suffixes`` the destination is several files (``dst + suffix``, as a TensorFlow
    checkpoint's ``.data-*`` and ``.index``): the writer writes ``tmp + suffix`` for each, and
    they are renamed in the order given (the index last: it is what makes the checkpoint seen).

    Example:
        >>> with atomic_destination("in.h5", "out.h5", force=False) as tmp:  # doctest: +SKIP
        ...     write_everything(tmp)
    """
    d = check_destination(src, dst, force, suffixes=suffixes, protect=protect)
    clean_stale_temps(d.parent)
    tmp = temp_path_for(d)
    pairs = [(Path(str(tmp) + suf), Path(str(d) + suf)) for suf in suffixes]
    try:
        yield tmp
        for _, final in pairs:
            if (final.exists() or final.is_symlink()) and not force:  # appeared while we worked
                raise OutputError(
                    f"expected a new destination; found {final} appeared while converting; "
                    "pass force=True to replace it"
                )
        for t, final in pairs:
            os.replace(t, final)
    except OSError as exc:
        full = _disk_full(d.parent)
        for t, _ in pairs:
            _discard(t)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) or (exc.errno is None and full):
            raise _disk_full_error(d, exc.strerror or _first_line(exc)) from exc
        raise OutputError(
            f"expected to write {d}; found an OS error ({exc.strerror or exc}); "
            "check permissions and space (nothing was written)"
        ) from exc
    except BaseException as exc:
        # HDF5 reports a failed write as a RuntimeError or an errno-less OSError (which the
        # format modules may have wrapped), or writes short and verification catches it:
        # when the folder is full, that is the cause.
        low = exc.__cause__ if isinstance(exc, CkptfixError) else exc
        full = (
            isinstance(low, OSError | RuntimeError) or isinstance(exc, VerificationError)
        ) and _disk_full(d.parent)
        for t, _ in pairs:
            _discard(t)
        if full and not isinstance(exc, OutputError):
            why = _first_line(low) if low is not None else "the written file came out short"
            raise _disk_full_error(d, why) from exc
        raise


#: Free space below which a failed HDF5 write is taken for a full disk.
_FULL_BELOW = 1 << 20


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _FULL_BELOW


def _disk_full_error(d: Path, why: str) -> OutputError:
    return OutputError(
        f"expected room to write {d.name}; found the disk full ({why}); "
        "free space or choose another folder (nothing was written)"
    )


def _first_line(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    return text.splitlines()[0][:100] if text else type(exc).__name__


def check_self_contained(path: Path) -> None:
    """Refuse a written file whose tensors would live in other files.

    HDF5 lets a dataset keep its bytes in arbitrary files (external raw storage) and a group
    link to objects in other files (external links). Keras never writes either; a checkpoint
    holding them is forged, and a converted copy would silently depend on (and, when loaded,
    read) files outside it. ``path`` is an HDF5 file or a ``.keras`` zip holding one.

    Raises:
        CorruptCheckpointError: the file holds external links or external storage.
    """
    import zipfile

    import h5py

    from .errors import CorruptCheckpointError
    from .h5util import open_h5_member

    def scan(f: h5py.File) -> list[str]:
        found: list[str] = []

        # Low-level visit: h5py's high-level objects cost ~70 µs per link (0.2 s on ResNet50).
        # Collect first, look after: an error raised inside a visit callback (a damaged
        # object) comes out of h5py as a SystemError.
        links: list[tuple[bytes, int]] = []
        f.id.links.visit(lambda raw, info: links.append((raw, info.type)), info=True)
        for raw, kind in links:
            name = raw.decode("utf-8", "replace")
            if kind == h5py.h5l.TYPE_EXTERNAL:
                target = f.id.links.get_val(raw)[0].decode("utf-8", "replace")
                found.append(f"{name} (external link to {target})")
            elif kind == h5py.h5l.TYPE_HARD:
                obj = h5py.h5o.open(f.id, raw)
                is_dataset = isinstance(obj, h5py.h5d.DatasetID)
                if is_dataset and obj.get_create_plist().get_external_count():
                    found.append(f"{name} (stored in an external file)")
        return found

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            inner = [n for n in zf.namelist() if n.endswith(".h5")]
        found = []
        for n in inner:  # opened in place: constant memory, whatever the archive's size
            with open_h5_member(path, n) as (f, _disk, _start):
                found += scan(f)
    else:
        with h5py.File(path, "r") as f:
            found = scan(f)
    if found:
        raise CorruptCheckpointError(
            f"expected every tensor stored inside the checkpoint; found {len(found)} pointing "
            f"outside it (first: {found[0]}); refusing: Keras never writes these, so the file "
            "was forged or damaged"
        )


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass
