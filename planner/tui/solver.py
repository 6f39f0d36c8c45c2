"""What the TUI's workers call: the full solve, and the bill-vs-prompt-length curve of one hardware.

Plain Python (no Textual). One lock serialises the JAX calls: on a small machine two concurrent
solves only slow each other down, and the curve must never delay the table.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from planner.catalog import Catalog
from planner.schema import Scenario

WHATIF_VARIANTS = ("no-speculative-decoding", "no-kv-quantization", "no-prefix-cache", "no-kv-offload")


@dataclass(frozen=True)
class WhatIf:
    name: str
    monthly_usd: float | None  # None: nothing feasible without the technique
    delta_pct: float | None


@dataclass(frozen=True)
class CurvePoint:
    input_median: int
    monthly_usd: float | None  # None: no feasible plan at this prompt length
    plan: dict[str, Any] | None


class Solver:
    """Runs `planner.search.solve`; `compiled` tells whether the kernel has been compiled yet."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.compiled = False
        self._lock = threading.Lock()
        self._grid: Any = None  # the last table's grid: an SLO or rate edit reuses it (grid.with_load_of)

    def solve(self, scenario: Scenario) -> Any:
        table, with_frontiers = self.solve_in_stages(scenario)
        return with_frontiers()

    def solve_in_stages(self, scenario: Scenario) -> tuple[Any, Callable[..., Any]]:
        """`search.solve_in_stages`: the plans table (aggregated plans: the table lists no other),
        then a function that adds the disaggregated search's outcome (handed to its `on_disaggregated`
        as soon as it is known) and the Pareto frontiers."""
        from planner import executables
        from planner.search import solve_in_stages

        executables.new_round()  # an edit: kernels asked for again are being re-run
        with self._lock:
            table, with_frontiers = solve_in_stages(scenario, self.catalog, disaggregated_in_table=False,
                                                    previous=self._grid, prune=True)
            self.compiled = True
            self._grid = table.grid

        def finish(on_disaggregated: Callable[[Any], None] | None = None) -> Any:
            with self._lock:
                return with_frontiers(on_disaggregated)

        return table, finish

    def whatif(self, scenario: Scenario, hardware: str) -> list[WhatIf] | None:
        """The hardware's bill with each technique taken away (None if `planner.analyses` is absent)."""
        try:
            from planner.analyses.whatif import evaluate, pick_variants
        except ImportError:
            return None
        search = scenario.search.model_copy(update={"hardware": [hardware]})
        with self._lock:
            ev = evaluate(scenario.model_copy(update={"search": search}), self.catalog,
                          pick_variants(list(WHATIF_VARIANTS)))
        return [WhatIf(v.name, v.monthly_usd, v.delta_pct) for v in ev.variants if v.searched]

    def prompt_curve(self, scenario: Scenario, hardware: str, cancelled: Callable[[], bool]) -> Iterator[CurvePoint]:
        """Cheapest plan on `hardware` at a few prompt medians (the p90/median ratio is kept).

        Yields one point at a time and releases the lock between points, so an edit's solve
        waits for at most one point.
        """
        from planner.search import solve_in_stages

        for median in curve_medians(scenario, self.catalog):
            if cancelled():
                return
            variant = with_prompt_median(scenario, median, hardware)
            with self._lock:
                    result, _ = solve_in_stages(variant, self.catalog, prune=True)  # the best plan is all it needs
            best = result.best
            yield CurvePoint(median, best["monthly_usd"] if best else None, best)


def curve_medians(scenario: Scenario, catalog: Catalog, points: int = 7) -> list[int]:
    """Prompt medians from 1/16 of the scenario's up to the context cap, geometrically spaced,
    always including the scenario's own median."""
    w = scenario.workload.input_tokens
    cap = catalog.model(scenario.model.id).max_context - scenario.workload.output_tokens.median
    if w.max is not None:
        cap = min(cap, w.max)
    cap = max(cap, 1)
    low = max(1, min(w.median, cap) // 16)
    high = max(cap, low)
    ratio = (high / low) ** (1 / (points - 1)) if high > low else 1.0
    values = {min(high, round(low * ratio**i)) for i in range(points)}
    values.add(min(w.median, cap))
    return sorted(values)


def with_prompt_median(scenario: Scenario, median: int, hardware: str) -> Scenario:
    """The scenario restricted to one hardware, at another prompt median (same tail shape)."""
    w = scenario.workload.input_tokens
    p90 = None if w.p90 is None else max(median, math.ceil(median * w.p90 / w.median))
    mean = None if w.mean is None else max(float(median), w.mean * median / w.median)
    tokens = w.model_copy(update={"median": median, "p90": p90, "mean": mean,
                                  "max": None if w.max is None else max(w.max, median)})
    workload = scenario.workload.model_copy(update={"input_tokens": tokens})
    search = scenario.search.model_copy(update={"hardware": [hardware]})
    return scenario.model_copy(update={"workload": workload, "search": search})
