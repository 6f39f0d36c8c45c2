"""`planner bench --tui`: how long an edit takes to show its new plans table, measured in the real app.

The app runs headless (Textual's test driver) at a fixed terminal size with the real solver and the
kernels `planner tui` runs (`executables.interactive_kernels`). After the first solve (which
compiles) and one untimed edit (the second round that asks for the same kernels, which starts the
background build of any interactive kernel not yet on disk; the wait for those builds is reported
apart), each edit sets one field to a new valid value, the way a keystroke would, and the app's own timing is read once the table is drawn: `edit_to_table_s` runs from the
edit to the first screen refresh after the table was filled; `solve_s` and `ui_s` split it;
`edit_to_disaggregated_s` runs to the best disaggregated plan in the plan detail and
`edit_to_complete_s` to the Pareto frontiers, both of which follow the table. The edits cycle
through SLOs and the arrival rate, scaled from the scenario's values so the scenario stays valid
and the document stays modified (a real session's state after its first keystroke).
"""

from __future__ import annotations

import asyncio
import statistics
from operator import attrgetter
from typing import Any

from planner import executables
from planner.catalog import Catalog
from planner.schema import Scenario

EDITED = ("slo.tpot_p95_ms", "workload.arrival_rate_rps", "slo.ttft_p95_s")
FACTORS = (0.9, 0.8)
SIZE = (180, 50)


async def settle(app: Any, pilot: Any) -> None:
    """Wait until no worker runs and no solve is queued, then let the UI process what they posted."""
    for _ in range(200):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if app.idle:
            await pilot.pause()
            return
    raise RuntimeError("the app never settled")


def _edits(scenario: Scenario, count: int) -> list[tuple[str, str]]:
    out = []
    for i in range(count):
        path = EDITED[(i // len(FACTORS)) % len(EDITED)]
        out.append((path, f"{float(attrgetter(path)(scenario)) * FACTORS[i % len(FACTORS)]:g}"))
    return out


async def _measure(scenario_path: Any, catalog: Catalog, edits: int) -> dict[str, Any]:
    from planner.tui.app import PlannerApp
    from planner.tui.document import ScenarioDocument

    document = ScenarioDocument.from_file(scenario_path, catalog)
    app = PlannerApp(document, catalog)
    rows: list[dict[str, float]] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        first = dict(app.last_timing)
        warm_up, *timed = _edits(document.scenario, edits + 1)
        await _edit(app, pilot, *warm_up)
        upgrade_wait = await asyncio.to_thread(executables.wait_for_upgrades)
        await settle(app, pilot)
        for path, value in timed:
            await _edit(app, pilot, path, value)
            complete, disaggregated = app.edit_to_complete_s(), app.edit_to_disaggregated_s()
            rows.append({**app.last_timing, "edit_to_complete_s": complete if complete is not None else float("nan"),
                         "edit_to_disaggregated_s": disaggregated if disaggregated is not None else float("nan")})

    def stats(key: str) -> dict[str, float]:
        xs = sorted(r[key] for r in rows if r[key] == r[key])  # NaN: that edit's stage 2 never came
        if not xs:
            return {"median": float("nan"), "p90": float("nan"), "max": float("nan")}
        return {"median": statistics.median(xs), "p90": xs[min(len(xs) - 1, int(0.9 * len(xs)))], "max": xs[-1]}

    return {"size": f"{SIZE[0]}x{SIZE[1]}", "edits": len(rows), "first_table_s": first.get("edit_to_table_s"),
            "kernel_upgrade_wait_s": upgrade_wait, "kernels": "interactive" if executables.interactive() else "one-shot",
            "edit_to_table_s": stats("edit_to_table_s"), "solve_s": stats("solve_s"), "ui_s": stats("ui_s"),
            "edit_to_disaggregated_s": stats("edit_to_disaggregated_s"), "edit_to_complete_s": stats("edit_to_complete_s")}


async def _edit(app: Any, pilot: Any, path: str, value: str) -> None:
    """Set one scenario field as typing would, and wait for everything it starts."""
    from textual.widgets import Input

    from planner.tui.fields import FIELDS

    spec = next(f for f in FIELDS if f.path == path)
    app.screen.query_one(f"#{spec.dom_id} Input", Input).value = value
    await settle(app, pilot)


def measure_edit_latency(scenario_path: Any, catalog: Catalog, edits: int = 18) -> dict[str, Any]:
    with executables.interactive_kernels(wait_at_exit=True):
        return asyncio.run(_measure(scenario_path, catalog, edits))
