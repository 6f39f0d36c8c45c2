"""`planner simulate` output: the simulated figures beside the analytic screen's, as a document
(JSON/TOML) or a table. Pure formatting: no simulation here."""

from __future__ import annotations

from typing import Any

from planner.simulate.analytic import QUANTILES

PLAN_FIELDS = ("hardware", "chips", "replicas", "layout_text", "batch", "weight_dtype", "kv_dtype", "tier_split",
               "spec_k", "prefix_cache", "attention", "monthly_usd", "sized_rps")
PREFILL_FIELDS = ("hardware", "chips", "replicas", "layout_text", "weight_dtype", "kv_dtype", "prefix_cache",
                  "prefix_cache_lives", "attention", "monthly_usd", "sized_rps")
DECODE_FIELDS = ("hardware", "chips", "replicas", "layout_text", "batch", "weight_dtype", "kv_dtype", "tier_split",
                 "spec_k", "attention", "monthly_usd", "sized_rps")


def plan_fields(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's identifying keys (a disaggregated plan: its pools and the KV link)."""
    if plan.get("mode") == "disaggregated":
        out = {k: plan.get(k) for k in ("hardware", "monthly_usd", "sized_rps") if plan.get(k) is not None}
        for role, fields in (("prefill", PREFILL_FIELDS), ("decode", DECODE_FIELDS)):
            pool = plan.get(role) or {}
            out[role] = {k: pool.get(k) for k in fields if pool.get(k) is not None}
        return out
    return {k: plan.get(k) for k in PLAN_FIELDS if plan.get(k) is not None}


def _r(x: float | None, digits: int = 6) -> float | None:
    """Rounded; None for a figure that does not exist (no samples) or is infinite (a saturated queue)."""
    import math

    return None if x is None or not math.isfinite(float(x)) else round(float(x), digits)


def comparison(sim: dict[str, Any], ana: dict[str, Any]) -> dict[str, Any]:
    """{metric: {pXX: {simulated, analytic, difference}}}; difference = analytic / simulated - 1."""
    out: dict[str, Any] = {}
    for metric in ("ttft_s", "tpot_s"):
        rows = {}
        for q in QUANTILES:
            key = f"p{round(q * 100)}"
            s, a = sim[metric][key], ana[metric][q]
            rows[key] = {"simulated": _r(s), "analytic": _r(a),
                         "difference": _r(a / s - 1.0, 4) if s and _r(a) is not None else None}
        out[metric] = rows
    return out


def document(scenario_name: str, plan: dict[str, Any], mode: str, sim: dict[str, Any], ana: dict[str, Any],
             run: dict[str, Any]) -> dict[str, Any]:
    return {
        "scenario": scenario_name,
        "mode": mode,
        "plan": plan_fields(plan),
        "run": run,
        "comparison": comparison(sim, ana),
        "simulated": {k: v for k, v in sim.items()},
        "analytic": {"ttft_s": {f"p{round(q * 100)}": _r(v) for q, v in ana["ttft_s"].items()},
                     "tpot_s": {f"p{round(q * 100)}": _r(v) for q, v in ana["tpot_s"].items()},
                     "prefill_busy": _r(ana["prefill_busy"], 4), "prefix_hit_rate": _r(ana["prefix_hit_rate"], 4),
                     "prefix_reuse": _r(ana["prefix_reuse"], 4),
                     "prompt_tokens_cached": _r(ana["prefix_hit_rate"] * ana["prefix_reuse"], 4),
                     "saturated": bool(ana["prefill_busy"] >= 1.0), "arrival_rps": _r(ana["arrival_rps"], 4),
                     "replicas": ana["replicas"], "new_tokens_scv": _r(ana["new_tokens_scv"], 4),
                     **({"pools": ana["pools"]} if "pools" in ana else {})},
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.0%}"


ARRIVAL_MISMATCH = 0.1
"""Relative difference between the arrivals a run measured and the scenario's rate above which the
table says so: beside it the analytic column (at the scenario's rate) is not a like-for-like check."""


FEW_MEASURED = 200  # below this many measured requests a p99 is one or two requests


def sampled_share(run: dict[str, Any]) -> float:
    """The share of the plan's replicas simulated (`--sample N`): they see that share of the arrivals."""
    total, simulated = run.get("replicas"), run.get("replicas_simulated")
    return simulated / total if total and simulated else 1.0


def arrival_mismatch(sim: dict[str, Any], ana: dict[str, Any], share: float = 1.0) -> float | None:
    """measured / stated - 1 when it exceeds ARRIVAL_MISMATCH, else None; `share`: of the replicas
    simulated, whose arrivals are that share of the scenario's rate."""
    stated, measured = ana.get("arrival_rps"), sim.get("arrivals_per_s")
    if not stated or measured is None:
        return None
    stated = stated * share
    off = measured / stated - 1.0
    return off if abs(off) > ARRIVAL_MISMATCH else None


def beyond_sized_rate(plan: dict[str, Any], sim: dict[str, Any], share: float = 1.0) -> float | None:
    """measured arrivals / the plan's sized rate - 1 when the window ran past the rate the plan was
    sized for (`sized_rps`, times the `share` of replicas simulated), else None (also for a plan
    file without it)."""
    sized, measured = plan.get("sized_rps"), sim.get("arrivals_per_s")
    sized = sized * share if sized else sized
    if not sized or measured is None or measured <= sized:
        return None
    return measured / sized - 1.0


def write_table(doc: dict[str, Any]) -> None:
    from planner import render
    from planner.simulate.router import default_router

    con = render.console()
    p, run, sim, ana = doc["plan"], doc["run"], doc["simulated"], doc["analytic"]
    if doc["mode"] == "disaggregated":
        pre, dec, link = p["prefill"], p["decode"], doc["run"].get("kv_link") or {}
        cache = pre.get("prefix_cache_lives", "on") if pre.get("prefix_cache") else "off"
        con.print(f"Simulated {doc['scenario']} (disaggregated): prefill {pre.get('replicas')} x {pre.get('chips')} "
                  f"{pre.get('hardware')} ({pre.get('layout_text', '')}), {pre.get('weight_dtype')}/"
                  f"{pre.get('kv_dtype')}, prefix cache {cache}; decode {dec.get('replicas')} x {dec.get('chips')} "
                  f"{dec.get('hardware')} ({dec.get('layout_text', '')}), batch {dec.get('batch')}, "
                  f"{dec.get('weight_dtype')}/{dec.get('kv_dtype')}, speculation {render.spec_words(dec)}; KV over "
                  f"{link.get('link', '?')} at {link.get('gbps', 0):,.0f} GB/s ({link.get('overlap', '?')})")
    else:
        con.print(f"Simulated {doc['scenario']}: {p.get('replicas')} x {p.get('chips')} {p.get('hardware')} "
                  f"({p.get('layout_text', '')}), batch {p.get('batch')}, {p.get('weight_dtype')}/{p.get('kv_dtype')}, "
                  f"speculation {render.spec_words(p)}, prefix cache {'on' if p.get('prefix_cache') else 'off'} ({doc['mode']})")
    con.print(f"{run['duration_s']:g} s of arrivals (first {run['warmup_s']:g} s not measured), seed {run['seed']}, "
              f"router {run['router']}, workload {run['workload']}")
    t = render.table("metric", "simulated", "analytic", "analytic vs simulated", right=("simulated", "analytic",
                                                                                         "analytic vs simulated"))
    for metric, unit, scale in (("ttft_s", "s", 1.0), ("tpot_s", "ms", 1e3)):
        for key, row in doc["comparison"][metric].items():
            name = f"{metric[:4].upper()} {key} ({unit})"
            s = "n/a" if row["simulated"] is None else f"{row['simulated'] * scale:,.3f}"
            a = "n/a" if row["analytic"] is None else f"{row['analytic'] * scale:,.3f}"
            t.add_row(name, s, a, _pct(row["difference"]))
    t.add_row("prefix hit (of prefix_reuse x prompts)", f"{sim['prefix_hit_rate']:.3f}",
              f"{ana['prefix_hit_rate']:.3f}", "")
    t.add_row("prompt tokens served from the cache", f"{sim['prompt_tokens_cached']:.3f}",
              f"{doc['analytic']['prompt_tokens_cached']:.3f}", "")
    if sim.get("new_tokens_scv") is not None:  # does the run's workload spread as the screen assumes?
        t.add_row("new tokens of a later turn, cs^2", f"{sim['new_tokens_scv']:.2f}",
                  f"{doc['analytic']['new_tokens_scv']:.2f}", "")
    t.add_row("prefill busy", f"{sim['prefill_busy']:.3f}", f"{ana['prefill_busy']:.3f}", "")
    if "pools" in sim:
        t.add_row("decode slots busy", f"{sim['pools']['decode']['occupancy']:.3f}",
                  f"{ana['pools']['decode']['occupancy']:.3f}", "")
        x = sim.get("kv_transfer_s") or {}
        if x.get("p95") is not None:
            t.add_row("KV transfer seen in TTFT p50 / p95 (ms)", f"{x['p50'] * 1e3:,.3f} / {x['p95'] * 1e3:,.3f}", "", "")
    con.print(t)
    if sim["prefix_hit_rate"] > 1.0:
        con.print(f"note: the prefix hit is above 1 because the run's prompts reuse more "
                  f"({sim['prompt_tokens_reusable']:.1%} of their tokens) than the scenario's prefix_reuse "
                  f"({doc['analytic']['prefix_reuse']:.1%}) it is counted against; the row below it is the share of "
                  "prompt tokens the cache served")
    r = sim["requests"]
    q = sim["queue"]
    share = sampled_share(run)
    if share < 1.0:
        con.print(f"--sample: {run['replicas_simulated']} of {run['replicas']} replicas simulated, with their share "
                  "of the arrivals; throughput is theirs")
    con.print(f"throughput {sim['throughput_tok_s']:,.0f} output tok/s, {sim['requests_per_s']:.3f} requests/s; "
              f"replicas stepping {sim['utilisation']:.0%} of the time; queue max {max(q['waiting'], default=0):,.0f} waiting")
    con.print(f"requests: {r['arrived']:,} arrived, {r['measured']:,} measured, {r['finished']:,} finished, "
              f"{r['unfinished']:,} unfinished, {r['rejected']:,} rejected, {r['preempted']:,} preempted "
              f"({r['preemptions']:,} preemptions)")
    if 0 < r["measured"] < FEW_MEASURED:
        con.print(f"note: {r['measured']:,} requests measured: their p95 and p99 rest on the slowest few; a longer "
                  "--duration (or a shorter --warmup) measures more")
    routing = run.get("scenario_routing")
    if routing and run.get("router") and run["router"] != default_router(routing):
        other = "random" if routing == "sticky" else "sticky"
        hint = (f"; --set workload.sessions.routing={other} prices this router"
                if run["router"] == default_router(other) else "")
        con.print(f"note: --router {run['router']}; the analytic column prices the scenario's {routing} routing "
                  f"(its router: {default_router(routing)}){hint}")
    off = arrival_mismatch(sim, ana, share)
    if off is not None:
        stated = f"{ana['arrival_rps']:g}" + (f" ({ana['arrival_rps'] * share:.3g} for the replicas simulated)"
                                              if share < 1.0 else "")
        con.print(f"note: {sim['arrivals_per_s']:.3f} requests/s arrived in the measured window, the scenario states "
                  f"{stated} ({off:+.0%}); the analytic column is at the scenario's rate. "
                  + ("A trace's sessions are heavy-tailed, so its rate over a window varies"
                     if str(run.get("workload", "")).startswith("trace") else "Poisson arrivals vary over a short window")
                  + ": try other --seed values or a longer --duration")
    over = beyond_sized_rate(p, sim, share)
    if over is not None:
        con.print(f"note: {sim['arrivals_per_s']:.3f} requests/s arrived, above the {render.figure(p['sized_rps'])} the plan was "
                  f"sized for ({over:+.0%}): past that rate requests wait for decode slots and the prefill queue, "
                  "which the analytic column (at the scenario's rate) does not price")
    if run.get("wall_s") is not None:
        con.print(f"simulated {run['simulated_s']:,.0f} s (arrivals for {run['duration_s']:g} s, then the requests "
                  f"in flight drain) in {run['wall_s']:.1f} s wall "
                  f"({run['requests_per_wall_s']:,.0f} requests/s)")


def plot(doc: dict[str, Any], samples: dict[str, Any], path) -> None:
    """Latency CDFs (simulated, with the analytic percentiles marked) and the queue over time."""
    from planner.plotting import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, scale, unit in ((axes[0], "ttft_s", 1.0, "s"), (axes[1], "tpot_s", 1e3, "ms")):
        xs = sorted(v * scale for v in samples[metric])
        if xs:
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label="simulated")
        for key, row in doc["comparison"][metric].items():
            if row["analytic"] is not None:
                ax.axvline(row["analytic"] * scale, linestyle="--", alpha=0.6, label=f"analytic {key}")
        ax.set_xlabel(f"{metric[:4].upper()} ({unit})")
        ax.set_ylabel("share of requests")
        ax.legend(fontsize=7)
    q = doc["simulated"]["queue"]
    axes[2].plot(q["t_s"], q["waiting"], label="waiting")
    axes[2].plot(q["t_s"], q["running"], label="running")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(fontsize=7)
    fig.suptitle(doc["scenario"])
    fig.tight_layout()
    _save(fig, path)
