"""The bundled prefix-cache model: a trace's replayed hit-rate curve, rescaled to any scenario.

`python -m planner.traces.calibrate TRACE` replays TRACE's sessions (Poisson starts at each of
`HIT_CURVE_SESSIONS` sessions in flight) through an LRU cache and prints the `[[curve]]` table of
planner/data/hit_curves.toml: the share of the reusable prefix served, against cache capacity per
session in flight in units of the trace's mean session context (input + output tokens). A
scenario without a trace reads that shape at its own context, times (turns - 1) / turns (a
session's first turn always misses), so its hit rate depends on cache size, sessions in flight,
context length and turns, the way the replay says.
"""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from pathlib import Path

import numpy as np

from planner.traces.curve import HIT_CURVE_SESSIONS, HIT_CURVE_TOKENS, collapse, replayed_table
from planner.traces.readers import read_trace
from planner.traces.stats import prepare

CONTEXT_GRID = np.logspace(-3.0, 3.0, 33)
"""Capacity per session in flight / mean session context at which the bundled shape is stored."""
CURVES_FILE = Path(__file__).resolve().parent.parent / "data" / "hit_curves.toml"


@cache
def bundled_shape(curve_id: str = "claude-code") -> np.ndarray:
    """[sessions x CONTEXT_GRID] share of the reusable prefix served (1.0 with an unbounded cache)."""
    with open(CURVES_FILE, "rb") as f:
        doc = tomllib.load(f)
    for c in doc["curve"]:
        if c["id"] == curve_id:
            return np.asarray(c["hit_share"], dtype=np.float64)
    raise KeyError(curve_id)


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


def main(argv: list[str]) -> None:
    shape, ctx = shape_from_trace(argv[0])
    print(f"# mean session context {ctx:,.0f} tokens; sessions in flight {HIT_CURVE_SESSIONS.tolist()}")
    print("hit_share = [")
    for row in shape:
        print("  [" + ", ".join(f"{v:.4f}" for v in row) + "],")
    print("]")


if __name__ == "__main__":
    main(sys.argv[1:])
