"""Run commands as child processes and measure wall time and peak RSS, alternating, medians.

Each run starts from the same state: the previous outputs are removed, dirty pages are
written back (``os.sync``) and the machine is left idle for a moment, so that one tool does not
pay for the writeback or page reclaim of the one before it.
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One command to time; ``outputs`` are removed before every run."""

    label: str
    argv: Sequence[str]
    outputs: Sequence[Path] = ()
    env: dict[str, str] | None = None


@dataclass
class Runs:
    """Wall seconds and peak RSS (bytes) of each run of one case."""

    label: str
    seconds: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max_rss(self) -> int:
        return max(self.rss)


TIME = "/usr/bin/time"  # GNU time: the child's own peak RSS (wait4 of a forked Python
# child would count the parent's pages it inherited before exec)


def run_once(case: Case, settle: float) -> tuple[float, int]:
    """Run ``case`` once in a child; return (wall seconds, peak RSS bytes of the child)."""
    _remove(case.outputs)
    os.sync()
    time.sleep(settle)
    env = dict(os.environ, **(case.env or {}))
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        argv = list(case.argv)
        timed = os.access(TIME, os.X_OK)
        if timed:
            argv = [TIME, "-f", "%M", "-o", str(rss_file), *argv]
        with open(Path(tmp) / "stderr", "w+b") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            err.seek(0)
            text = err.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"{shlex.join(case.argv)} exited {code}: {text.strip()[-2000:]}")
        kib = int(rss_file.read_text().split()[-1]) if timed else usage.ru_maxrss
    _remove(case.outputs)
    return wall, kib * 1024


def run_alternating(
    cases: Sequence[Case],
    repeats: int,
    settle: float = 2.0,
    on_run: Callable[[str, float, int], None] | None = None,
) -> dict[str, Runs]:
    """Run every case ``repeats`` times, round-robin (A B C A B C …)."""
    out = {c.label: Runs(c.label) for c in cases}
    for _ in range(repeats):
        for c in cases:
            s, r = run_once(c, settle)
            out[c.label].seconds.append(s)
            out[c.label].rss.append(r)
            if on_run is not None:
                on_run(c.label, s, r)
    return out


def _remove(paths: Sequence[Path]) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
