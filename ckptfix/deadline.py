"""Untrusted files are read in a child process, under a deadline.

HDF5 is C code: a crafted file (bytes spliced over a B-tree) can make it loop forever, and
nothing in Python can interrupt that: not a signal handler, not Ctrl-C. So every public entry
point that parses a file (inspect, read, convert, verify, each file of a batch) runs in a
*worker process* and the caller waits for its answer with a deadline. A worker that makes no
progress for ``timeout`` seconds is killed, its temporary files are removed, and the call raises
:class:`~ckptfix.errors.DeadlineExceededError` (exit 5). Copying and comparing tensor bytes is
progress (the loops call :func:`tick`), so the deadline bounds the metadata work of a file, not
its size. A worker that crashes (HDF5 dereferencing garbage) is a
:class:`~ckptfix.errors.CorruptCheckpointError` too, instead of taking the caller down.

Workers are *forked* on Linux and the other POSIX systems but macOS: a fork of a process that
has imported h5py and numpy costs a few milliseconds, and the worker starts with everything
already imported. On macOS and Windows (where forking a process that may hold system frameworks
is unsafe) a worker is a fresh ``python -c`` process, started once per batch worker or per
call, which costs a few tenths of a second; ``CKPTFIX_START_METHOD=fork|spawn`` overrides the
choice. Either way workers never re-import the caller's ``__main__``, and everything crossing
the process boundary is pickled: arguments, results, and errors (with their attributes).

``timeout=None`` (or 0) runs the call in this process without a deadline, as before.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import itertools
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import CkptfixError, CorruptCheckpointError, DeadlineExceededError

T = TypeVar("T")

#: Seconds a file may go without progress before it is refused (``timeout=`` / ``--timeout``).
#: The slowest real checkpoint seen needs well under a second of metadata work; 60 s leaves room
#: for models with tens of thousands of tensors on a slow, loaded disk.
DEFAULT_TIMEOUT = 60.0

#: Environment variable choosing how workers start: ``fork`` or ``spawn``.
START_METHOD_ENV = "CKPTFIX_START_METHOD"

#: How long a spawned worker may take to start (import h5py and numpy) before it counts as lost.
STARTUP_ALLOWANCE = 120.0

#: Least time between two progress messages of one worker.
TICK_EVERY = 0.2

ProgressCallback = Callable[[int, int], None]
Cleanup = Callable[[int], object]


def resolve_timeout(timeout: float | None) -> float | None:
    """``timeout`` as seconds, or None when the deadline is off (None or 0).

    Raises:
        ValueError: a negative or non-numeric ``timeout``.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    return None if timeout == 0 else float(timeout)


def start_method() -> str:
    """``fork`` or ``spawn``: how worker processes start on this platform (see module doc)."""
    chosen = os.environ.get(START_METHOD_ENV, "").strip().lower()
    if chosen in ("fork", "spawn"):
        return chosen if chosen == "spawn" or hasattr(os, "fork") else "spawn"
    return "fork" if hasattr(os, "fork") and sys.platform != "darwin" else "spawn"


# --- inside a worker ----------------------------------------------------------------------------

_out_fd: int | None = None  # set in a worker: where its messages go
_last_tick = 0.0


def in_worker() -> bool:
    """True inside a worker process (nested calls then run in place, under the outer deadline)."""
    return _out_fd is not None


def tick() -> None:
    """Report progress to the waiting caller (a no-op outside a worker; throttled inside).

    Loops whose length grows with the size of the tensors (copying, comparing, scanning)
    call this, so that a large file is not mistaken for a stuck one.
    """
    global _last_tick
    if _out_fd is None:
        return
    now = time.monotonic()
    if now - _last_tick >= TICK_EVERY:
        _last_tick = now
        _write_frame(_out_fd, ("tick",))


def _send_progress(done: int, total: int) -> None:
    global _last_tick
    if _out_fd is not None:
        _last_tick = time.monotonic()
        _write_frame(_out_fd, ("progress", done, total))


def _serve(in_fd: int, out_fd: int) -> None:
    """A worker's loop: read one call, run it, send back its result or its error; repeat."""
    global _out_fd
    from . import h5util  # the checked-heap cache travels back to the caller

    _out_fd = out_fd
    _write_frame(out_fd, ("ready", os.getpid()))
    while True:
        raw = _read_raw_frame(in_fd)
        if raw is None:
            return
        known = len(h5util._heaps_checked)  # entries are only ever added, in order
        try:
            fn, args, kwargs, want_progress = pickle.loads(raw)
            if want_progress:
                kwargs = {**kwargs, "progress": _send_progress}
            msg: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            msg = ("error", exc, traceback.format_exc())
        new = list(itertools.islice(h5util._heaps_checked, known, None))
        try:
            _write_frame(out_fd, (*msg, new))
        except Exception as exc:  # noqa: BLE001 - the answer does not pickle: say so
            what = "result" if msg[0] == "ok" else f"error ({type(msg[1]).__name__}: {msg[1]})"
            failure = RuntimeError(f"the worker's {what} could not be sent back: {exc!r}")
            _write_frame(out_fd, ("error", failure, traceback.format_exc(), new))


def _worker_setup(parent: int) -> None:
    """Shared by forked and spawned workers: die with the caller, leave Ctrl-C to it."""
    import faulthandler

    faulthandler.disable()  # a crash is reported by the caller, in one line
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller kills us on Ctrl-C
    except ValueError:  # pragma: no cover - not the main thread (cannot happen after fork)
        pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG: never outlive the caller
        except (OSError, AttributeError):  # pragma: no cover - no prctl: best effort
            pass
    if os.getppid() != parent:  # the caller died before prctl took effect
        os._exit(1)


def spawned_worker_main() -> None:
    """Entry point of a spawned worker (``python -c``): requests on stdin, answers on stdout."""
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    _worker_setup(os.getppid())
    try:
        _warm()
        _serve(0, out_fd)
    finally:
        os._exit(0)


# --- framing: 8-byte length, then a pickle ------------------------------------------------------

_HEADER = struct.Struct("<Q")


def _write_frame(fd: int, obj: object) -> None:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    # Our own, empty reducer table: libraries that register global reducers (Dask installs
    # tblib's for every exception class) must not change how ckptfix's answers are encoded.
    pickler.dispatch_table = {}
    pickler.dump(obj)
    data = buf.getvalue()
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _read_raw_frame(fd: int) -> bytes | None:
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    return _read_exact(fd, _HEADER.unpack(head)[0])


# --- the caller's side: worker processes --------------------------------------------------------

#: Pipe ends of live workers in this process. A newly forked worker closes them all, so that a
#: worker sees the end of its requests as soon as the caller closes its end. The lock makes
#: "create the pipes, fork, register the caller's ends" one step for every thread.
_worker_fds: set[int] = set()
_fd_lock = threading.Lock()
#: Workers told to stop whose exit status is not collected yet (any thread may collect them).
_exiting: list[_Worker] = []
_exit_lock = threading.Lock()


@dataclass(eq=False)
class _Worker:
    pid: int
    send_fd: int
    recv_fd: int
    popen: Any = None  # subprocess.Popen of a spawned worker
    ready: bool = False
    task: int | None = None  # index of the task it is running
    clock: float = 0.0  # when the current task began or last made progress
    reaped: bool = False
    exit_note: str = ""

    def send(self, obj: object) -> None:
        _write_frame(self.send_fd, obj)

    def close_send(self) -> None:
        """Close the request pipe: an idle worker then leaves by itself."""
        if self.popen is not None:
            _close_quietly(self.popen.stdin)
            return
        with _fd_lock:
            if self.send_fd in _worker_fds:
                _worker_fds.discard(self.send_fd)
                _close_fd(self.send_fd)

    def close_recv(self) -> None:
        """Close the answer pipe (by the reader thread, after the worker's last answer)."""
        if self.popen is not None:
            _close_quietly(self.popen.stdout)
            return
        with _fd_lock:
            if self.recv_fd in _worker_fds:
                _worker_fds.discard(self.recv_fd)
                _close_fd(self.recv_fd)

    def kill(self) -> None:
        if not self.reaped:
            try:
                if self.popen is not None:
                    self.popen.kill()
                else:
                    os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self.reap(block=True)
        self.close_send()

    def reap(self, block: bool) -> bool:
        """Collect the exit status; True when the process is gone."""
        if self.reaped:
            return True
        if self.popen is not None:
            code = self.popen.wait() if block else self.popen.poll()
            if code is None:
                return False
        else:
            try:
                pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                pid, status = self.pid, 0
            if pid == 0:
                return False
            code = os.waitstatus_to_exitcode(status)
        self.exit_note = _describe_exit(code)
        self.reaped = True
        return True

    def finish(self) -> None:
        """Let an idle worker go: close its requests; its exit is collected later."""
        self.close_send()
        if not self.reap(block=False):
            with _exit_lock:
                _exiting.append(self)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _close_quietly(pipe: Any) -> None:
    try:
        pipe.close()
    except (OSError, ValueError):
        pass


def _reap_exited() -> None:
    """Collect workers that were let go earlier (no zombies in long-running callers)."""
    with _exit_lock:
        for w in list(_exiting):
            if w.reap(block=False):
                _exiting.remove(w)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


_warmed = False


def _warm() -> None:
    """Import what workers need, so that forked workers import nothing (and start at once)."""
    global _warmed
    if not _warmed:
        import ctypes  # noqa: F401 - used by every worker (_worker_setup)

        from . import batch, convert, formats, report  # noqa: F401

        formats.registry()
        _warmed = True


def _fork_worker() -> _Worker:
    _warm()
    import h5py

    parent = os.getpid()
    with _fd_lock:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        # h5py's global lock is held across the fork: no other thread is inside h5py at that
        # instant, so the worker cannot inherit the lock owned by a thread it does not have.
        with h5py._objects.phil:
            gc.freeze()  # the worker's collector leaves inherited objects (and pages) alone
            pid = -1
            try:
                pid = _fork()
            finally:
                if pid:
                    gc.unfreeze()
        if pid:
            os.close(req_r)
            os.close(res_w)
            _worker_fds.update((req_w, res_r))
    if pid == 0:  # the worker: never returns, never runs the caller's atexit handlers
        try:
            for fd in (req_w, res_r, *_worker_fds):
                _close_fd(fd)
            _worker_fds.clear()
            _worker_setup(parent)
            _serve(req_r, res_w)
        finally:
            os._exit(0)
    return _Worker(pid, req_w, res_r)


def _fork() -> int:
    import warnings

    with warnings.catch_warnings():
        # Python 3.12+ warns when a process with threads forks. The worker runs only ckptfix
        # code, needs no lock another thread could hold (h5py's is held across the fork), and
        # leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _spawn_worker() -> _Worker:
    import subprocess

    root = str(Path(__file__).resolve().parent.parent)  # the ckptfix this process runs
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    code = "from ckptfix.deadline import spawned_worker_main; spawned_worker_main()"
    try:
        popen = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError as exc:
        raise CkptfixError(
            f"expected to start a worker process to read the file in; found {exc.strerror or exc} "
            f"({sys.executable}); pass timeout=0 to read it in this process, without a deadline"
        ) from exc
    assert popen.stdin is not None and popen.stdout is not None
    return _Worker(popen.pid, popen.stdin.fileno(), popen.stdout.fileno(), popen)


def _start_worker(method: str) -> _Worker:
    _reap_exited()
    if method == "fork":
        try:
            return _fork_worker()
        except OSError:  # no memory to fork this process: a fresh interpreter is small
            pass
    return _spawn_worker()


class _AnswerUnpickler(pickle.Unpickler):
    """Reads a worker's answer, admitting only what ckptfix answers with.

    Workers are ckptfix's own processes, but they parse hostile files: should HDF5 ever be
    made to run code in one, its answer still cannot make this process construct anything
    but ckptfix's result dataclasses, its errors and the builtin exceptions (no functions, no
    other classes, no module imported on the worker's say).
    """

    def find_class(self, module: str, name: str) -> Any:
        owner = sys.modules.get(module) if _answer_module(module) else None
        obj = getattr(owner, name, None) if "." not in name else None
        if isinstance(obj, type) and (
            issubclass(obj, BaseException)
            or (module != "builtins" and dataclasses.is_dataclass(obj))
        ):
            return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not something a worker answers with")


def _answer_module(module: str) -> bool:
    return module in ("builtins", "ckptfix") or module.startswith("ckptfix.")


Inbox = queue.Queue[tuple[_Worker, tuple[Any, ...] | None]]


def _read_loop(w: _Worker, inbox: Inbox) -> None:
    """Reader thread: every answer of one worker into the caller's inbox, then None."""
    try:
        while True:
            try:
                raw = _read_raw_frame(w.recv_fd)
            except OSError:
                raw = None
            if raw is None:
                break
            try:
                msg = _AnswerUnpickler(io.BytesIO(raw)).load()
            except Exception as exc:  # noqa: BLE001 - an answer that does not unpickle here
                err = RuntimeError(f"the worker's answer could not be read: {exc!r}")
                msg = ("error", err, "", [])
            inbox.put((w, msg))
    finally:
        w.close_recv()
        inbox.put((w, None))


# --- running tasks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One call to run in a worker: ``fn(*args, **kwargs)``, about the file ``subject``.

    ``fn`` and every argument must pickle (module-level functions, plain data). ``cleanup``
    runs here with the worker's pid when the worker had to be killed (its temporary files).
    ``progress`` receives the call's ``progress(done, total)`` (passed to ``fn`` as
    ``progress=``).
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    subject: str = ""
    cleanup: Cleanup | None = None
    progress: ProgressCallback | None = None


def run_tasks(
    tasks: Sequence[Task], workers: int, timeout: float | None
) -> Generator[tuple[int, Any, BaseException | None], None, None]:
    """Run ``tasks`` in up to ``workers`` worker processes; yield ``(index, result, error)``.

    Answers come as tasks finish. A worker runs its tasks one after another; one that makes
    no progress for ``timeout`` seconds (None: no deadline) is killed, its task's error is a
    :class:`DeadlineExceededError`, and a fresh worker takes the remaining tasks. Closing the
    generator early (an error in the caller, Ctrl-C) kills every worker still running.
    """
    method = start_method()
    inbox: Inbox = queue.Queue()
    pending = deque(range(len(tasks)))
    live: set[_Worker] = set()
    limit = float("inf") if timeout is None else timeout

    def start() -> None:
        w = _start_worker(method)
        live.add(w)
        threading.Thread(target=_read_loop, args=(w, inbox), daemon=True).start()
        assign(w)

    def assign(w: _Worker) -> None:
        w.task = pending.popleft() if pending else None
        if w.task is None:
            live.discard(w)
            w.finish()
            return
        t = tasks[w.task]
        w.clock = time.monotonic()
        w.send((t.fn, t.args, dict(t.kwargs), t.progress is not None))

    def stuck_at(w: _Worker) -> float:
        return w.clock + (limit if w.ready else STARTUP_ALLOWANCE + limit)

    def drop(w: _Worker) -> None:
        """Kill ``w`` and remove what it was writing."""
        live.discard(w)
        w.kill()
        _discard_worker_temps(w.pid)
        if w.task is not None and tasks[w.task].cleanup is not None:
            tasks[w.task].cleanup(w.pid)  # type: ignore[misc]

    left = len(tasks)
    try:
        for _ in range(min(workers, len(tasks))):
            start()
        while left:
            now = time.monotonic()
            for w in [w for w in live if stuck_at(w) <= now]:
                task = w.task
                drop(w)
                if task is not None:
                    left -= 1
                    yield task, None, _deadline_error(tasks[task].subject, limit, w.ready)
                if pending:
                    start()
            if not left:
                break
            soonest = min((stuck_at(w) for w in live), default=now + 1.0)
            try:
                w, msg = inbox.get(timeout=min(max(soonest - now, 0.001), 1.0))
            except queue.Empty:
                continue
            if w not in live:
                continue  # the last words of a worker already let go or killed
            if msg is None:  # the worker ended without an answer: it crashed or was killed
                task = w.task
                drop(w)
                if task is not None:
                    left -= 1
                    yield task, None, _crash_error(tasks[task].subject, w.exit_note)
                if pending:
                    start()
                continue
            kind = msg[0]
            if kind == "ready":
                w.ready = True
                w.clock = time.monotonic()
            elif kind in ("tick", "progress"):
                w.clock = time.monotonic()
                cb = tasks[w.task].progress if w.task is not None else None
                if kind == "progress" and cb is not None:
                    cb(msg[1], msg[2])
            elif kind in ("ok", "error"):
                task = w.task
                _merge_heaps(msg[-1])
                assign(w)  # the next task first: the worker does not wait for our caller
                if task is not None:
                    left -= 1
                    if kind == "ok":
                        yield task, msg[1], None
                    else:
                        yield task, None, _from_worker(msg[1], msg[2])
    finally:
        for w in list(live):
            drop(w)


def run_isolated(
    fn: Callable[..., T],
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float | None,
    subject: str | Path,
    progress: ProgressCallback | None = None,
    cleanup: Cleanup | None = None,
    isolate: bool = False,
) -> T:
    """``fn(*args, **kwargs)`` in a worker process under the deadline: its result, or its error.

    With ``timeout`` None (and ``isolate`` False), or inside a worker already, the call runs
    here. ``progress``, when given, is passed to ``fn`` as ``progress=``.

    Raises:
        DeadlineExceededError: no progress for ``timeout`` seconds; the worker was killed.
        CorruptCheckpointError: the worker crashed (HDF5 on a damaged file).
        Whatever ``fn`` raised, re-raised here.
    """
    kw = dict(kwargs or {})
    if in_worker() or (timeout is None and not isolate):
        if progress is not None:
            kw["progress"] = progress
        return fn(*args, **kw)
    task = Task(fn, args, kw, str(subject), cleanup, progress)
    answers = run_tasks([task], 1, timeout)
    try:
        _, result, error = next(answers)
    finally:
        answers.close()
    if error is not None:
        raise error
    answer: T = result
    return answer


# --- errors -------------------------------------------------------------------------------------


def _deadline_error(subject: str, timeout: float, ready: bool) -> CkptfixError:
    name = Path(subject).name or subject
    if not ready:
        return CkptfixError(
            f"expected a worker process to start for {name}; found none within "
            f"{STARTUP_ALLOWANCE:g} s; the machine may be overloaded; retry, or pass timeout=0 "
            "to read files in this process, without a deadline"
        )
    t = f"{timeout:g}"
    return DeadlineExceededError(
        f"expected {name} to be read within the {t} s deadline; found no progress for {t} s, "
        "as when HDF5 loops forever on a damaged or crafted file; refused, nothing was written; "
        f"if the file is sound but huge, pass a larger timeout= (timeout=0 turns the deadline off)"
    )


def _crash_error(subject: str, how: str) -> CkptfixError:
    name = Path(subject).name or subject
    if how in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL"):
        return CorruptCheckpointError(
            f"expected {name} to be readable; found HDF5 crashed reading it ({how}); "
            "the file is damaged or crafted; refused, nothing was written"
        )
    return CkptfixError(
        f"expected an answer about {name}; found the worker process reading it stopped "
        f"({how or 'no exit status'}; out of memory?); nothing was written; retry, or pass "
        "timeout=0 to read it in this process"
    )


def _from_worker(exc: BaseException, trace: str) -> BaseException:
    if not isinstance(exc, CkptfixError) and trace and hasattr(exc, "add_note"):
        exc.add_note("in the worker process:\n" + trace.rstrip())
    return exc


# --- what a killed worker leaves behind ---------------------------------------------------------


def _discard_worker_temps(pid: int) -> None:
    """Remove the zip members a killed worker was unpacking (named after its pid)."""
    import tempfile

    from .h5util import MEMBER_TEMP_PREFIX

    folder = Path(tempfile.gettempdir())
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(f"{MEMBER_TEMP_PREFIX}{pid}-")]
    except OSError:
        return
    for p in names:
        try:
            p.unlink()
        except OSError:
            pass


def _merge_heaps(keys: Sequence[Any]) -> None:
    """Files a worker found free of damaged global heaps need no second scan here."""
    if keys:
        from . import h5util

        for k in keys:
            h5util._heaps_checked[tuple(k)] = None


__all__ = [
    "DEFAULT_TIMEOUT",
    "START_METHOD_ENV",
    "Task",
    "in_worker",
    "resolve_timeout",
    "run_isolated",
    "run_tasks",
    "start_method",
    "tick",
]
