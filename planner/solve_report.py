"""Render a `SolveResult` as JSON, TOML, CSV or the table a person reads first."""

from __future__ import annotations

import csv
import io as _io
import sys
from collections.abc import Iterable
from typing import Any

import tomli_w

from planner import render
from planner.plans import degrees_words
from planner.quality import unmodelled_accuracy
from planner.render import per_hardware_title
from planner.search import SolveResult
from planner.uncertainty import UNCALIBRATED_NOTE

CSV_COLUMNS = ("plan", "mode", "pool", "hardware", "chips", "replicas", "layout", "tp", "pp", "ep", "dp_attention", "cp",
               "replicas_per_system", "nodes", "batch", "weight_dtype", "kv_dtype", "tier_hbm", "tier_dram",
               "tier_nvme", "spec_k", "spec_method", "prefix_cache", "attention", "ttft_p50_s", "ttft_p95_s", "tpot_p50_ms",
               "tpot_p95_ms", "throughput_tok_s", "served_output_tok_s", "usd_per_hour", "usd_per_mtok_input", "usd_per_mtok_output",
               "monthly_usd", "plan_monthly_usd", "binding", "quality_note", "cost_mode", "energy_kwh_month", "energy_usd_month",
               "capex_usd", "sized_rps")
PLAN_COLUMNS = ("ttft_p50_s", "ttft_p95_s", "tpot_p50_ms", "tpot_p95_ms", "throughput_tok_s", "served_output_tok_s",
                "usd_per_mtok_input", "usd_per_mtok_output", "quality_note")
"""The whole plan's figures, which both pool rows of a disaggregated plan repeat (its latencies end to end)."""


def csv_rows(plans: list[dict[str, Any]], ranks: list[int] | None = None) -> list[list[Any]]:
    """CSV_COLUMNS rows of `plans` (ranked, cheapest first): one per aggregated plan, one per pool of
    a disaggregated plan (prefill, then decode). `plan` numbers the plans as `--plan N` does;
    `monthly_usd` and `usd_per_hour` are the row's own (a pool's), `plan_monthly_usd` the plan's, so
    the rows of a plan add up to it."""
    rows = []
    for rank, p in zip(ranks or range(1, len(plans) + 1), plans, strict=True):
        mode = p.get("mode", "aggregated")
        parts = [(p[pool], pool) for pool in ("prefill", "decode")] if mode == "disaggregated" else [(p, "")]
        for part, pool in parts:
            row: dict[str, Any] = {**part, **{k: p.get(k) for k in PLAN_COLUMNS}, **part["layout"],
                                   "plan": rank, "mode": mode, "pool": pool, "layout": part["layout_text"],
                                   "plan_monthly_usd": p["monthly_usd"]}
            split = part.get("tier_split")
            if split is not None:
                row.update(tier_hbm=split["hbm"], tier_dram=split["dram"], tier_nvme=split["nvme"])
            rows.append(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
    return rows


def to_dict(result: SolveResult, top: int) -> dict[str, Any]:
    sc = result.grid.scenario
    ld = result.grid.load
    return {
        "scenario": sc.name,
        "model": {"id": sc.model.id},
        "workload": {
            "arrival_rate_rps": sc.workload.arrival_rate_rps,
            "input_tokens_median": sc.workload.input_tokens.median,
            "input_tokens_mean": round(float(ld.in_mean), 1),
            "output_tokens_median": sc.workload.output_tokens.median,
            "output_tokens_mean": round(float(ld.out_mean), 1),
            "prefix_reuse": sc.workload.sessions.prefix_reuse,
            "turns_per_session": sc.workload.sessions.turns,
        },
        "slo": {"ttft_p95_s": sc.slo.ttft_p95_s, "tpot_p95_ms": sc.slo.tpot_p95_ms},
        **_trace_section(result),
        "quality": sc.quality.model_dump(mode="json"),
        "cost": sc.cost.model_dump(mode="json"),
        "warnings": list(result.grid.warnings),
        "mode": result.best["mode"] if result.best else None,
        "best": result.best,
        **_modes_section(result),
        "per_hardware": result.per_hardware[:max(top, 1)] if top else result.per_hardware,
        "pareto": result.pareto_tpot,
        "pareto_ttft": result.pareto_ttft,
        "infeasible": [{k: v for k, v in x.items() if k != "closest"} for x in result.infeasible],
        "search": {"configs": result.configs, "seconds": round(result.seconds, 3),
                   "hardware": len(result.grid.hardware), "risk": sc.search.risk},
    }


def _modes_section(result: SolveResult) -> dict[str, Any]:
    """The serving-mode axis: the best plan of each mode and what the disaggregated search did."""
    out = result.disagg
    if out is None:
        return {}
    return {"best_per_mode": out.best_per_mode, "disaggregation": out.stats}


def _trace_section(result: SolveResult) -> dict[str, Any]:
    """With a trace: its statistics and the prefix hit the best plan assumes (share of prompt tokens
    served from cache, and what the routing and sessions in flight make of the replayed curve)."""
    sc = result.grid.scenario
    if sc.workload.trace is None:
        return {}
    from planner.traces.curve import cached_trace_workload

    tw = cached_trace_workload(sc.workload.trace)
    best = result.best or {}
    hit = best.get("prefix_hit_rate")
    assumed = None if hit is None else round(hit * sc.workload.sessions.prefix_reuse, 4)
    return {"trace": {**tw.summary, "routing": sc.workload.sessions.routing,
                      "prefix_hit_assumed": assumed}}


def _strip_none(value):
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value if v is not None]
    return value


def write_toml(result: SolveResult, top: int, verify: dict[str, Any] | None = None) -> None:
    """The JSON document as TOML (with `--verify`, its simulation under `verify`, as JSON has it)."""
    doc = to_dict(result, top)
    if verify is not None:
        doc["verify"] = verify
    sys.stdout.write(tomli_w.dumps(_strip_none(doc)))


def write_csv(result: SolveResult, top: int) -> None:
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    ranked = list(enumerate(result.ranked_plans(), 1))
    if top:  # --top counts hardware rows, as the table and JSON do; the disaggregated plan comes beside them
        kept = {id(p) for p in result.per_hardware[:top]}
        ranked = [(n, p) for n, p in ranked if id(p) in kept or p.get("mode") == "disaggregated"]
    writer.writerows(csv_rows([p for _, p in ranked], [n for n, _ in ranked]))
    sys.stdout.write(buf.getvalue())


def _band(plan: dict[str, Any]) -> str:
    """The bill's uncertainty band as a person reads it."""
    low, high = plan.get("monthly_usd_low"), plan.get("monthly_usd_high")
    if low is None or high is None:
        return "band unknown"
    words = f"{render.money(low)}-{render.money(high)} p10-p90"
    return words + (", uncalibrated hardware" if plan["calibration"] == "uncalibrated" else "")


FOUR_BIT_MARK = "(4-bit)"


def cost_words(plan: dict[str, Any], sc: Any, capex_kind: str | None = None) -> str:
    """Where the bill comes from: rent, or capex amortised plus energy, and the host memory that
    offloaded KV and the prefix cache occupy ($/GB-hour, hardware/host-tiers.toml); monthly energy
    either way."""
    kwh, energy = plan.get("energy_kwh_month"), plan.get("energy_usd_month")
    energy_text = "energy n/a (power unknown)" if kwh is None else f"energy {kwh:,.0f} kWh/month (${energy:,.0f} at ${sc.cost.usd_per_kwh:g}/kWh, PUE {sc.cost.pue:g})"
    host = plan.get("host_memory_usd_month") or 0.0
    host_text = f" + host memory for offloaded KV and the prefix cache {render.money(host)}/month" if host >= 0.5 else ""
    if plan.get("cost_mode") == "own":
        shows = " and ".join(f"`planner hardware show {hw}`" for hw in dict.fromkeys(plan["hardware"].split("+")))
        kind = f" ({capex_kind} price, see {shows})" if capex_kind else ""
        return (f"owned: capex {render.money(plan['capex_usd'])}{kind} over {sc.cost.amortisation_years:g} years "
                f"(host and network +{sc.cost.host_network_fraction:.0%}){host_text} + {energy_text}")
    whose = "the user's" if plan.get("price_set_by_user") else "the catalog's"
    return f"rented at {whose} $/chip-hour (energy included){host_text}; {energy_text}"


def prefix_cache_words(mem: dict[str, Any]) -> str:
    """`prefix cache holds 10.7 GB (7.0 GB of it in host memory)`: idle sessions' KV fills
    the HBM the weights, the running batch and activations leave, then spills to host memory
    (`tiers.tier_shares`) whatever the running batch's tiers (`search.dram_fraction`) are; the bill
    pays for that host memory."""
    useful, held, host = (mem.get(k) or 0.0 for k in ("prefix_cache", "prefix_cache_held", "prefix_cache_host"))
    if held <= 0:
        return f"prefix cache {useful:.1f} GB"
    return f"prefix cache holds {held:.1f} GB ({host:.1f} GB of it in host memory)"


def sized_words(plan: dict[str, Any], rate: float) -> str | None:
    """`sized for up to 3.17 req/s, +6% over the scenario's 3 (prefill pool 3.95, decode pool 3.17)`:
    the fleet's arrival rate at which every SLO and limit still holds (for a disaggregated plan, the
    pool that saturates first). The cheapest plan is sized tight by construction, so this says how
    tight: agent traffic's 20-minute windows vary by +-12 % (README, Simulation), and a window past it
    queues; plan for the peak rate."""
    sized, headroom = plan.get("sized_rps"), plan.get("rate_headroom")
    if sized is None or headroom is None:
        return None
    text = f"sized for up to {render.figure(sized)} req/s, {headroom:+.0%} over the scenario's {render.figure(rate)}"
    if plan.get("mode") == "disaggregated":
        p, d = plan["prefill"].get("sized_rps"), plan["decode"].get("sized_rps")
        if p is not None and d is not None:
            text += f" (prefill pool {render.figure(p)}, decode pool {render.figure(d)})"
    return text


def per_month(plan: dict[str, Any]) -> str:
    """`$12,345/month`, marked like `bill` when the plan rests on a 4-bit format."""
    money = f"{render.money(plan['monthly_usd'])}/month"
    return f"{money} {FOUR_BIT_MARK}" if plan.get("quality_note") else money


def bill(plan: dict[str, Any]) -> str:
    """The monthly bill, marked when it rests on a 4-bit format (accuracy not modelled)."""
    money = render.money(plan["monthly_usd"]) + ("*" if plan.get("calibration") == "uncalibrated" else "")
    return f"{money} {FOUR_BIT_MARK}" if plan.get("quality_note") else money


def mwh(plan: dict[str, Any]) -> str:
    kwh = plan.get("energy_kwh_month")
    return "n/a" if kwh is None else f"{kwh / 1000:,.1f}"


def write_table(result: SolveResult, top: int) -> None:
    con = render.console()
    sc = result.grid.scenario
    w = sc.workload
    con.print(f"{sc.name}: {sc.model.id}, {w.arrival_rate_rps:g} req/s, prompt median {w.input_tokens.median:,} "
              f"tok, output median {w.output_tokens.median:,} tok; SLO TTFT p95 <= {sc.slo.ttft_p95_s:g} s, "
              f"TPOT p95 <= {sc.slo.tpot_p95_ms:g} ms")
    for note in result.grid.warnings:
        con.print(f"warning: {note}", markup=False)
    b = result.best
    if b is None:
        con.print("No plan meets the SLOs on any hardware searched.")
    elif b["mode"] == "disaggregated":
        _write_disaggregated(con, b, result, sc)
    else:
        mem = b["memory_gb_per_chip"]
        con.print(
            f"Best: {b['replicas']} x {b['chips']} {b['hardware']} ({b['hardware_name']}), {b['layout_text']}, "
            f"batch {b['batch']}, "
            f"weights {b['weight_dtype']}, KV {b['kv_dtype']} ({render.tier_words(b)}), speculation {render.spec_words(b)}, "
            f"prefix cache {'on' if b['prefix_cache'] else 'off'}, {b['attention']} attention\n"
            f"  {per_month(b)} ({_band(b)})  ${b['usd_per_mtok_input']:.3f}/Mtok in  "
            f"${b['usd_per_mtok_output']:.3f}/Mtok out  TTFT p50/p95 {b['ttft_p50_s']:.2f}/{b['ttft_p95_s']:.2f} s  "
            f"TPOT p50/p95 {b['tpot_p50_ms']:.1f}/{b['tpot_p95_ms']:.1f} ms  binding: {b['binding']}\n"
            f"  per chip: weights {mem['weights']:.1f} GB, running batch's KV in HBM {mem['kv_hbm']:.1f} GB, offloaded "
            f"{(mem['kv_dram'] or 0) + (mem['kv_nvme'] or 0):.1f} GB, {prefix_cache_words(mem)}, "
            f"usable {mem['usable_hbm']:.1f} GB; prefix hit rate {b['prefix_hit_rate']:.0%}")
        acc = next((a for a in result.grid.hardware if a.id == b["hardware"]), None)
        con.print(f"  {cost_words(b, sc, getattr(acc, 'capex_kind', None))}", markup=False)
        sized = sized_words(b, sc.workload.arrival_rate_rps)
        if sized:
            con.print(f"  {sized}", markup=False)
        if b["quality_note"]:
            con.print(f"  note: {b['quality_note']}", markup=False)
        _write_other_mode(con, result)
    # two-line headers: the values are 5-7 characters wide, the one-line names 9-11 (16 columns in 160)
    ttft, tpot, usd_in, usd_out = "TTFT\np95 s", "TPOT\np95 ms", "$/Mtok\nin", "$/Mtok\nout"
    num = ("chips", "x", "batch", ttft, tpot, usd_in, usd_out, "$/month", "MWh/mo")
    t = render.table("hardware", "chips", "x", "layout", "batch", "w/kv", "tiers", "spec", "prefix", ttft,
                     tpot, usd_in, usd_out, "$/month", "MWh/mo", "binding",
                     title=per_hardware_title(result), right=num, compact=True)
    shown = result.per_hardware[:top] if top else result.per_hardware
    for p in shown:
        t.add_row(p["hardware"], str(p["chips"]), str(p["replicas"]), layout_cell(p), str(p["batch"]),
                  f"{p['weight_dtype']}/{p['kv_dtype']}", render.tiers(p), render.spec_words(p),
                  "on" if p["prefix_cache"] else "off", f"{p['ttft_p95_s']:.2f}", f"{p['tpot_p95_ms']:.1f}",
                  f"{p['usd_per_mtok_input']:.3f}", f"{p['usd_per_mtok_output']:.3f}", bill(p), mwh(p), p["binding"])
    con.print(t)
    if len(shown) < len(result.per_hardware):
        con.print(f"{len(result.per_hardware) - len(shown)} more hardware with a plan not shown (--top {top}); "
                  "--top 0 shows all", markup=False)
    note = link_note(shown)
    if note:
        con.print(note, markup=False)
    if any(p["calibration"] == "uncalibrated" for p in result.per_hardware):
        con.print(f"{UNCALIBRATED_NOTE} (prior efficiencies); wide band in JSON")
    if any(unmodelled_accuracy(p["quality_note"]) for p in shown):
        con.print(f"{FOUR_BIT_MARK}: the plan uses 4-bit weights or KV cache; accuracy is not modelled, check it on "
                  "your own evals (set floors in [quality])", markup=False)
    if any(p["quality_note"] and not unmodelled_accuracy(p["quality_note"]) for p in shown):
        kept = result.grid.model.kept_wider()
        con.print(f"{FOUR_BIT_MARK}: 4-bit weights as the model's checkpoint is published{f', its {kept}' if kept else ''} "
                  f"({result.grid.model.hf_repo}: `planner models show {result.grid.model.id}`)", markup=False)
    if result.infeasible:
        bad = render.table("hardware", "fails on", "closest plan", title="No feasible plan")
        for x in sorted(result.infeasible, key=lambda x: x["hardware"]):
            bad.add_row(x["hardware"], x["constraint"], x["reason"])
        con.print(bad)
    searched = f"searched {result.configs:,} configurations"
    if result.disagg is not None:
        st = result.disagg.stats
        searched += (f" and {st['pairs']:,} disaggregated pairs ({st['prefill_options']:,} prefill x "
                     f"{st['decode_options']:,} decode options, {st['transfer_classes']} transfer classes)")
    con.print(f"{searched} in {result.seconds:.2f} s", markup=False)


LINK_MARK = "†"


def layout_cell(p: dict[str, Any]) -> str:
    """The table's short layout: the parallel degrees, plus the node count where one instance spans
    several nodes, marked with LINK_MARK (the footnote names the link; `layout_text` in the plan
    detail and JSON says it in full). One-node layouts need no node count."""
    text = degrees_words(p["layout"])
    if p.get("scale_out"):
        return f"{text}, {p['layout']['nodes']} nodes{LINK_MARK}"
    nodes = p["layout"]["nodes"]
    return text if nodes == 1 else f"{text}, {nodes} nodes"


def link_words(p: dict[str, Any]) -> str:
    link = p["scale_out"]
    state = "assumed: the catalog does not state it" if link["assumed"] else "catalog"
    return f"{p['hardware']} {link['gbit_per_chip']:g} Gb/s per chip ({state})"


def link_note(instances: Iterable[dict[str, Any]]) -> str | None:
    """The footnote of LINK_MARK under a table: each scale-out link the rows' instances span (a
    disaggregated plan's two pools count as two instances); None when no row spans nodes."""
    flat: list[dict[str, Any]] = []
    for p in instances:
        flat += [p["prefill"], p["decode"]] if p.get("mode") == "disaggregated" else [p]
    links = [link_words(x) for x in flat if x.get("scale_out")]
    if not links:
        return None
    return f"{LINK_MARK} across nodes over the scale-out network: {'; '.join(dict.fromkeys(links))}"


def _write_disaggregated(con: Any, b: dict[str, Any], result: SolveResult, sc: Any) -> None:
    """The headline of a disaggregated best plan: both pools, the transfer, the bill and where it
    comes from (rent, or capex and energy of both pools)."""
    p, d, x = b["prefill"], b["decode"], b["kv_transfer"]
    con.print(
        f"Best: disaggregated, {b['hardware_name']}\n"
        f"  prefill: {p['replicas']} x {p['chips']} {p['hardware']}, {p['layout_text']}, weights {p['weight_dtype']}, "
        f"KV {p['kv_dtype']}, prefix cache {p['prefix_cache_lives'] if p['prefix_cache'] else 'off'} "
        f"(hit {p['prefix_hit_rate'] or 0:.0%}), "
        f"{p['attention']} attention: {render.money(p['monthly_usd'])}/month\n"
        f"  decode:  {d['replicas']} x {d['chips']} {d['hardware']}, {d['layout_text']}, batch {d['batch']}, weights "
        f"{d['weight_dtype']}, KV {d['kv_dtype']} ({render.tier_words(d)}), speculation {render.spec_words(d)}: "
        f"{render.money(d['monthly_usd'])}/month\n"
        f"  KV transfer: {x['bytes_per_request_mean'] / 1e6:,.0f} MB per request (mean) over {x['link']} at "
        f"{x['gbps']:,.0f} GB/s, {x['seconds_p95']:.3f} s at p95, {x['visible_p95_s']:.3f} s of it in TTFT ({x['overlap']})\n"
        f"  {per_month(b)} ({_band(b)})  ${b['usd_per_mtok_input']:.3f}/Mtok in  "
        f"${b['usd_per_mtok_output']:.3f}/Mtok out  TTFT p50/p95 {b['ttft_p50_s']:.2f}/{b['ttft_p95_s']:.2f} s  "
        f"TPOT p50/p95 {b['tpot_p50_ms']:.1f}/{b['tpot_p95_ms']:.1f} ms  binding: {b['binding']}", markup=False)
    kinds = {a.capex_kind for a in result.grid.hardware if a.id in (p["hardware"], d["hardware"]) and a.capex_kind}
    con.print(f"  {cost_words(b, sc, ' and '.join(sorted(kinds)) or None)}", markup=False)
    sized = sized_words(b, sc.workload.arrival_rate_rps)
    if sized:
        con.print(f"  {sized}", markup=False)
    if b["quality_note"]:
        con.print(f"  note: {b['quality_note']}", markup=False)
    _write_other_mode(con, result)


def _write_other_mode(con: Any, result: SolveResult) -> None:
    """One line on the best plan of the other serving mode, so the modes compare at a glance."""
    out, b = result.disagg, result.best
    if out is None or b is None:
        return
    other = "aggregated" if b["mode"] == "disaggregated" else "disaggregated"
    plan = out.best_per_mode.get(other)
    if plan is None:
        if other in out.modes:
            con.print(f"  {other}: no plan meets the SLOs", markup=False)
        return
    delta = 100.0 * (plan["monthly_usd"] - b["monthly_usd"]) / b["monthly_usd"] if b["monthly_usd"] else 0.0
    if other == "disaggregated":
        from planner.disagg_plans import pools_words

        what = pools_words(plan)
    else:
        what = f"{plan['replicas']} x {plan['chips']} {plan['hardware']}, {plan['layout_text']}, batch {plan['batch']}"
    con.print(f"  best {other}: {per_month(plan)} ({delta:+.1f}%): {what}", markup=False)
