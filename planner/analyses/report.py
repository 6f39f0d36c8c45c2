"""Tables for `whatif`, `sweep` and `project`: one screen that answers the question.

Timing goes on a last line starting with `timing:` (tests drop it from snapshots).
"""

from __future__ import annotations

from typing import Any

from planner import render
from planner.analyses.fleet import fleet
from planner.analyses.project import Projection
from planner.analyses.sweep import SweepResult, timing_summary
from planner.analyses.whatif import Evaluation, closest_miss
from planner.render import money, spec_words, tiers
from planner.schema import Scenario
from planner.solve_report import layout_cell, link_note
from planner.uncertainty import UNCALIBRATED_NOTE


def pct(x: float | None) -> str:
    return "" if x is None else f"{x:+.1f}%"




def _disagg_view(p: dict[str, Any]) -> dict[str, Any]:
    """A disaggregated plan seen through the aggregated columns: the decode pool's batch, dtypes,
    tiers and lookahead, the prefill pool's prefix cache, and the layouts of both pools."""
    pre, dec = p["prefill"], p["decode"]
    return {**p, "layout_text": f"P {pre['layout_text']}; D {dec['layout_text']}", "batch": dec["batch"],
            "layout_cell": f"P {layout_cell(pre)}; D {layout_cell(dec)}",
            "weight_dtype": f"{pre['weight_dtype']}|{dec['weight_dtype']}", "kv_dtype": dec["kv_dtype"],
            "tier_split": dec["tier_split"], "spec_k": dec["spec_k"], "spec_method": dec.get("spec_method", "none"),
            "prefix_cache": pre["prefix_cache"],
            "prefix_hit_rate": pre["prefix_hit_rate"], "attention": dec["attention"]}


def header(sc: Scenario) -> str:
    w = sc.workload
    sessions = ""
    if w.sessions.turns > 1:
        sessions = f", {w.sessions.turns}-turn sessions with {w.sessions.prefix_reuse:.0%} prefix reuse"
    return (f"{sc.name}\n  {sc.model.id}, {w.arrival_rate_rps:g} req/s, prompt median {w.input_tokens.median:,} tok, "
            f"output median {w.output_tokens.median:,} tok{sessions}; SLO TTFT p95 <= {sc.slo.ttft_p95_s:g} s, "
            f"TPOT p95 <= {sc.slo.tpot_p95_ms:g} ms")


def describe(p: dict[str, Any]) -> str:
    if p.get("mode") == "disaggregated":
        from planner.disagg_plans import pools_words

        return (f"disaggregated, {pools_words(p)}: {money(p['monthly_usd'])}{_star(p)}/month, TTFT p95 {p['ttft_p95_s']:.2f} s, "
                f"TPOT p95 {p['tpot_p95_ms']:.1f} ms")
    return (f"{fleet(p)} ({p['layout_text']}), batch {p['batch']}, weights {p['weight_dtype']}, KV {p['kv_dtype']} ({tiers(p)}), "
            f"speculation {spec_words(p)}, prefix cache {'on' if p['prefix_cache'] else 'off'}, {p['attention']} attention: "
            f"{money(p['monthly_usd'])}{_star(p)}/month, TTFT p95 {p['ttft_p95_s']:.2f} s, TPOT p95 {p['tpot_p95_ms']:.1f} ms")


def _widened(widened: dict[str, list[Any]]) -> str:
    if not widened:
        return ""
    added = "; ".join(f"{k} += {', '.join(str(v) for v in vals)}" for k, vals in widened.items())
    return f"baseline = cheapest over the scenario's grid widened for the variants: {added}"


def _infeasible_table(ev: Evaluation) -> Any:
    bad = render.table("hardware", "fails on", "closest plan", title="No feasible plan")
    for x in sorted(ev.infeasible, key=lambda x: x["hardware"]):
        bad.add_row(x["hardware"], x["constraint"], x["reason"])
    return bad


PLAN_RIGHT = ("batch", "TTFT\np95 s", "TPOT\np95 ms", "$/Mtok\nout", "$/month", "vs\nbaseline", "vs first")


def _plan_cells(p: dict[str, Any]) -> list[str]:
    """One plan's cells; the layout as `solve`'s table has it (short, LINK_MARK where an instance
    spans nodes over the scale-out network: `link_note` names the link)."""
    p = _disagg_view(p) if p.get("mode") == "disaggregated" else {**p, "layout_cell": layout_cell(p)}
    return [fleet(p), p["layout_cell"], str(p["batch"]), f"{p['weight_dtype']}/{p['kv_dtype']}", tiers(p), spec_words(p),
            f"{p['prefix_hit_rate'] or 0:.0%} hit" if p["prefix_cache"] else "off", p["attention"], f"{p['ttft_p95_s']:.2f}",
            f"{p['tpot_p95_ms']:.1f}", f"{p['usd_per_mtok_output']:.3f}", money(p["monthly_usd"]) + _star(p)]


def _star(plan: dict[str, Any] | None) -> str:
    """solve's mark on a bill that rests on prior efficiencies (hardware no measurement calibrates)."""
    return "*" if plan is not None and plan.get("calibration") == "uncalibrated" else ""


def _uncalibrated_note(con: Any, plans: Any) -> None:
    if any(_star(p) for p in plans):
        con.print(f"{UNCALIBRATED_NOTE} (prior efficiencies); wide band in JSON", markup=False)


def _sweep_cells(p: dict[str, Any]) -> list[str]:
    cells = _plan_cells(p)
    return cells[:7] + cells[8:]  # no attention column: the naive-attention variant's name says it


def _plans_table(first: str, *extra: str, title: str, right: tuple[str, ...]) -> Any:
    """whatif's and sweep's table: solve's compact spacing, and the key column never wrapped."""
    t = render.table(first, *SWEEP_COLUMNS, *extra, title=title, right=right, compact=True)
    t.columns[0].no_wrap = True
    return t


def write_whatif(ev: Evaluation) -> None:
    con = render.console()
    con.print(header(ev.scenario))
    if ev.best is None:
        con.print("No plan meets the SLOs on any hardware searched, so there is no baseline to take techniques from.")
        con.print(_infeasible_table(ev))
    else:
        con.print(f"Baseline: {describe(ev.best)}")
        note = _widened(ev.widened)
        if note:
            con.print(f"  {note}")
        if ev.baseline_host_tiers not in (None, "all"):
            con.print(f"  baseline leaves host tiers unused ({ev.baseline_host_tiers})")
        if ev.baseline_spec_method in ev.spec_methods_added:
            con.print(f"  baseline drafts by {ev.baseline_spec_method}, a speculative method the scenario does not search "
                      "(added for the spec-* variants): `planner solve` answers without it")
        t = _plans_table("variant", "vs\nbaseline", title="Best plan with one technique taken away", right=PLAN_RIGHT)
        t.add_row("baseline", *_sweep_cells(ev.best), "")
        for r in ev.variants:
            if r.best is not None:
                same = "=" if r.same_as_baseline else ""
                t.add_row(r.name, *_sweep_cells(r.best), pct(r.delta_pct) + same)
            else:
                why = "not searched" if not r.searched else "infeasible"
                t.add_row(r.name, why, *[""] * (len(SWEEP_COLUMNS) - 1), "")
        con.print(t)
        note = link_note(p for p in (ev.best, *(r.best for r in ev.variants)) if p is not None)
        if note:
            con.print(note, markup=False)
        if any(r.same_as_baseline for r in ev.variants):
            con.print("= the restriction removes nothing from the searched grid")
        _uncalibrated_note(con, (ev.best, *(r.best for r in ev.variants)))
    con.print(f"searched {ev.configs:,} configurations once for all variants")
    con.print(f"timing: {ev.seconds:.2f} s")


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


SWEEP_COLUMNS = ("plan", "layout", "batch", "w/kv", "tiers", "k", "prefix", "TTFT\np95 s", "TPOT\np95 ms",
                 "$/Mtok\nout", "$/month")
"""Two-line headers where the name is twice its values' width, as in solve's table."""


def write_sweep(result: SweepResult) -> None:
    con = render.console()
    first = result.evaluations[0]
    con.print(header(result.base or first.scenario))
    note = _widened(first.widened)
    if note:
        con.print(f"  {note}")
    drafting = {}  # the points whose best plan drafts by a method only the spec-* variants added
    for p, ev in zip(result.points, result.evaluations, strict=True):
        if ev.best is not None and ev.baseline_spec_method in ev.spec_methods_added:
            drafting.setdefault(ev.baseline_spec_method, []).append(_value_text(p.value))
    for method, values in drafting.items():
        con.print(f"  best plan at {', '.join(values)} drafts by {method}, a speculative method the scenario does not "
                  "search (added for the spec-* variants): `planner solve` answers without it")
    t = _plans_table("value", "vs first", "binding", title=f"Best plan as {result.param} varies",
                     right=PLAN_RIGHT + ("value",))
    base_cost = next((ev.best["monthly_usd"] for ev in result.evaluations if ev.best is not None), None)
    misses: list[str] = []
    for p, ev in zip(result.points, result.evaluations, strict=True):
        value = _value_text(p.value)
        if ev.best is None:
            miss = closest_miss(ev)
            if miss:
                misses.append(f"  {value}: closest is {miss['hardware']} ({miss['constraint']}): {miss['reason']}")
            t.add_row(value, "infeasible", *[""] * len(SWEEP_COLUMNS))
            continue
        vs = 100.0 * (ev.best["monthly_usd"] - base_cost) / base_cost if base_cost else None
        t.add_row(value, *_sweep_cells(ev.best), pct(vs), ev.best["binding"])
    con.print(t)
    note = link_note(ev.best for ev in result.evaluations if ev.best is not None)
    if note:
        con.print(note, markup=False)
    _uncalibrated_note(con, [ev.best for ev in result.evaluations]
                       + [r.best for ev in result.evaluations for r in ev.variants])
    if misses:
        con.print("No plan meets the SLOs at:")
        for line in misses:
            con.print(line)
    if first.variants:
        names = [r.name for r in first.variants]
        con.print("Monthly bill with each technique taken away (change vs the best plan at that value)")
        v = render.table("value", "best", *names, right=("value", "best", *names))
        for p, ev in zip(result.points, result.evaluations, strict=True):
            best = ev.best["monthly_usd"] if ev.best else None
            cells = [f"{money(r.monthly_usd)}{_star(r.best)} {pct(r.delta_pct)}" if r.best is not None else "infeasible"
                     for r in ev.variants]
            v.add_row(_value_text(p.value), money(best) + _star(ev.best), *cells)
        con.print(v)
    ts = timing_summary(result)
    later = "" if ts["later_mean_s"] is None else f", later points {ts['later_mean_s']:.2f} s each"
    con.print(f"timing: {len(result.points)} points in {ts['total_s']:.2f} s: first {ts['first_s']:.2f} s "
              f"(includes compilation unless cached){later}")


def column_chunks(columns: list[str], rows: list[list[str]], fixed: int, width: int
                  ) -> list[tuple[list[str], list[int]]]:
    """Split a wide table by column so that no cell wraps: the first `fixed` columns, then as many
    of the rest as fit `width`; further tables repeat the first column (the key) with the rest."""
    def need(i: int) -> int:
        return max([len(columns[i]), *(len(r[i]) for r in rows)]) + 3  # cell plus padding and rule

    chunks: list[list[int]] = [list(range(fixed))]
    used = sum(need(i) for i in chunks[0])
    for i in range(fixed, len(columns)):
        if used + need(i) > width and len(chunks[-1]) > 1:
            chunks.append([0])
            used = need(0)
        chunks[-1].append(i)
        used += need(i)
    return [([columns[i] for i in c], c) for c in chunks]


def write_project(p: Projection) -> None:
    con = render.console()
    sc = p.scenario
    con.print(header(sc))
    if p.baseline is None:
        con.print("No plan meets the SLOs on any hardware searched: nothing to project.")
        bad = render.table("hardware", "fails on", "closest plan", title="No feasible plan")
        for x in p.infeasible:
            bad.add_row(x["hardware"], x["constraint"], x["reason"])
        con.print(bad)
        return
    con.print(f"Self-hosted today: {describe(p.baseline)}")
    share = sc.workload.sessions.prefix_reuse * (sc.workload.sessions.turns - 1) / sc.workload.sessions.turns
    con.print(f"Per request: mean prompt {p.in_mean:,.0f} tok ({share:.0%} served from a prompt cache on APIs), "
              f"mean output {p.out_mean:,.0f} tok")
    if p.apis:
        api_t = render.table("API", "$/Mtok in", "cached in", "out", "source (date)", "$/month", "x self-hosted",
                             title="API list prices vs self-hosted, today",
                             right=("$/Mtok in", "cached in", "out", "$/month", "x self-hosted"))
        for a in p.apis:
            mark = "" if a["verified"] else " [U]"
            api_t.add_row(a["name"] + mark, f"{a['input']:.3f}", f"{a['cached_input']:.3f}", f"{a['output']:.2f}",
                          f"{a['source']} ({a['date']})", money(a["monthly_usd"]), f"{a['vs_self_hosted']:.2f}")
        con.print(api_t)
    api_ids = [a["id"] for a in p.apis]
    rows = []
    prev = None
    for r in p.rows:
        sh = r["self_hosted"]
        cost = sh["monthly_usd"] if sh else None
        vs = "" if prev is None or cost is None else pct(100.0 * (cost - prev) / prev)
        flag = " ^" if r["spend_rises"] else ""
        rows.append([str(r["year"]), f"{r['price_factor']:.3f}", render.figure(r["usage_factor"]),
                     render.figure(r["arrival_rate_rps"]), sh["fleet"] if sh else "n/a",
                     money(cost) + _star(sh) + flag, vs, *[money(r["api_monthly_usd"][i]) for i in api_ids]])
        prev = cost if cost is not None else prev
    base = ["year", "token price x", "usage x", "req/s", "self-hosted plan", "$/month", "vs prev"]
    title = (f"Monthly bill: token prices -{p.price_decline_pct:g}%/yr (APIs -{p.api_price_decline_pct:g}%/yr), "
             f"usage x{p.usage_growth:g}/yr")
    for n, (cols, picked) in enumerate(column_chunks(base + api_ids, rows, len(base), con.width)):
        t = render.table(*cols, title=title if n == 0 else "Monthly bill, continued: more APIs",
                         right=tuple(c for c in cols if c not in ("self-hosted plan",)))
        for row in rows:
            t.add_row(*[row[i] for i in picked])
        con.print(t)
    _uncalibrated_note(con, [p.baseline, *(r["self_hosted"] for r in p.rows)])
    combined = p.usage_growth * (1.0 - p.price_decline_pct / 100.0)
    if p.jevons_year is not None:
        con.print(f"^ Jevons: tokens get {p.price_decline_pct:g}% cheaper each year but usage grows x{p.usage_growth:g} "
                  f"(net x{combined:.2f}/yr), so self-hosted spend rises from year {p.jevons_year} on.")
    elif len(p.rows) < 2:
        pass  # only today was projected (a warning says why): no trend to state
    elif p.price_decline_pct > 0 and combined > 1.0:
        con.print(f"No rise in self-hosted spend over the years projected, although usage growth x{p.usage_growth:g} "
                  f"outpaces the {p.price_decline_pct:g}% yearly price decline (net x{combined:.2f}/yr): each year's "
                  "plan, re-solved for its load, cost no more at that year's prices than the year before's.")
    elif p.price_decline_pct > 0:
        con.print(f"No Jevons effect: usage growth x{p.usage_growth:g} does not outpace the {p.price_decline_pct:g}% "
                  f"yearly price decline (net x{combined:.2f}/yr); spend does not rise.")
    con.print(f"timing: {len(p.seconds)} solves in {sum(p.seconds):.2f} s")
