"""What a trace says about a workload: length quantiles, session shape, arrival rate and prefix reuse.

Replays (see replay.py) run on one of two timelines:
- "as recorded": absolute timestamps as given; session-relative ones (every session starts at 0)
  put all sessions side by side at once, which is how the trace README states its LRU figures;
- "Poisson sessions at mean concurrency N": sessions (in a seeded random order) start as a Poisson
  process of rate N / mean session duration (Little's law), each request at start + its offset.
Cache capacities are tokens; a capacity fraction is of the distinct prompt tokens held in blocks
(the sum over distinct blocks of the tokens each holds), so a 512-token trace re-blocked from
64-token blocks (a partial last block is a new id each turn) is not charged for its partial tails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.traces.readers import Trace, block_size_note
from planner.traces.replay import Replay, dense_block_ids, replay

DEFAULT_FRACTIONS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
DEFAULT_TTLS_S = (60.0, 300.0, 3600.0)
DEFAULT_CONCURRENCY = (16, 64, 256)
CONCURRENCY_CAPACITY_TOKENS = 4_000_000  # the trace README's fixed cache for its concurrency rows


@dataclass
class Prepared:
    """A trace plus what every replay of it shares (dense block ids, distinct tokens, timelines)."""

    trace: Trace
    dense: tuple[np.ndarray, int]
    distinct_tokens: float
    done_s: np.ndarray  # arrival + call duration where known (when the blocks were last in use)
    cache: dict[Any, Replay] = field(default_factory=dict)


def block_tokens(trace: Trace) -> np.ndarray:
    """Tokens each block of each request holds (the last block of a prompt may be partial)."""
    n = np.diff(trace.offsets)
    pos = np.arange(trace.blocks.size) - np.repeat(trace.offsets[:-1], n)
    prompt = np.repeat(trace.input_tokens, n)
    return np.clip(prompt - pos * trace.block_size, 1, trace.block_size)


def prepare(trace: Trace) -> Prepared:
    ids, distinct = dense_block_ids(trace)
    first = np.full(distinct, -1, dtype=np.int64)
    first[ids[::-1]] = np.arange(ids.size - 1, -1, -1)  # first occurrence of each block
    distinct_tokens = float(block_tokens(trace)[first].sum()) if distinct else 0.0
    api = trace.api_time_s if trace.api_time_s is not None else np.zeros(trace.requests)
    return Prepared(trace, (ids, distinct), distinct_tokens, trace.t_s + np.nan_to_num(api))


def session_durations(trace: Trace, done_s: np.ndarray) -> np.ndarray:
    """Per session: first arrival to last completion, seconds."""
    k = len(trace.session_names)
    start = np.full(k, np.inf)
    end = np.full(k, -np.inf)
    np.minimum.at(start, trace.session, trace.t_s)
    np.maximum.at(end, trace.session, done_s)
    return end - start


def timeline(p: Prepared, concurrency: float | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Arrival time of every request on the chosen timeline (see the module docstring), and the shift
    applied to each request (arrival - recorded time)."""
    tr = p.trace
    if concurrency is None or not tr.has_sessions:
        return tr.t_s, np.zeros(tr.requests)
    dur = session_durations(tr, p.done_s)
    k = dur.size
    rng = np.random.default_rng(seed)
    rate = concurrency / max(float(dur.mean()), 1e-9)
    starts = np.empty(k)
    starts[rng.permutation(k)] = np.cumsum(rng.exponential(1.0 / rate, size=k))
    first = np.full(k, np.inf)
    np.minimum.at(first, tr.session, tr.t_s)
    shift = starts[tr.session] - first[tr.session]
    return tr.t_s + shift, shift


def run(p: Prepared, concurrency: float | None = None, seed: int = 0) -> Replay:
    key = (concurrency, seed)
    if key not in p.cache:
        t, shift = timeline(p, concurrency, seed)
        order = np.lexsort((np.arange(t.size), t))
        p.cache[key] = replay(p.trace, order, t[order], (p.done_s + shift)[order], dense=p.dense)
    return p.cache[key]


def _q(x: np.ndarray, qs) -> dict[str, float]:
    if x.size == 0:
        return {f"p{int(q)}": None for q in qs}
    return {f"p{q:g}": float(np.percentile(x, q)) for q in qs}


def session_gaps(trace: Trace, done_s: np.ndarray) -> np.ndarray:
    """Seconds from a reply to the session's next request (tool or user time), within each session."""
    if not trace.has_sessions:
        return np.zeros(0)
    order = np.lexsort((trace.t_s, trace.session))
    same = trace.session[order][1:] == trace.session[order][:-1]
    gap = trace.t_s[order][1:] - done_s[order][:-1]
    return np.maximum(gap[same], 0.0)


def unbounded_hit_tokens(trace: Trace, replay: Replay) -> np.ndarray:
    """Prompt tokens of each request an unbounded prefix cache holds (its leading blocks any earlier
    request sent), at most the prompt."""
    return np.minimum(replay.hit_blocks_per_request * trace.block_size, trace.input_tokens)


def first_turns(trace: Trace) -> np.ndarray:
    """Whether each request is its session's first (by time; every request of a trace without
    sessions): a first turn finds no earlier turn of its own to reuse."""
    if not trace.has_sessions:
        return np.ones(trace.requests, dtype=bool)
    order = np.lexsort((trace.t_s, trace.session))
    first = np.zeros(trace.requests, dtype=bool)
    first[order[np.r_[True, trace.session[order][1:] != trace.session[order][:-1]]]] = True
    return first


def _spread(x: np.ndarray) -> dict[str, float]:
    return {**_q(x, (50, 90, 99)), "mean": float(x.mean()), "scv": float(x.var() / max(float(x.mean()) ** 2, 1e-30))}


def arrival(trace: Trace, p: Prepared, concurrency: float | None) -> dict[str, Any]:
    """Request rate and how it was obtained (stated, since a session-relative trace has none)."""
    if trace.has_sessions and trace.session_relative:
        if concurrency is None:
            return {"arrival_rate_rps": None, "arrival_source": "none: timestamps are relative to each "
                    "session's start; give --concurrency (mean concurrent sessions) to derive one"}
        dur = session_durations(trace, p.done_s)
        per_session = trace.requests / dur.size
        rate = concurrency / float(dur.mean()) * per_session
        return {"arrival_rate_rps": rate, "arrival_source": f"session arrivals x requests per session: "
                f"{concurrency:g} concurrent sessions / {dur.mean():,.0f} s mean session x {per_session:.1f} requests"}
    span = float(trace.t_s.max() - trace.t_s.min())
    if span <= 0:
        return {"arrival_rate_rps": None, "arrival_source": "none: every timestamp is the same"}
    return {"arrival_rate_rps": (trace.requests - 1) / span, "arrival_source": "absolute timestamps"}


def trace_stats(trace: Trace, *, fractions=DEFAULT_FRACTIONS, ttls_s=DEFAULT_TTLS_S,
                concurrency=DEFAULT_CONCURRENCY, concurrency_capacity_tokens: float = CONCURRENCY_CAPACITY_TOKENS,
                seed: int = 0, prepared: Prepared | None = None) -> dict[str, Any]:
    """Every statistic `planner trace stats` prints, as plain JSON-ready values."""
    p = prepared or prepare(trace)
    bs = trace.block_size
    rp = run(p)
    per_req_hit = unbounded_hit_tokens(trace, rp)
    uncached = trace.input_tokens - per_req_hit
    out: dict[str, Any] = {
        "file": trace.path,
        "format": trace.format,
        "block_size": bs,
        "requests": trace.requests,
        "sessions": len(trace.session_names) if trace.has_sessions else None,
        "subagent_requests": int(trace.subagent.sum()) if trace.subagent is not None else 0,
        "timestamps": "session-relative" if trace.session_relative else "absolute",
        "input_tokens": {**_q(trace.input_tokens, (50, 90, 99)), "mean": float(trace.input_tokens.mean()),
                         "max": int(trace.input_tokens.max())},
        "output_tokens": {**_q(trace.output_tokens, (50, 90, 99)), "mean": float(trace.output_tokens.mean()),
                          "max": int(trace.output_tokens.max())},
        "input_quantiles": [float(x) for x in np.percentile(trace.input_tokens, np.arange(0, 101, 5))],
        "output_quantiles": [float(x) for x in np.percentile(trace.output_tokens, np.arange(0, 101, 5))],
    }
    if trace.has_sessions:
        per = np.bincount(trace.session, minlength=len(trace.session_names))
        gaps = session_gaps(trace, p.done_s)
        dur = session_durations(trace, p.done_s)
        out["requests_per_session"] = {**_q(per, (50, 90)), "mean": float(per.mean())}
        out["session_gap_s"] = {**_q(gaps, (50, 90)), "over_5min": float((gaps > 300).mean()) if gaps.size else None}
        out["session_duration_s"] = {**_q(dur, (50, 90)), "mean": float(dur.mean())}
    out.update(arrival(trace, p, concurrency[0] if (trace.session_relative and len(concurrency) == 1) else None))
    out.update({
        "distinct_blocks": rp.distinct_blocks,
        "distinct_tokens": p.distinct_tokens,
        "prefix_hit_unbounded": rp.unbounded_hit_rate,
        "prefix_hit_unbounded_tokens": float(per_req_hit.sum() / max(trace.input_tokens.sum(), 1)),
        "uncached_tokens": _spread(uncached),
    })
    first = first_turns(trace)
    later = ~first
    if later.any():  # a later turn's new tokens: what `workload.sessions.uncached_scv` describes
        out["new_tokens"] = _spread(uncached[later])
        # a session's first prompt against all prompts: the queue feels the first turns' misses by
        # their second moment (the screen prices them as average prompts)
        prompts = trace.input_tokens.astype(np.float64)
        opening = prompts[first]
        out["first_turns"] = {**_spread(opening), "mean_ratio": float(opening.mean() / prompts.mean()),
                              "second_moment_ratio": float((opening**2).mean() / (prompts**2).mean())}
    caps = [f * p.distinct_tokens for f in fractions]
    rates = rp.lru_hit_rate(np.asarray(caps) / bs)
    out["lru"] = [{"capacity_fraction": f, "capacity_tokens": c, "hit_rate": float(h)}
                  for f, c, h in zip(fractions, caps, rates, strict=True)]
    out["ttl"] = [{"ttl_s": t, "hit_rate": float(h)} for t, h in zip(ttls_s, rp.ttl_hit_rate(ttls_s), strict=True)]
    if trace.has_sessions and concurrency:
        rows = []
        for n in concurrency:
            h = run(p, float(n), seed).lru_hit_rate(concurrency_capacity_tokens / bs)[0]
            # each session starts once: a trace of S sessions never has more than S in flight
            rows.append({"concurrency": n, "capacity_tokens": concurrency_capacity_tokens, "hit_rate": float(h),
                         "sessions_in_trace": len(trace.session_names)})
        out["lru_concurrency"] = rows
    note = block_size_note(trace)  # a block size the rows contradict makes every figure above wrong
    out["warnings"] = [note] if note else []
    return out
