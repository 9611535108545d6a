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


def run_once(case: Case, settle: float) -> tuple[float, int]:
    """Run ``case`` once in a child; return (wall seconds, peak RSS bytes of the child)."""
    _remove(case.outputs)
    os.sync()
    time.sleep(settle)
    env = dict(os.environ, **(case.env or {}))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(case.argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{shlex.join(case.argv)} exited {code}: {err.strip()[-2000:]}")
    _remove(case.outputs)
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


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
