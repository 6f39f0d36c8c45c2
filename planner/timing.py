"""Where a process spends its time, for `planner bench`'s startup breakdown.

Phases add up their seconds under a name. A process started with `PLANNER_TIMINGS=FILE` writes
them as JSON to FILE on exit (`planner bench` spawns `planner solve` that way), so the breakdown
comes from the real command, not from a copy of it.
"""

from __future__ import annotations

import atexit
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

PHASES: dict[str, float] = {}
# Origin of `mark`: when `planner bench` spawned this process (so interpreter start-up and imports
# count), else when this module was imported (early: `planner.cli` imports it first).
_ORIGIN = float(os.environ.get("PLANNER_TIMINGS_SPAWNED") or time.time())


@contextmanager
def phase(name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - start


def mark(name: str) -> None:
    """Record the seconds from the origin until now (e.g. "command starts")."""
    PHASES[name] = time.time() - _ORIGIN


def restart(origin: float) -> None:
    """Forget the phases so far and count from `origin` (a resident worker, per command: its origin
    is when the command's own process started)."""
    global _ORIGIN
    PHASES.clear()
    _ORIGIN = float(os.environ.get("PLANNER_TIMINGS_SPAWNED") or origin)


def write() -> None:
    """Write the phases to `PLANNER_TIMINGS`, if set (at exit, or when a worker's command ends)."""
    path = os.environ.get("PLANNER_TIMINGS")
    if not path:
        return
    mark("exit")
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({k: round(v, 4) for k, v in PHASES.items()}, f)
    except OSError:
        pass


if os.environ.get("PLANNER_TIMINGS"):
    atexit.register(write)
