"""The serving-mode axis in `planner solve`: aggregated plans (search.py) beside disaggregated ones.

`start` launches the disaggregated kernels right after the aggregated one (both run while the
host waits); `attach` adds the best disaggregated plan and makes `best` the cheapest over the
modes searched; `frontiers` merges both modes into one cost-vs-latency frontier per metric. The
frontier of the union is exact: a point on it is on its own mode's frontier.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from planner import timing
from planner.disagg_search import (
    Choice,
    DisaggEval,
    _choice,
    best,
    launch,
    layouts_that_may_pair_below,
    pair_costs,
    pair_count,
    with_decode_layouts,
)
from planner.grid import Grid
from planner.pareto import pareto_indices, side_by_side


@dataclass
class Outcome:
    """What the disaggregated search adds to a solve."""

    ev: DisaggEval
    best: dict[str, Any] | None
    aggregated_best: dict[str, Any] | None
    stats: dict[str, Any]
    modes: list[str] = field(default_factory=list)

    @property
    def best_per_mode(self) -> dict[str, dict[str, Any] | None]:
        return {"aggregated": self.aggregated_best if "aggregated" in self.modes else None,
                "disaggregated": self.best}


def searched(grid: Grid) -> bool:
    return "disaggregated" in grid.scenario.search.serving_mode


DecodeLayouts = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""[H_pad, K] mask of decode layouts -> their pools' bills and TPOT p95 ([rows, -1], DECODE_AXES order)."""


def start(grid: Grid, decode_pools: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
          skipped: Callable[[], np.ndarray] | None = None) -> Callable[[], DisaggEval] | None:
    """Launch the disaggregated kernels when the scenario searches that mode (`decode_pools`: the
    decode pools' bills and TPOT already computed by the aggregated search, `skipped` the layouts
    a pruned pass left out of them; see `launch`)."""
    return launch(grid, decode_pools, skipped) if searched(grid) else None


def outcome(pending: Callable[[], DisaggEval] | None, aggregated_best: dict[str, Any] | None,
            grid: Grid, decode_layouts: DecodeLayouts | None = None, floors: np.ndarray | None = None,
            ) -> Outcome | None:
    """Wait for the kernels, take the exact cheapest pair and its plan row.

    Where a pruned pass left decode layouts out (`DisaggEval.skipped`), the cheapest pair found
    without them bounds the answer: those that may still pair at or below it (their bill `floors`,
    [H_pad, K], plus the cheapest prefill pool) are evaluated with `decode_layouts`, and the pair is
    taken again. On the default scenario none is: the pair found is already the cheapest."""
    from planner.disagg_plans import plan_row

    if pending is None:
        return None
    ev = pending()
    t0 = time.perf_counter()
    mix = grid.scenario.search.mix_hardware
    with timing.phase("disaggregated pairs"):
        choice = best(ev, mix_hardware=mix)
    if ev.skipped is not None:
        if decode_layouts is None or floors is None:
            raise ValueError("decode layouts were skipped: `outcome` needs `decode_layouts` and `floors`")
        extra = layouts_that_may_pair_below(ev, choice.monthly_usd if choice is not None else math.inf, floors)
        if extra.any():
            with timing.phase("kernel, decode layouts"):
                ev = with_decode_layouts(ev, *decode_layouts(extra), extra)
            with timing.phase("disaggregated pairs"):
                choice = best(ev, mix_hardware=mix)
    with timing.phase("disaggregated pairs"):
        row = plan_row(ev, choice) if choice is not None else None
        counts = pair_count(ev)
    stats = {**counts, "transfer_classes": int(len(np.unique(ev.classes))), "mix_hardware": mix,
             "mix_vendors": grid.scenario.search.mix_vendors, "seconds": round(ev.seconds + time.perf_counter() - t0, 4)}
    return Outcome(ev, row, aggregated_best, stats, list(grid.scenario.search.serving_mode))


def attach(result: Any, out: Outcome | None) -> Any:
    """`result` (a SolveResult) with the disaggregated outcome: `best` is the cheapest over the
    modes searched (aggregated plans stay in the search, so allowing disaggregation never raises it)."""
    if out is None:
        return result
    candidates = [p for p in out.best_per_mode.values() if p is not None and p["monthly_usd"] is not None]
    chosen = min(candidates, key=lambda p: p["monthly_usd"]) if candidates else None
    return replace(result, best=chosen, disagg=out)


def _disagg_tpot_points(ev: DisaggEval, mix: bool) -> tuple[np.ndarray, np.ndarray, Callable[[int], Choice]]:
    """Every decode option with the cheapest prefill pool it can pair with: (bill, TPOT p95, choice)."""
    pairs = pair_costs(ev, None, mix)
    h, k = ev.pair_class.shape[:2]
    kv_n = pairs.d_min.shape[2]
    comp = np.full((h * k, kv_n), np.inf)  # the cheapest prefill pool each decode group can pair with
    comp_arg = np.zeros((h * k, kv_n), np.int64)
    if pairs.p_at.size:
        comp[pairs.decode] = pairs.p_at.min(axis=0)
        comp_arg[pairs.decode] = pairs.prefill[pairs.p_at.argmin(axis=0)]
    d = ev.decode_monthly[:h]
    d_total = d + comp.reshape(h, k, kv_n)[:, :, None, None, :, None, None, None]
    tpot = ev.decode_tpot95[:h]

    def choice(flat: int) -> Choice:
        hd, kd, b, w, kv, t, s, a = np.unravel_index(flat, d.shape)
        hp, kp = divmod(int(comp_arg[hd * k + kd, kv]), k)
        c = _choice(ev, float(d_total.ravel()[flat]), hp, kp, hd, kd, kv, pairs.d_src, pairs.p_src)
        return Choice(c.monthly_usd, c.prefill, (int(hd), int(kd), int(b), int(w), int(kv), int(t), int(s), int(a)))

    return d_total.ravel(), tpot.ravel(), choice


def _disagg_ttft_points(ev: DisaggEval, mix: bool) -> tuple[np.ndarray, np.ndarray, Callable[[int], Choice]]:
    """Every prefill option at every transfer class with the cheapest decode pool it can pair with."""
    pairs = pair_costs(ev, None, mix)
    h, k = ev.pair_class.shape[:2]
    kv_n, g_n = pairs.p_min.shape[2:]
    comp = np.full((h * k, g_n, kv_n), np.inf)  # per prefill group and class: the cheapest decode pool
    comp_arg = np.zeros((h * k, g_n, kv_n), np.int64)
    if pairs.p_at.size:
        d_pairs = np.where(np.isfinite(pairs.p_at), pairs.d_min.reshape(h * k, kv_n)[pairs.decode][None], np.inf)
        keys = (pairs.prefill[:, None] * g_n + pairs.cls).ravel()  # (prefill group, class) of each pair
        vals = d_pairs.reshape(-1, kv_n)
        order = np.argsort(keys, kind="stable")  # runs of pairs with the same (prefill group, class)
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        run = np.cumsum(np.r_[False, sorted_keys[1:] != sorted_keys[:-1]])  # run of each sorted pair
        v = vals[order]  # [pairs, KV]
        low = np.minimum.reduceat(v, starts, axis=0)  # [runs, KV]
        # the first pair of each run reaching its minimum (a position past the end where none does)
        at = np.where(v == low[run], np.arange(order.size)[:, None], order.size)
        first = np.minimum.reduceat(at, starts, axis=0)
        found = first < order.size
        pair = order[np.minimum(first, order.size - 1)]
        comp.reshape(-1, kv_n)[sorted_keys[starts]] = low
        comp_arg.reshape(-1, kv_n)[sorted_keys[starts]] = np.where(found, pairs.decode[pair % len(pairs.decode)], 0)
    comp_hk = np.moveaxis(comp.reshape(h, k, g_n, kv_n), 3, 2)  # [H, K, KV, G]
    # only (group, class) cells that some decode group reaches: most are not
    cells = np.argwhere(np.isfinite(comp_hk))  # [nF, 4]: hardware, layout, KV dtype, class
    hp, kp, kv, g = cells.T
    sub = ev.prefill_monthly[hp, kp, :, kv, :, :, :, g]  # [nF, W, P, A, L]
    p_total = sub + comp_hk[hp, kp, kv, g][:, None, None, None, None]
    ttft = ev.prefill_ttft95[hp, kp, :, kv, :, :, :, g]

    def choice(flat: int) -> Choice:
        f, pw, pp, pa, pl = np.unravel_index(flat, p_total.shape)
        php, pkp, pkv, pg = (int(x) for x in cells[f])
        hd_, kd_ = divmod(int(comp_arg[php * k + pkp, pg, pkv]), k)
        c = _choice(ev, float(p_total.ravel()[flat]), php, pkp, hd_, kd_, pkv, pairs.d_src, pairs.p_src)
        return Choice(c.monthly_usd, (php, pkp, int(pw), pkv, int(pp), int(pa), int(pl), pg), c.decode)

    return p_total.ravel(), ttft.ravel(), choice


def _merge(aggregated: list[dict[str, Any]], cost: np.ndarray, latency: np.ndarray,
           choice: Callable[[int], Choice], ev: DisaggEval, key: str, scale: float, limit: int = 40) -> list[dict[str, Any]]:
    """The frontier over both modes: each mode's frontier points, then the frontier of their union."""
    from planner.disagg_plans import plan_rows

    own = pareto_indices(cost, latency, limit)
    agg_cost = np.array([p["monthly_usd"] for p in aggregated], float)
    agg_lat = np.array([p[key] for p in aggregated], float)
    all_cost = np.concatenate([agg_cost, cost[own]])
    all_lat = np.concatenate([agg_lat, latency[own] * scale])
    keep = pareto_indices(all_cost, all_lat, limit)
    picked = [int(own[i - len(aggregated)]) for i in keep if i >= len(aggregated)]
    rows = iter(plan_rows(ev, [choice(f) for f in picked]))
    return [aggregated[i] if i < len(aggregated) else next(rows) for i in keep]


def frontiers(result: Any) -> Any:
    """`result` with both modes on its Pareto frontiers (cost vs TPOT p95, cost vs TTFT p95)."""
    out = result.disagg
    if out is None:
        return result
    if out.ev.skipped is not None:
        raise ValueError("frontiers need every decode pool: this outcome came from a pruned pass")
    mix = result.grid.scenario.search.mix_hardware
    with timing.phase("frontiers (disaggregated)"):
        agg_tpot = result.pareto_tpot if "aggregated" in out.modes else []
        agg_ttft = result.pareto_ttft if "aggregated" in out.modes else []
        pair_costs(out.ev, None, mix)  # memoized here, before both threads need it

        def tpot_front():
            cost, tpot, pick = _disagg_tpot_points(out.ev, mix)
            return _merge(agg_tpot, cost, tpot, pick, out.ev, "tpot_p95_ms", 1e3)

        def ttft_front():
            cost, ttft, pick = _disagg_ttft_points(out.ev, mix)
            return _merge(agg_ttft, cost, ttft, pick, out.ev, "ttft_p95_s", 1.0)

        tpot_plans, ttft_plans = side_by_side(tpot_front, ttft_front)
    return replace(result, pareto_tpot=tpot_plans, pareto_ttft=ttft_plans)
