"""A run's figures: latency percentiles, throughput, cache hits, utilisation, queue over time.

Requests are measured when they arrive after the warm-up and before the end of the arrivals; TTFT is
first token - arrival, TPOT is (last token - first token) / (output - 1) per request (requests of
one output token have no TPOT). Requests still unfinished when the drain ends, or rejected because
their prompt alone exceeds the KV pool, are counted, never silently dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.simulate.arrivals import Requests
from planner.simulate.fleet import Options, Outcome

SERIES_POINTS = 120


def _q(x: np.ndarray, qs=(50, 95, 99)) -> dict[str, float | None]:
    if x.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(x, qs), strict=True)}


def new_tokens_scv(reqs: Requests, window: np.ndarray) -> float | None:
    """cs^2 of the new (not reusable) tokens of the synthetic sessions' later turns in the window,
    the spread `workload.sessions.uncached_scv` states; None for a trace (whose turns reuse what
    their blocks say, not a drawn share) or without sessions."""
    if reqs.blocks is not None:
        return None
    later = window & reqs.later_turns()
    if not later.any():
        return None
    new = (reqs.input_tokens - reqs.reusable_tokens)[later].astype(np.float64)
    return float(new.var() / max(float(new.mean()) ** 2, 1e-300))


def summarise(reqs: Requests, out: Outcome, opts: Options, prefix_reuse: float = 0.0,
              sampled: bool = False) -> dict[str, Any]:
    """`prefix_reuse`: the scenario's reusable share of every prompt, the base of the analytic hit rate.
    `sampled`: only some replicas ran, so only the requests routed to them count."""
    rec = out.records
    arrived = np.isfinite(reqs.arrival_s) & (reqs.arrival_s < opts.duration_s)
    if sampled:
        arrived &= rec.replica >= 0
    window = arrived & (reqs.arrival_s >= opts.warmup())
    done = window & np.isfinite(rec.finish_s)
    ttft = (rec.first_s - reqs.arrival_s)[window & np.isfinite(rec.first_s)]
    multi = done & (reqs.output_tokens > 1)
    tpot = ((rec.finish_s - rec.first_s) / np.maximum(reqs.output_tokens - 1, 1))[multi]
    span = max(opts.duration_s - opts.warmup(), 1e-9)
    reusable = float(reqs.reusable_tokens[window].sum())
    prompt = float(reqs.input_tokens[window].sum())
    cached = rec.cached_tokens[window]
    tiers = rec.cached_by_tier[window].sum(axis=0)
    replicas = len(out.busy_s)
    busy_end = ran_until(out, opts.duration_s + opts.drain())  # the queue series ends where the run did
    roles = np.asarray(out.roles or ("serve",) * replicas)
    entry = roles != "decode"  # where prompts are prefilled
    doc = {
        "requests": {"arrived": int(arrived.sum()), "measured": int(window.sum()), "finished": int(done.sum()),
                     "unfinished": int((window & ~np.isfinite(rec.finish_s) & ~rec.dropped).sum()),
                     "rejected": int((window & rec.dropped).sum()),
                     "preempted": int((rec.preemptions[window] > 0).sum()),
                     "preemptions": int(rec.preemptions[window].sum())},
        "ttft_s": _q(ttft),
        "tpot_s": _q(tpot),
        "ttft_mean_s": float(ttft.mean()) if ttft.size else None,
        "tpot_mean_s": float(tpot.mean()) if tpot.size else None,
        "throughput_tok_s": float(reqs.output_tokens[done].sum()) / span,
        "requests_per_s": float(done.sum()) / span,
        "arrivals_per_s": float(window.sum()) / span,
        # as the analytic model counts it: cached tokens over prefix_reuse x every prompt (first turns too)
        "prefix_hit_rate": float(cached.sum()) / (prefix_reuse * prompt) if prefix_reuse * prompt > 0 else 0.0,
        "reusable_hit_rate": float(cached.sum()) / reusable if reusable > 0 else 0.0,
        "prompt_tokens_cached": float(cached.sum()) / prompt if prompt > 0 else 0.0,
        "prompt_tokens_reusable": reusable / prompt if prompt > 0 else 0.0,
        "cached_by_tier": {"hbm": int(tiers[0]), "dram": int(tiers[1]), "nvme": int(tiers[2])},
        "utilisation": float(out.busy_s.sum() / (replicas * span)) if replicas else 0.0,
        "prefill_busy": float(out.prefill_s[entry].sum() / (entry.sum() * span)) if entry.any() else 0.0,
        "steps": int(out.steps.sum()),
        "queue": queue_series(out, busy_end),
        "new_tokens_scv": new_tokens_scv(reqs, window),
    }
    if (roles == "decode").any():  # a disaggregated plan: each pool, and the KV transfer
        doc["pools"] = {role: {"replicas": int((roles == role).sum()),
                               "busy": float(out.busy_s[roles == role].sum() / ((roles == role).sum() * span))}
                        for role in ("prefill", "decode")}
        decoders = [i for i, role in enumerate(roles) if role == "decode"]
        doc["pools"]["decode"]["occupancy"] = float(np.mean([
            _time_mean(*out.series[i][::2], opts.warmup(), opts.duration_s) / max(out.slots[i], 1) for i in decoders]))
        shipped = rec.transfer_s[window & np.isfinite(rec.transfer_s)]
        doc["kv_transfer_s"] = _q(shipped)
    return doc


def ran_until(out: Outcome, limit: float) -> float:
    """Seconds the run covered: until its last replica stopped (the requests in flight drained), at
    most `limit` (arrivals plus the longest drain allowed: reported as-is, it read 607 s for a 300 s
    run whose requests had drained long before, and the queue series ran on to it)."""
    ends = [float(t[-1]) for t, _, _ in getattr(out, "series", ()) if len(t)]
    return round(min(limit, max(ends)), 3) if ends else limit


def queue_series(out: Outcome, end: float, points: int = SERIES_POINTS) -> dict[str, list[float]]:
    """Requests waiting and running, summed over replicas, at `points` evenly spaced times."""
    grid = np.linspace(0.0, end, points)
    waiting = np.zeros(points)
    running = np.zeros(points)
    for t, w, r in out.series:
        if t.size == 0:
            continue
        i = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
        waiting += np.where(grid >= t[0], w[i], 0)
        running += np.where(grid >= t[0], r[i], 0)
    return {"t_s": [round(float(x), 3) for x in grid], "waiting": waiting.tolist(), "running": running.tolist()}


def _time_mean(t: np.ndarray, x: np.ndarray, start: float, end: float) -> float:
    """Time average over [start, end] of a step function that takes x[i] from t[i] on."""
    if t.size == 0 or end <= start:
        return 0.0
    edges = np.clip(np.append(t, np.inf), start, end)
    return float((x * np.diff(edges)).sum() / (end - start))
