"""A trace as the cost model sees it: length quantiles, session shape and a fixed-shape hit-rate curve.

The curve is the LRU replay's hit rate (as a share of the unbounded cache's) against cache capacity
per session in flight, tabulated at `tiers.HIT_CURVE_TOKENS`, replayed with sessions starting as a
Poisson process at each of `tiers.HIT_CURVE_SESSIONS` sessions in flight: at the same capacity per
session a larger pool hits more, so the model reads it at both (cache tokens per replica / sessions
in flight per replica) and the sessions in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planner.traces.readers import Progress, Trace, read_trace
from planner.traces.stats import prepare, run, session_durations, session_gaps, trace_stats

HIT_CURVE_POINTS = 33
HIT_CURVE_TOKENS = np.logspace(2.0, 8.0, HIT_CURVE_POINTS)  # the grids of planner.model.tiers (no jax here)
HIT_CURVE_SESSIONS = np.array([4.0, 16.0, 64.0, 256.0])
HIT_CURVE_REF_SESSIONS = 16.0


@dataclass(frozen=True)
class TraceWorkload:
    """What a scenario takes from a trace (plain numbers; `summary` goes into solve's JSON)."""

    input_median: int
    input_p90: int
    input_max: int
    output_median: int
    output_p90: int
    output_max: int
    requests_per_session: float
    gap_mean_s: float  # reply to the session's next request (the scenario's think_time_s)
    session_s: float
    prefix_reuse: float  # unbounded-cache token hit: the most a cache can serve
    uncached_scv: float  # cs^2 of a later turn's uncached tokens with an unbounded cache (every request's
    # without sessions): the screen adds the first turns' misses on its own (queueing.uncached_scv)
    hit_curve: tuple[float, ...]  # share of the reusable prefix at HIT_CURVE_TOKENS per session (16 sessions)
    hit_pool_exponent: float  # see planner.model.tiers.curve_hit_rate
    summary: dict[str, Any]


def replayed_table(trace: Trace, prepared=None, rate_rps: float | None = None, seed: int = 0) -> np.ndarray:
    """[HIT_CURVE_SESSIONS x HIT_CURVE_TOKENS] share of the reusable prefix an LRU cache serves (the
    replayed hit rate / the unbounded one), at each number of sessions in flight and cache tokens per
    session. A trace without sessions is replayed as recorded, every row alike, and its capacity axis
    is per (request/s) of its own arrival rate: what a cache must hold grows with the traffic it sees."""
    p = prepared or prepare(trace)
    rows = []
    for n in HIT_CURVE_SESSIONS:
        rp = run(p, float(n) if trace.has_sessions else None, seed)
        scale = float(n) if trace.has_sessions else (rate_rps or 1.0)
        top = max(rp.unbounded_hit_rate, 1e-12)
        rows.append(rp.lru_hit_rate(HIT_CURVE_TOKENS * scale / trace.block_size) / top)
    return np.minimum(np.stack(rows), 1.0)


def collapse(table: np.ndarray, log_x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """One curve for every pool size: the rows of `table` ([HIT_CURVE_SESSIONS x len(log_x)], at
    log10 capacity per session `log_x`) shifted by c x log10(sessions / 16), averaged, with the c in
    [0, 1] (steps of 0.01) that keeps every row closest. Returns (curve at log_x, c, largest error
    against any replayed row)."""
    best: tuple[float, float, np.ndarray] | None = None
    for c in np.linspace(0.0, 1.0, 101):
        shifts = c * np.log10(HIT_CURVE_SESSIONS / HIT_CURVE_REF_SESSIONS)
        mean = np.mean([np.interp(log_x, log_x + d, row) for d, row in zip(shifts, table, strict=True)], axis=0)
        err = max(float(np.max(np.abs(np.interp(log_x + d, log_x, mean) - row)))
                  for d, row in zip(shifts, table, strict=True))
        if best is None or err < best[0] - 1e-12:
            best = (err, float(c), mean)
    assert best is not None
    return np.maximum.accumulate(np.clip(best[2], 0.0, 1.0)), best[1], best[0]


def trace_workload(path: str | Path, progress: Progress | None = None) -> TraceWorkload:
    trace = read_trace(path, progress=progress)
    p = prepare(trace)
    stats = trace_stats(trace, prepared=p, concurrency=())
    table = replayed_table(trace, p, rate_rps=stats["arrival_rate_rps"])
    curve, exponent, error = collapse(table, np.log10(HIT_CURVE_TOKENS))
    if trace.has_sessions:
        per_session = trace.requests / len(trace.session_names)
        gaps = session_gaps(trace, p.done_s)
        gap = float(np.mean(gaps)) if gaps.size else 0.0
        session_s = float(session_durations(trace, p.done_s).mean())
    else:  # no sessions recorded: the curve's x axis is per (request/s), so one 'session' = 1 request x 1 s
        per_session, gap, session_s = 1.0, 0.0, 1.0
    i, o = stats["input_tokens"], stats["output_tokens"]
    summary = {k: stats[k] for k in ("file", "format", "block_size", "requests", "sessions", "timestamps",
                                     "input_tokens", "output_tokens", "arrival_rate_rps", "arrival_source",
                                     "prefix_hit_unbounded", "prefix_hit_unbounded_tokens", "lru", "ttl")}
    summary["requests_per_session"] = per_session
    summary["session_s"] = session_s
    summary["warnings"] = stats["warnings"]
    summary["hit_curve"] = {"sessions_in_flight": HIT_CURVE_SESSIONS.tolist() if trace.has_sessions else None,
                            "cache_tokens_per_session": HIT_CURVE_TOKENS.tolist(),
                            "share_of_reusable_prefix": table.tolist(), "pool_exponent": exponent,
                            "collapsed_max_error": error}
    return TraceWorkload(
        input_median=max(int(round(i["p50"])), 1), input_p90=max(int(round(i["p90"])), 1), input_max=int(i["max"]),
        output_median=max(int(round(o["p50"])), 1), output_p90=max(int(round(o["p90"])), 1),
        output_max=max(int(o["max"]), 1),
        requests_per_session=per_session, gap_mean_s=gap, session_s=session_s,
        prefix_reuse=float(min(stats["prefix_hit_unbounded"], 0.999)),
        uncached_scv=float(stats.get("new_tokens", stats["uncached_tokens"])["scv"]),
        hit_curve=tuple(float(x) for x in curve), hit_pool_exponent=exponent, summary=summary,
    )


_CACHE: dict[tuple[str, int, int], TraceWorkload] = {}


def cached_trace_workload(path: str | Path, progress: Progress | None = None) -> TraceWorkload:
    """`trace_workload` memoised on (path, size, mtime): a sweep or the TUI re-solves without re-reading."""
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        return trace_workload(p, progress)  # reports the missing file
    if key not in _CACHE:
        _CACHE[key] = trace_workload(p, progress)
    return _CACHE[key]
