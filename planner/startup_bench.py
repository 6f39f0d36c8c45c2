"""Where a whole `planner solve` process spends its time, cold and warm (`planner bench`).

Each run is the real command in a fresh interpreter: a cold run gets an empty cache folder (so it
traces, compiles and stores its kernels), the warm runs reuse that folder. The process reports
its own phases (`planner.timing`); the wall and CPU seconds are measured from outside. The runs
are the README's command (`planner solve FILE`, the table); warm JSON runs are timed beside them,
since only JSON and TOML compute the Pareto frontiers.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Display order of the breakdown: (label, phase names or prefixes summed into it)
BREAKDOWN = (
    ("hand-over to a resident worker", ("worker answers",)),  # (planner.resident) its runs only
    ("interpreter + CLI imports", ("command starts",)),  # less the early JAX import and hand-over (below)
    ("catalog + scenario load", ("catalog+scenario",)),
    ("imports (jax, search)", ("imports (jax, early)", "imports (jax, search)")),
    ("grid build", ("grid",)),
    ("trace + lower", ("trace+lower ",)),
    ("compile", ("compile ",)),
    ("cache load", ("load ",)),
    ("cache store", ("store ",)),
    ("kernel (search)", ("kernel",)),
    ("disaggregated kernels + pairs", ("disaggregated kernels", "disaggregated pairs")),
    ("plans + frontiers", ("plans", "frontiers")),
    ("report", ("report",)),
)


def _summed(phases: dict[str, float], names: tuple[str, ...]) -> float:
    return sum(v for k, v in phases.items() if k in names or any(n.endswith(" ") and k.startswith(n) for n in names))


def _env(cache: Path, workers: Path | None) -> dict[str, str]:
    """A run's environment: its kernel cache; resident workers off, or on in their own folder."""
    env = {**os.environ, "PLANNER_CACHE_DIR": str(cache), "PLANNER_WORKER": "0"}
    if workers is not None:
        env.update(PLANNER_WORKER="1", PLANNER_WORKER_DIR=str(workers))
        # a run meant for the worker waits for it to accept (its figures show any such wait): with
        # the default 0.5 s, a loaded machine (a test run beside other work) or a worker still
        # tracing in the background sent the command to a process of its own, and the bench failed
        env.setdefault("PLANNER_WORKER_WAIT_S", "30")
    return env


def _run_once(scenario: Path, cache: Path, fmt: str = "table", workers: Path | None = None) -> dict[str, Any]:
    """One `planner solve` process; with `workers`, one answered by the resident worker there (its
    CPU seconds are the client's plus what the worker reports it spent on the command)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "phases.json"
        env = {**_env(cache, workers), "PLANNER_TIMINGS": str(report)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        env["PLANNER_TIMINGS_SPAWNED"] = repr(time.time())
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "planner", "solve", str(scenario), "--format", fmt],
                              env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"planner solve exited {done.returncode}: {done.stderr.strip()[-500:]}")
        phases = json.loads(report.read_text(encoding="utf-8"))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime) + phases.get("worker CPU", 0.0)
    breakdown = {label: _summed(phases, names) for label, names in BREAKDOWN}
    # `planner solve` imports JAX before the CLI (planner.__main__), so before "command starts"
    breakdown["interpreter + CLI imports"] -= phases.get("imports (jax, early)", 0.0) + phases.get("worker answers", 0.0)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "phases": phases,
            "breakdown": {label: round(v, 4) for label, v in breakdown.items()}}


def startup_breakdown(scenario: Path, warm_runs: int = 3, settle: bool = True) -> dict[str, Any]:
    """One cold process (empty cache) then `warm_runs` warm ones, as the table and as JSON; then,
    where resident workers run (Linux), a worker's first command and `warm_runs` more (`settle`:
    after its kernels for repeated runs are built; see `_worker_runs`). The warm figures are medians."""
    with tempfile.TemporaryDirectory(prefix="planner-bench-cache-") as cache:
        cold = _run_once(scenario, Path(cache))
        warm = [_run_once(scenario, Path(cache)) for _ in range(warm_runs)]
        warm_json = [_run_once(scenario, Path(cache), "json") for _ in range(warm_runs)]
        first, resident = _worker_runs(scenario, Path(cache), warm_runs, settle)
    result: dict[str, Any] = {"cold": cold, "warm_runs": warm, "warm_json_runs": warm_json,
                              "worker_runs": resident}
    if first is not None:
        result["worker_first"] = first
    for key, runs in (("warm", warm), ("warm_json", warm_json), ("worker", resident)):
        if runs:
            result[key] = {
                "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
                "breakdown": {label: round(statistics.median(r["breakdown"][label] for r in runs), 4)
                              for label, _ in BREAKDOWN},
            }
    return result


BUILD_WAIT_S = 600.0


def _worker_runs(scenario: Path, cache: Path, runs: int,
                 settle: bool = True) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A resident worker started in a folder of its own (`planner worker start`), its first command
    (it loads its kernels then, as the first command after `planner worker start` would) and `runs`
    more, timed once the kernels it builds for repeated runs (asked for by a second command, as in
    the TUI) are built: the steady state (`settle=False`: right after the first, builds under way;
    the test suite's check of the hand-over, ~15 s sooner). The worker is stopped after. (None, [])
    where workers do not run."""
    from planner.resident import client, identity

    if not runs or not identity.enabled({}):
        return None, []
    with tempfile.TemporaryDirectory(prefix="planner-bench-workers-") as folder:
        env = _env(cache, Path(folder))
        command = [sys.executable, "-m", "planner"]
        started = subprocess.run([*command, "worker", "start"], env=env, capture_output=True, text=True, check=False)
        if started.returncode != 0:
            raise RuntimeError(f"planner worker start exited {started.returncode}: {started.stderr.strip()[-500:]}")
        try:
            first = _run_once(scenario, cache, workers=Path(folder))
            if settle:
                _run_once(scenario, cache, workers=Path(folder))  # asks for the kernels a second time
                client.wait_while_building(identity.socket_path(identity.key(env), env), BUILD_WAIT_S)
            resident = [_run_once(scenario, cache, workers=Path(folder)) for _ in range(runs)]
        finally:
            subprocess.run([*command, "worker", "stop"], env=env, capture_output=True, check=False)
    if any("worker answers" not in run["phases"] for run in [first, *resident]):
        raise RuntimeError("a run meant for the resident worker ran in its own process")
    return first, resident
