"""`planner trace stats FILE`: what a request trace says about lengths, sessions, arrivals and reuse.

Thin: reading, replay and statistics live in `planner.traces` (imported inside the command, with
numpy); this module parses flags, draws the progress bar on a terminal and renders.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

trace_app = typer.Typer(help="Read request traces (Mooncake rows or Weka sessions, .gz allowed).",
                        no_args_is_help=True)


class Format(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.add_typer(trace_app, name="trace", rich_help_panel="Plan")


def progress_bar(label: str):
    """A carriage-return bar on stderr, only when stderr is a terminal and the read runs long."""
    if not sys.stderr.isatty():
        return None
    began = time.monotonic()
    state = {"shown": False}

    def show(done: int, total: int) -> None:
        if time.monotonic() - began < 0.5 and done < total:
            return
        share = min(done / max(total, 1), 1.0)
        bar = "#" * int(share * 30)
        sys.stderr.write(f"\rreading {label} [{bar:<30}] {share:4.0%}")
        if done >= total and state["shown"]:
            sys.stderr.write("\r" + " " * (len(label) + 48) + "\r")
        state["shown"] = True
        sys.stderr.flush()

    return show


def _ints(text: str, flag: str) -> list[float]:
    from planner.errors import PlannerError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise PlannerError(f"{flag}: {text!r} must be comma-separated numbers, e.g. 16,64,256") from None
    if not values or any(not (v > 0) or v != v or v == float("inf") for v in values):
        raise PlannerError(f"{flag}: {text!r} must be positive finite numbers, e.g. 16,64,256")
    return values


@trace_app.command("stats")
def stats(
    file: Annotated[Path, typer.Argument(help="Trace: JSON lines of Mooncake rows or Weka sessions (.gz allowed).")],
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    block_size: Annotated[
        int | None, typer.Option("--block-size", min=1, max=1_048_576,
                                 help="Tokens per hash id of Mooncake rows (default 512; Weka sessions state theirs).")
    ] = None,
    concurrency: Annotated[
        str, typer.Option("--concurrency", metavar="N[,N...]",
                          help="Mean concurrent sessions for the Poisson-start replays (LRU at --cache-tokens); "
                               "one value also sets the arrival rate of a session-relative trace.")
    ] = "16,64,256",
    cache_tokens: Annotated[
        float, typer.Option("--cache-tokens", min=1, help="LRU capacity of the concurrency replays, tokens.")
    ] = 4_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the session order and Poisson starts.")] = 0,
) -> None:
    """Length quantiles, session shape, arrival rate and prefix-cache hit rates (LRU, TTL) of a trace."""
    from planner import render
    from planner.traces.readers import read_trace
    from planner.traces.stats import trace_stats

    conc = _ints(concurrency, "--concurrency")
    trace = read_trace(file, block_size=block_size, progress=progress_bar(file.name))
    result = trace_stats(trace, concurrency=tuple(conc), concurrency_capacity_tokens=cache_tokens, seed=seed)
    for warning in result["warnings"]:
        typer.echo(f"warning: {warning}", err=True)
    if format == Format.json:
        render.print_json(result)
    else:
        _table(result)


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _n(x: Any) -> str:
    from planner import render

    return render.num(x)


def _table(s: dict[str, Any]) -> None:
    from planner import render

    con = render.console()
    rows = render.table("statistic", "value", title=f"{Path(s['file']).name}: {s['format']} trace, "
                                                   f"{s['block_size']}-token blocks")
    q = s["input_tokens"]
    rows.add_row("requests", _n(s["requests"]))
    rows.add_row("sessions", "none recorded" if s["sessions"] is None else _n(s["sessions"]))
    rows.add_row("input tokens p50 / p90 / p99 / max / mean",
                 f"{_n(q['p50'])} / {_n(q['p90'])} / {_n(q['p99'])} / {_n(q['max'])} / {_n(q['mean'])}")
    o = s["output_tokens"]
    rows.add_row("output tokens p50 / p90 / p99 / max / mean",
                 f"{_n(o['p50'])} / {_n(o['p90'])} / {_n(o['p99'])} / {_n(o['max'])} / {_n(o['mean'])}")
    if "requests_per_session" in s:
        r = s["requests_per_session"]
        rows.add_row("requests per session p50 / p90", f"{r['p50']:.1f} / {r['p90']:.1f}")
        g = s["session_gap_s"]
        rows.add_row("gap reply -> next request p50 / p90 / over 5 min",
                     f"{g['p50']:.1f} s / {g['p90']:.1f} s / {_pct(g['over_5min'])}")
    rate = s["arrival_rate_rps"]
    rows.add_row("arrival rate", ("n/a" if rate is None else f"{render.figure(rate)} requests/s") + f" ({s['arrival_source']})")
    rows.add_row("prefix hit, unbounded cache", f"{_pct(s['prefix_hit_unbounded'])} of blocks "
                 f"({_pct(s['prefix_hit_unbounded_tokens'])} of tokens)")
    u = s["uncached_tokens"]
    rows.add_row("uncached prefill per request p50 / p90 / p99 / mean",
                 f"{_n(u['p50'])} / {_n(u['p90'])} / {_n(u['p99'])} / {_n(u['mean'])}")
    n = s.get("new_tokens")
    rows.add_row("uncached prefill spread (cs^2" + (")" if n else ": sessions.uncached_scv)"), f"{u['scv']:.2f}")
    if n:
        rows.add_row("new tokens of a later turn p50 / p90 / p99 / mean",
                     f"{_n(n['p50'])} / {_n(n['p90'])} / {_n(n['p99'])} / {_n(n['mean'])}")
        rows.add_row("new tokens spread (cs^2: sessions.uncached_scv)", f"{n['scv']:.2f}")
        f = s["first_turns"]
        rows.add_row("a session's first prompt p50 / p90 / p99 / mean",
                     f"{_n(f['p50'])} / {_n(f['p90'])} / {_n(f['p99'])} / {_n(f['mean'])}")
        rows.add_row("first prompt vs all: mean / second moment", f"{f['mean_ratio']:.2f}x / {f['second_moment_ratio']:.2f}x")
    for row in s["lru"]:
        rows.add_row(f"LRU {row['capacity_fraction']:.1%} of distinct tokens ({_n(row['capacity_tokens'])})",
                     _pct(row["hit_rate"]))
    for row in s["ttl"]:
        rows.add_row(f"drop blocks idle > {row['ttl_s']:g} s", _pct(row["hit_rate"]))
    for row in s.get("lru_concurrency", []):
        few = row["sessions_in_trace"]
        capped = f" (at most {few:,}: the trace's sessions)" if row["concurrency"] > few else ""
        rows.add_row(f"LRU {_n(row['capacity_tokens'])} tokens, {row['concurrency']:g} concurrent sessions{capped}",
                     _pct(row["hit_rate"]))
    con.print(rows)
