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
    ("interpreter + CLI imports", ("command starts",)),  # less the early JAX import (below)
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


def _run_once(scenario: Path, cache: Path, fmt: str = "table") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "phases.json"
        env = {**os.environ, "PLANNER_CACHE_DIR": str(cache), "PLANNER_TIMINGS": str(report)}
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
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    breakdown = {label: _summed(phases, names) for label, names in BREAKDOWN}
    # `planner solve` imports JAX before the CLI (planner.__main__), so before "command starts"
    breakdown["interpreter + CLI imports"] -= phases.get("imports (jax, early)", 0.0)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "phases": phases,
            "breakdown": {label: round(v, 4) for label, v in breakdown.items()}}


def startup_breakdown(scenario: Path, warm_runs: int = 3) -> dict[str, Any]:
    """One cold process (empty cache) then `warm_runs` warm ones, as the table and as JSON; the warm
    figures are medians."""
    with tempfile.TemporaryDirectory(prefix="planner-bench-cache-") as cache:
        cold = _run_once(scenario, Path(cache))
        warm = [_run_once(scenario, Path(cache)) for _ in range(warm_runs)]
        warm_json = [_run_once(scenario, Path(cache), "json") for _ in range(warm_runs)]
    result: dict[str, Any] = {"cold": cold, "warm_runs": warm, "warm_json_runs": warm_json}
    for key, runs in (("warm", warm), ("warm_json", warm_json)):
        if runs:
            result[key] = {
                "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
                "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
                "breakdown": {label: round(statistics.median(r["breakdown"][label] for r in runs), 4)
                              for label, _ in BREAKDOWN},
            }
    return result
