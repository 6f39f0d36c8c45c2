"""The bundled prefix-cache model: a trace's replayed hit-rate curve, rescaled to any scenario, and
the shapes of its think times and of the new tokens its turns add.

`python -m planner.traces.calibrate TRACE` replays TRACE's sessions (Poisson starts at each of
`HIT_CURVE_SESSIONS` sessions in flight) through an LRU cache and prints the `[[curve]]` table of
planner/data/hit_curves.toml: the share of the reusable prefix served, against cache capacity per
session in flight in units of the trace's mean session context (input + output tokens). A
scenario without a trace reads that shape at its own context, times (turns - 1) / turns (a
session's first turn always misses), so its hit rate depends on cache size, sessions in flight,
context length and turns, the way the replay says.

The same table stores the trace's think-time shape (the gap from a reply to the session's next
request, over its mean, at SHAPE_PROBABILITIES): the simulator draws a scenario's think times from
it, rescaled to the scenario's mean, so that its sessions come back with the timing the hit-rate
curve was replayed with (mostly within seconds, a few after hours) rather than a memoryless gap;
and the shape of a turn's new share of its prompt, which the simulator's turns follow when a
scenario states `uncached_scv`.
"""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from pathlib import Path

import numpy as np

from planner.traces.curve import HIT_CURVE_SESSIONS, HIT_CURVE_TOKENS, collapse, replayed_table
from planner.traces.readers import read_trace
from planner.traces.stats import first_turns, prepare, session_gaps

CONTEXT_GRID = np.logspace(-3.0, 3.0, 33)
"""Capacity per session in flight / mean session context at which the bundled shape is stored."""
CURVES_FILE = Path(__file__).resolve().parent.parent / "data" / "hit_curves.toml"
SHAPE_PROBABILITIES = np.array([0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                                0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99,
                                0.995, 0.998, 0.999, 0.9995, 1.0])
"""Probabilities at which the think-time and new-token shapes are stored: every 5 % in the body,
denser in the tail, which carries much of the mean (the Claude Code trace's think times: median
0.068 x the mean, p99 15 x)."""


@cache
def _curve(curve_id: str) -> dict:
    """The `[[curve]]` table `curve_id`, read once for the hit-rate, think-time and new-token shapes
    (callers copy what they use into arrays; the table is not modified)."""
    with open(CURVES_FILE, "rb") as f:
        doc = tomllib.load(f)
    for c in doc["curve"]:
        if c["id"] == curve_id:
            return c
    raise KeyError(curve_id)


@cache
def bundled_shape(curve_id: str = "claude-code") -> np.ndarray:
    """[sessions x CONTEXT_GRID] share of the reusable prefix served (1.0 with an unbounded cache)."""
    return np.asarray(_curve(curve_id)["hit_share"], dtype=np.float64)


@cache
def think_time_shape(curve_id: str = "claude-code") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, think time / mean at each): the trace's quantile function, rescaled so that the
    function through them (`quantile_at`, what the simulator draws from) has mean exactly 1, so a
    scenario's think_time_s stays its mean."""
    return _shape(curve_id, "think_time_shape")


@cache
def new_token_shape(curve_id: str = "claude-code") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, share of a turn's prompt that is new / its mean at each), mean exactly 1: how
    unevenly a session's turns add tokens (mostly ~1 % of the prompt, now and then all of it)."""
    return _shape(curve_id, "new_token_shape")


@cache
def new_token_growth_share(curve_id: str = "claude-code") -> float:
    """Share of later turns' new tokens that turns extending their context add (the rest come with
    the few turns that lose most of their prefix: 2 % of the Claude Code trace's turns, half its
    new tokens). The simulator's sessions grow their prompts by this share (`arrivals.synthetic`)."""
    return float(_curve(curve_id)["new_token_growth_share"])


def _shape(curve_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    c = _curve(curve_id)
    p = np.asarray(c["shape_probabilities"], dtype=np.float64)
    q = np.asarray(c[key], dtype=np.float64)
    return p, q / quantile_mean(p, q)


def quantile_at(p: np.ndarray, q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The quantile function through (p, q) at probabilities u: geometric between positive points
    (a heavy tail's quantiles grow about exponentially between stored points, so a straight line
    would overstate its mean: by 6 % on the Claude Code gaps, against 2 %), linear from a zero."""
    i = np.clip(np.searchsorted(p, u, side="right") - 1, 0, p.size - 2)
    f = (u - p[i]) / (p[i + 1] - p[i])
    a, b = q[i], q[i + 1]
    geometric = (a > 0.0) & (b > 0.0)
    ratio = np.where(geometric, b, 1.0) / np.where(geometric, a, 1.0)
    return np.where(geometric, a * ratio**f, a + f * (b - a))


def quantile_mean(p: np.ndarray, q: np.ndarray) -> float:
    """Mean of the distribution whose quantile function is `quantile_at` through (p, q): per segment,
    (b - a) / ln(b / a) where geometric, (a + b) / 2 where linear."""
    a, b = q[:-1], q[1:]
    geometric = (a > 0.0) & (b > 0.0) & (np.abs(b - a) > 1e-12 * np.maximum(a, 1e-300))
    log_ratio = np.log(np.where(geometric, b, 2.0) / np.where(geometric, a, 1.0))
    return float(np.sum(np.diff(p) * np.where(geometric, (b - a) / log_ratio, (a + b) / 2.0)))


@cache
def collapsed_shape(curve_id: str = "claude-code") -> tuple[np.ndarray, float, float]:
    """The bundled shape as one curve over CONTEXT_GRID (16 sessions), its pool exponent and error."""
    return collapse(bundled_shape(curve_id), np.log10(CONTEXT_GRID))


def scenario_table(context_tokens: float, turns: float, curve_id: str = "claude-code") -> tuple[np.ndarray, float]:
    """The Load curve for a scenario without a trace: the bundled shape at the scenario's context,
    x (turns - 1) / turns, and its pool exponent."""
    curve, exponent, _ = collapsed_shape(curve_id)
    x = np.log10(HIT_CURVE_TOKENS / max(context_tokens, 1.0))
    return (turns - 1.0) / turns * np.interp(x, np.log10(CONTEXT_GRID), curve), exponent


def shape_from_trace(path: str) -> tuple[np.ndarray, float]:
    trace = read_trace(path)
    p = prepare(trace)
    ctx = float(trace.input_tokens.mean() + trace.output_tokens.mean())
    table = replayed_table(trace, p)  # at HIT_CURVE_TOKENS per session
    x = np.log10(HIT_CURVE_TOKENS / ctx)
    return np.stack([np.interp(np.log10(CONTEXT_GRID), x, row) for row in table]), ctx


def think_shape_from_trace(path: str) -> tuple[np.ndarray, float]:
    """(quantiles of the reply-to-next-request gap / its mean at SHAPE_PROBABILITIES, mean gap s).
    The last point is not the trace's maximum but the end that gives the top segment the mean of the
    gaps above the last stored quantile: one pause of hours would otherwise set the tail's weight."""
    trace = read_trace(path)
    gaps = session_gaps(trace, prepare(trace).done_s)
    if not gaps.size or gaps.mean() <= 0.0:
        raise ValueError(f"{path}: no gaps between a session's requests to take a think-time shape from")
    x = gaps / gaps.mean()
    q = np.quantile(x, SHAPE_PROBABILITIES)
    a, top = q[-2], float(x[x >= q[-2]].mean())
    lo, hi = a * (1.0 + 1e-9), max(2.0 * top, a * 2.0)  # segment mean (b - a) / ln(b / a) rises with b
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if (mid - a) / np.log(mid / a) < top else (lo, mid)
    q[-1] = 0.5 * (lo + hi)
    return q, float(gaps.mean())


BREAK_SHARE = 0.5
"""A later turn whose new tokens are more than this share of its prompt lost its prefix (a compacted
or rewritten context) rather than extending it (`new_token_growth_share`)."""


def new_token_shape_from_trace(path: str) -> tuple[np.ndarray, float, float]:
    """(quantiles of a turn's new share of its prompt / its mean at SHAPE_PROBABILITIES, the mean,
    the share of the new tokens that turns extending their context add: those with at most
    BREAK_SHARE of their prompt new), over every request but a session's first, with an unbounded
    prefix cache."""
    from planner.traces.stats import run, unbounded_hit_tokens

    trace = read_trace(path)
    if not trace.has_sessions:
        raise ValueError(f"{path}: no sessions to take a new-token shape from")
    prompt = trace.input_tokens.astype(np.float64)
    hit = unbounded_hit_tokens(trace, run(prepare(trace))).astype(np.float64)
    later = ~first_turns(trace)
    share = ((prompt - hit) / np.maximum(prompt, 1.0))[later]
    new = (prompt - hit)[later]
    growth = float(new[share <= BREAK_SHARE].sum() / max(new.sum(), 1.0))
    return np.quantile(share / share.mean(), SHAPE_PROBABILITIES), float(share.mean()), growth


def main(argv: list[str]) -> None:
    shape, ctx = shape_from_trace(argv[0])
    print(f"# mean session context {ctx:,.0f} tokens; sessions in flight {HIT_CURVE_SESSIONS.tolist()}")
    print("hit_share = [")
    for row in shape:
        print("  [" + ", ".join(f"{v:.4f}" for v in row) + "],")
    print("]")
    think, mean = think_shape_from_trace(argv[0])
    print(f"# reply to next request: mean {mean:,.1f} s")
    print("shape_probabilities = [" + ", ".join(f"{v:g}" for v in SHAPE_PROBABILITIES) + "]")
    print("think_time_shape = [" + ", ".join(f"{v:.5g}" for v in think) + "]")
    new, share, growth = new_token_shape_from_trace(argv[0])
    print(f"# new share of a turn's prompt: mean {share:.4f}")
    print("new_token_shape = [" + ", ".join(f"{v:.5g}" for v in new) + "]")
    print(f"new_token_growth_share = {growth:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
