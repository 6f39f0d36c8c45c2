"""Sweep: re-solve a scenario for each value of one key (a dotted path, as in `solve --set`).

Each point is the scenario file with `--set` overrides and then `KEY=VALUE` applied, re-validated as
a whole (so a value that breaks a cross-field rule fails like a bad file would). Every point is
validated before the first is solved: a bad value fails fast. Points whose grid has the same shape
(workload, SLO, speculative or serving values) reuse the compiled kernel; only the first pays for
compilation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner import io
from planner.analyses.whatif import Evaluation, Variant, closest_miss, evaluate, infeasible_rows
from planner.catalog import Catalog
from planner.errors import InputFileError
from planner.overrides import apply_overrides, closest_paths, known_paths, parse_value
from planner.schema import Scenario

_OPEN, _CLOSE = "[{", "]}"


def split_values(text: str) -> list[str]:
    """Split `V1,V2,...` on top-level commas: `["bf16"],["fp8","int4"]` is two values."""
    items: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    if any(not item for item in items):
        raise InputFileError(f"--values {text!r}: empty value; give comma-separated values, e.g. 8000,32000")
    return items


def check_param(key: str, source: str | Path) -> None:
    paths = known_paths()
    if key not in paths:
        near = closest_paths(key, paths)
        hint = f"; closest known keys: {', '.join(near)}" if near else ""
        raise InputFileError(f"{source}: --param {key}: unknown key{hint}")


@dataclass
class SweepPoint:
    text: str  # the value as given on the command line
    value: Any  # parsed as a TOML value
    scenario: Scenario
    note: str = ""  # the point's model is not the file's: how its speculation was re-picked


def sweep_points(path: str | Path, key: str, values: Sequence[str], sets: Sequence[str],
                 catalog: Catalog) -> list[SweepPoint]:
    """Validate every point up front (bad key or value: one-line `InputFileError`)."""
    from planner.overrides import overridden_keys
    from planner.scenario_checks import check_scenario_ids, speculation_for_a_new_model, written_model_id
    from planner.traces.scenario import with_trace

    check_param(key, path)
    if not values:
        raise InputFileError("--values: give at least one value, e.g. --values 8000,32000,96000")
    data = io.read_toml(path)
    points = []
    for text in values:
        where = f"{path} (--param {key}={text})"
        overrides = [*sets, f"{key}={text}"]
        point = apply_overrides(data, overrides, path)
        scenario = io.validate(Scenario, point, where)
        note = ""
        if written_model_id(point) != written_model_id(data):  # a drafter written for the file's model: re-picked
            scenario, note = speculation_for_a_new_model(scenario, overridden_keys(overrides), catalog)
        check_scenario_ids(scenario, catalog, where)
        scenario, _ = with_trace(scenario, path)  # the trace's workload (load_scenario warned once)
        points.append(SweepPoint(text, parse_value(text), scenario, note))
    return points


@dataclass
class SweepResult:
    param: str
    points: list[SweepPoint]
    evaluations: list[Evaluation]
    base: Scenario | None = None  # the scenario file (with --set) before the swept key is applied

    @property
    def any_feasible(self) -> bool:
        return any(ev.best is not None for ev in self.evaluations)

    @property
    def seconds(self) -> list[float]:
        return [ev.seconds for ev in self.evaluations]


def run_sweep(param: str, points: list[SweepPoint], catalog: Catalog, variants: Sequence[Variant] = (),
              base: Scenario | None = None) -> SweepResult:
    return SweepResult(param, points, [evaluate(p.scenario, catalog, variants) for p in points], base)


def timing_summary(result: SweepResult) -> dict[str, float | None]:
    """First point (includes compilation unless the persistent cache had it) vs the rest."""
    secs = result.seconds
    later = secs[1:]
    return {"first_s": round(secs[0], 3), "later_mean_s": round(sum(later) / len(later), 3) if later else None,
            "total_s": round(sum(secs), 3)}


def sweep_dict(result: SweepResult, *, timing: bool = True) -> dict[str, Any]:
    """The `planner sweep --format json` document."""
    points = []
    for p, ev in zip(result.points, result.evaluations, strict=True):
        row: dict[str, Any] = {"value": p.value, "best": ev.best, "feasible": ev.best is not None}
        if ev.spec_methods_added:  # the best plan may draft by a method `planner solve` does not search
            row["best_spec_method_added"] = ev.best is not None and ev.baseline_spec_method in ev.spec_methods_added
        if ev.variants:
            row["variants"] = [{"name": r.name, "monthly_usd": r.monthly_usd, "delta_pct": r.delta_pct,
                                "best": r.best} for r in ev.variants]
        row["warnings"] = ev.warnings
        if ev.best is None:
            miss = closest_miss(ev)
            row["reason"] = miss["reason"] if miss else "no hardware searched"
            row["infeasible"] = infeasible_rows(ev)
        if timing:
            row["seconds"] = round(ev.seconds, 3)
        points.append(row)
    first = result.evaluations[0]
    out: dict[str, Any] = {
        "param": result.param,
        "scenario": first.scenario.name,
        "model": {"id": first.scenario.model.id},
        "points": points,
        "search": {"configs": [ev.configs for ev in result.evaluations], "widened": first.widened,
                   "spec_methods_added": first.spec_methods_added},
    }
    if timing:
        out["search"]["timing"] = timing_summary(result)
    return out
