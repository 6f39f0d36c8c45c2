"""The cost-vs-latency Pareto frontier of a solve's ~2 million configurations, exactly and fast.

A plain sort of every feasible point costs ~20 ms per frontier; a cheap exact pre-filter first drops
every point that a few real points already beat, which leaves a few hundred to sort.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

A = TypeVar("A")
B = TypeVar("B")


def _frontier(idx: np.ndarray, cost: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Frontier of the points `idx`, fastest first: sort by latency (then cost), keep each point
    strictly cheaper than every faster one."""
    order = idx[np.lexsort((cost[idx], latency[idx]))]
    best = np.minimum.accumulate(cost[order])
    keep = np.concatenate(([True], best[1:] < best[:-1]))
    return order[keep]


def _beaten_by(a_cost: np.ndarray, a_lat: np.ndarray, cost: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Per point, whether an anchor is strictly better on one axis and no worse on the other: such
    a point can never be on the frontier. The anchors are a frontier, fastest first (latency
    strictly ascending, cost strictly descending), so the only anchor to compare with is the
    slowest one that is no slower than the point: it is the cheapest of them."""
    at = np.searchsorted(a_lat, latency, side="right") - 1
    has = at >= 0
    at = np.maximum(at, 0)
    c, lat = a_cost[at], a_lat[at]
    return has & ((c < cost) | ((lat < latency) & (c <= cost)))


def pareto_indices(cost: np.ndarray, latency: np.ndarray, limit: int = 40) -> np.ndarray:
    """Indices of the cost-vs-latency frontier among finite-cost points, cheapest first; a dearer
    point is kept only when it is measurably faster (`LATENCY_TOLERANCE`)."""
    ok = np.flatnonzero(np.isfinite(cost))
    if ok.size == 0:
        return ok
    # Exact pre-filter: the frontier of every 64th point is a staircase of real points; whatever
    # one of them beats cannot be on the frontier, which leaves a small fraction to sort.
    anchors = _frontier(ok[::64], cost, latency)
    candidates = ok[~_beaten_by(cost[anchors], latency[anchors], cost[ok], latency[ok])]
    frontier = _frontier(candidates, cost, latency)[::-1]  # cheapest (slowest) first
    frontier = _distinct(frontier, latency)
    if frontier.size > limit:
        frontier = frontier[np.linspace(0, frontier.size - 1, limit).round().astype(int)]
    return frontier


LATENCY_TOLERANCE = 1e-3
"""A dearer frontier point must be this much faster (relative) than the cheaper one before it: float32
latencies that differ in the sixth digit (0.06230 s against 0.06229 s) printed as equal, and the
frontier listed $167k and $186k plans at the same TTFT as a $152k one."""


def _distinct(frontier: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """The frontier (cheapest first) without points no more than LATENCY_TOLERANCE faster than the
    last one kept: dearer for a latency gain below what any report shows."""
    kept: list[int] = []
    for i in frontier:
        if not kept or latency[i] < latency[kept[-1]] * (1.0 - LATENCY_TOLERANCE):
            kept.append(int(i))
    return np.asarray(kept, dtype=frontier.dtype)


def side_by_side(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """(first(), second()), the first in a thread: numpy releases the GIL in the sorts, searches and
    gathers a frontier is made of, so two frontiers over ~14 M points take ~0.1 s instead of 0.2 s
    on two cores. An error in either is raised here."""
    with ThreadPoolExecutor(1, thread_name_prefix="planner-frontier") as pool:
        pending = pool.submit(first)
        other = second()
        return pending.result(), other
