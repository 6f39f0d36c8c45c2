"""`planner simulate SCENARIO`: replay a plan request by request and show the analytic screen beside it.

The plan is the N-th cheapest of `planner solve`'s plans (`--plan N`, default its answer; the plans
are each hardware's aggregated plan and the best disaggregated one, `--mode` keeps one mode) or a
plan file (`--plan-file`). jax is imported only when a plan must be solved for; the simulator itself runs the
cost model's numpy twin.
"""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from planner.errors import ExitCode, InputFileError, PlannerError


class SimFormat(StrEnum):
    table = "table"
    json = "json"
    toml = "toml"


class Router(StrEnum):
    scenario = "scenario"
    round_robin = "round-robin"
    least_loaded = "least-loaded"
    affinity = "affinity"


class Mode(StrEnum):
    any = "any"
    aggregated = "aggregated"
    disaggregated = "disaggregated"


MAX_DURATION_S = 30 * 86_400.0


def register(app: typer.Typer) -> None:
    app.command("simulate", rich_help_panel="Plan")(simulate)


def simulate(
    file: Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/agentic-coding.toml.")],
    plan: Annotated[int, typer.Option("--plan", min=1, help="Which of `planner solve`'s plans, cheapest first (1 = "
                                      "its answer).")] = 1,
    mode: Annotated[Mode, typer.Option("--mode", help="Rank only this serving mode's plans (solve keeps one "
                                       "aggregated plan per hardware and the best disaggregated plan).")] = Mode.any,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan-file", metavar="PLAN.toml", help="Simulate this plan instead (plan keys, or `solve --format toml` "
        "output).")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of arrivals to simulate.")] = 3600.0,
    warmup: Annotated[float | None, typer.Option(
        "--warmup", help="Seconds at the start left out of the figures (default 20 % of --duration, or two "
        "mean decode lifetimes at the TPOT SLO if longer, at most half).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (arrivals, lengths, acceptance).")] = 0,
    trace: Annotated[Path | None, typer.Option(
        "--trace", metavar="FILE", help="Replay a request trace (Mooncake rows or Weka sessions) instead of the "
        "scenario's synthetic sessions; the plan is solved for it too.")] = None,
    router: Annotated[Router, typer.Option(
        "--router", help="How requests reach replicas; 'scenario' follows workload.sessions.routing "
        "(sticky = affinity, random = round-robin).")] = Router.scenario,
    format: Annotated[SimFormat, typer.Option("--format", "-f", help="Output format.")] = SimFormat.table,
    plot: Annotated[Path | None, typer.Option(
        "--plot", metavar="PATH", help="Draw latency CDFs and the queue over time (.png or .svg; needs the plot "
        "extra).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Local processes (replica groups run in "
                                         "parallel under the affinity router).")] = 1,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS", help="Run on a Ray cluster ('auto', an address, or 'local' to start one); "
        "needs the ray extra.")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE", help="Override a scenario field, e.g. workload.arrival_rate_rps=5.")] = None,
    sample: Annotated[int | None, typer.Option(
        "--sample", min=1, metavar="N", help="Simulate only N of the plan's replicas (affinity router: replicas "
        "never interact); faster for large fleets.")] = None,
) -> None:
    """Simulate a plan step by step (continuous batching, chunked prefill, prefix cache, speculation)
    and print simulated p50/p95/p99 TTFT and TPOT beside the analytic screen's."""
    if not 0 < duration <= MAX_DURATION_S:
        raise InputFileError(f"--duration: {duration:g} must be in (0, {MAX_DURATION_S:g}] seconds")
    if warmup is not None and not 0 <= warmup < duration:
        raise InputFileError(f"--warmup: {warmup:g} must be in [0, --duration) seconds")
    if plot is not None:
        from planner.plotting import check_path, require_matplotlib

        check_path(plot)
        require_matplotlib()
    from planner.catalog import load_catalog
    from planner.cli.file_cmds import load_scenario

    catalog = load_catalog()
    scenario = load_scenario(file, sets or [], catalog, trace=trace)
    if plan_file is not None:
        from planner.simulate.plan import read_plan_file

        if plan != 1 or mode != Mode.any:
            given = f"--plan {plan}" if plan != 1 else f"--mode {mode.value}"
            raise InputFileError(f"{given}: picks among solve's plans; --plan-file names the plan itself "
                                 f"(drop {given.split()[0]} or --plan-file)")
        row, where, solved_for = read_plan_file(plan_file)
        if solved_for is not None and solved_for != scenario.model.id:
            typer.echo(f"warning: {plan_file}: a plan solved for {solved_for}, simulated for {file}'s "
                       f"{scenario.model.id}", err=True)
    else:
        row = solved_plan(scenario, catalog, plan, file, mode.value)
        where = f"{file}: --plan {plan}"
    doc, samples = run_simulation(scenario, catalog, row, where, duration=duration, warmup=warmup, seed=seed,
                                  router=router.value, workers=workers, ray=ray, progress=_bar(), sample=sample)
    if format == SimFormat.json:
        from planner import render

        render.print_json(doc)
    elif format == SimFormat.toml:
        import tomli_w

        sys.stdout.write(tomli_w.dumps(_strip_none(doc)))
    else:
        from planner.simulate.report import write_table

        write_table(doc)
    if plot is not None:
        from planner.simulate.report import plot as draw

        draw(doc, samples, plot)


def solved_plan(scenario, catalog, rank: int, file: Path, mode: str = "any") -> dict[str, Any]:
    from planner.cli import importing

    if mode != "any" and mode not in scenario.search.serving_mode:
        raise InputFileError(f"{file}: --mode {mode}: search.serving_mode is {list(scenario.search.serving_mode)}, "
                             f"so no {mode} plan is searched; add \"{mode}\" to it (e.g. --set "
                             f"'search.serving_mode=[\"{mode}\"]') or drop --mode")
    with importing():
        from planner.search import solve_in_stages
    table, _ = solve_in_stages(scenario, catalog, prune=True)  # the plans only: no Pareto frontiers
    plans = table.ranked_plans(mode)
    if not plans:
        _no_plan(file)
    return nth_plan(plans, rank, file, mode)


def nth_plan(plans: list[dict[str, Any]], rank: int, file: Path, mode: str = "any") -> dict[str, Any]:
    """`--plan N` of the ranked plans, or one line naming the valid range."""
    if rank > len(plans):
        kept = "" if mode == "any" else f" {mode}"
        raise PlannerError(f"{file}: --plan {rank}: only {len(plans)}{kept} plan(s) meet the SLOs "
                           f"(--plan 1 to {len(plans)})")
    return plans[rank - 1]


def _no_plan(file: Path):
    sys.stderr.write(f"{file}: no plan meets the SLOs, nothing to simulate (run `planner solve` to see why)\n")
    raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))


def prepare(scenario, catalog, row: dict[str, Any], where: str, *, duration: float, warmup: float | None,
            seed: int, router: str = "scenario"):
    """(job, plan row with its layout words) for one plan row."""
    from planner.simulate import fleet, parallel
    from planner.simulate.plan import sim_plan
    from planner.simulate.router import default_router

    sp = sim_plan(row, scenario, catalog, where=where)
    if sp.disaggregated:  # a plan file's pools get their layout words too
        row = dict(row, **{p.role: dict(row[p.role], layout_text=row[p.role].get("layout_text")
                                        or _layout_text(p, catalog)) for p in sp.pools})
    elif not row.get("layout_text"):
        row = dict(row, layout_text=_layout_text(sp.serve, catalog))
    chosen = default_router(scenario.workload.sessions.routing) if router == "scenario" else router
    warm, drain = fleet.windows_for(sp.load, duration)
    opts = fleet.Options(duration_s=duration, seed=seed, router=chosen, warmup_s=warm if warmup is None else warmup,
                         drain_s=drain)
    model = catalog.model(scenario.model.id)
    workload = parallel.Workload(trace_path=scenario.workload.trace, max_context=float(model.max_context))
    return parallel.Job(plan=sp, workload=workload, options=opts), row


def summary(scenario, row: dict[str, Any], job, reqs, out, wall: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the report document, per-request latency samples) of a finished run."""
    import numpy as np

    from planner.simulate import report, stats
    from planner.simulate.analytic import analytic

    opts = job.options
    sim = stats.summarise(reqs, out, opts, float(job.plan.load.prefix_reuse), sampled=job.replicas is not None)
    arrived = sim["requests"]["arrived"]
    run = {"duration_s": opts.duration_s, "warmup_s": opts.warmup(), "seed": opts.seed, "router": opts.router,
           "scenario_routing": scenario.workload.sessions.routing,
           "workload": "trace " + Path(scenario.workload.trace).name if scenario.workload.trace else "synthetic sessions",
           "replicas": job.plan.instances,
           "replicas_simulated": job.plan.instances if job.replicas is None else len(job.replicas),
           "simulated_s": stats.ran_until(out, opts.duration_s + opts.drain()), "wall_s": round(wall, 3),
           "requests_per_wall_s": round(arrived / max(wall, 1e-9), 1)}
    link = job.plan.transfer
    if link is not None:
        run["kv_link"] = {"link": link.link, "gbps": round(link.bandwidth / 1e9, 3),
                          "overlap": "layerwise" if link.layerwise else "after-prefill",
                          "prefix_cache": "shared host pool" if link.shared_cache else "prefill instances"}
    doc = report.document(scenario.name or "scenario", row, job.plan.mode, sim, analytic(job.plan), run)
    rec = out.records
    window = np.isfinite(reqs.arrival_s) & (reqs.arrival_s >= opts.warmup()) & (reqs.arrival_s < opts.duration_s)
    if job.replicas is not None:
        window &= rec.replica >= 0
    done = window & np.isfinite(rec.finish_s) & (reqs.output_tokens > 1)
    samples = {"ttft_s": (rec.first_s - reqs.arrival_s)[window & np.isfinite(rec.first_s)].tolist(),
               "tpot_s": ((rec.finish_s - rec.first_s) / np.maximum(reqs.output_tokens - 1, 1))[done].tolist()}
    return doc, samples


def run_simulation(scenario, catalog, row: dict[str, Any], where: str, *, duration: float, warmup: float | None,
                   seed: int, router: str = "scenario", workers: int = 1, ray: str | None = None,
                   progress=None, sample: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate one plan row; returns (the report document, per-request latency samples). `sample`:
    simulate only that many of the plan's replicas (affinity router: they never interact, so the
    others would behave alike); the figures are then those replicas' requests."""
    from dataclasses import replace

    from planner.simulate import parallel

    job, row = prepare(scenario, catalog, row, where, duration=duration, warmup=warmup, seed=seed, router=router)
    if sample is not None and sample < job.plan.serve.instances:
        if job.plan.disaggregated:
            raise InputFileError(f"--sample {sample}: a disaggregated plan's prefill replicas share its decode "
                                 "pool; simulate every replica")
        if job.options.router != "affinity":
            raise InputFileError(f"--sample {sample}: only the affinity router's replicas are independent; "
                                 "use --router affinity or simulate every replica")
        job = replace(job, replicas=tuple(range(sample)))
    began = time.perf_counter()
    jobs = parallel.split(job, workers) if job.replicas is None else [job]
    if len(jobs) == 1 and not ray:
        reqs, out = parallel.run_job(job, progress=progress)
    else:
        reqs, out = parallel.merge(parallel.run_jobs(jobs, workers, ray))
    if progress is not None:
        progress(1.0, 1.0)
    return summary(scenario, row, job, reqs, out, time.perf_counter() - began)


def verify(result, scenario, catalog, count: int, *, duration: float, seed: int = 0, workers: int = 1,
           ray: str | None = None) -> dict[str, Any]:
    """`solve --verify K`: simulate the K cheapest plans (and the closest infeasible plans that have a
    replica count, up to K) and re-rank them by simulated feasibility (simulated p95 TTFT and TPOT
    within the SLOs), then by bill. Disagreements name the plan and the SLO it is judged on."""
    from planner.simulate import parallel

    rows = [(p, True) for p in result.ranked_plans()[:count]]
    rows += [(x["closest"], False) for x in result.infeasible
             if x.get("closest") and x["closest"].get("replicas") and x["closest"].get("supported")][:count]
    prepared = [prepare(scenario, catalog, p, f"plan {p['hardware']}", duration=duration, warmup=None, seed=seed)
                for p, _ in rows]
    began = time.perf_counter()
    outs = parallel.run_jobs([j for j, _ in prepared], workers, ray)
    wall = time.perf_counter() - began
    ttft_slo, tpot_slo = scenario.slo.ttft_p95_s, scenario.slo.tpot_p95_ms / 1e3
    checked = []
    for (job, row), (reqs, out), (_, screen_ok) in zip(prepared, outs, rows, strict=True):
        doc, _ = summary(scenario, row, job, reqs, out, wall / max(len(outs), 1))
        sim = doc["simulated"]
        ttft, tpot = sim["ttft_s"]["p95"], sim["tpot_s"]["p95"]
        unfinished = sim["requests"]["unfinished"] + sim["requests"]["rejected"]
        sim_ok = ttft is not None and tpot is not None and ttft <= ttft_slo and tpot <= tpot_slo and unfinished == 0
        checked.append({"hardware": row["hardware"], "mode": row.get("mode", "aggregated"),
                        "monthly_usd": row.get("monthly_usd"),
                        "analytic_feasible": screen_ok, "simulated_feasible": bool(sim_ok),
                        "ttft_p95_s": {"analytic": row.get("ttft_p95_s"), "simulated": ttft},
                        "tpot_p95_ms": {"analytic": row.get("tpot_p95_ms"),
                                        "simulated": None if tpot is None else round(tpot * 1e3, 3)},
                        "unfinished": unfinished, "plan": row})
    ranked = sorted(checked, key=lambda c: (not c["simulated_feasible"], c["monthly_usd"] or float("inf")))
    notes = []
    for c in checked:
        if c["analytic_feasible"] != c["simulated_feasible"]:
            verdict = "accepted by the analytic screen, rejected" if c["analytic_feasible"] else \
                "rejected by the analytic screen, accepted"
            notes.append(f"{c['hardware']}: {verdict} by the simulation (TTFT p95 {_fmt(c['ttft_p95_s']['simulated'])} s "
                         f"vs {ttft_slo:g} s, TPOT p95 {_fmt(c['tpot_p95_ms']['simulated'])} ms vs "
                         f"{scenario.slo.tpot_p95_ms:g} ms{', unfinished requests' if c['unfinished'] else ''})")
    return {"duration_s": duration, "seed": seed, "plans": [{k: v for k, v in c.items() if k != "plan"} for c in ranked],
            "disagreements": notes, "wall_s": round(wall, 2)}


def write_verify_table(v: dict[str, Any]) -> None:
    from planner import render

    con = render.console()
    t = render.table("rank", "hardware", "$/month", "screen", "simulated", "TTFT p95 s (screen/sim)",
                     "TPOT p95 ms (screen/sim)", right=("rank", "$/month"),
                     title=f"Verified by simulation ({v['duration_s']:g} s of arrivals, seed {v['seed']})")
    for i, c in enumerate(v["plans"], 1):
        name = c["hardware"] + (" (disaggregated)" if c.get("mode") == "disaggregated" else "")
        t.add_row(str(i), name, render.money(c["monthly_usd"]), "ok" if c["analytic_feasible"] else "no",
                  "ok" if c["simulated_feasible"] else "no",
                  f"{_fmt(c['ttft_p95_s']['analytic'])} / {_fmt(c['ttft_p95_s']['simulated'])}",
                  f"{_fmt(c['tpot_p95_ms']['analytic'])} / {_fmt(c['tpot_p95_ms']['simulated'])}")
    con.print(t)
    for note in v["disagreements"]:
        con.print(f"disagreement: {note}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _layout_text(pool, catalog) -> str:
    """A plan file pool's layout in the words `solve` prints (`tp4 x cp4, 1 node`)."""
    from planner.grid import Layout
    from planner.plans import layout_words

    c = pool.cfg
    lay = Layout(tp=int(c.tp), pp=int(c.pp), ep=int(c.ep), dp_attention=int(c.dp_attn), cp=int(c.cp),
                 replicas_per_system=int(c.replicas))
    return layout_words(lay, catalog.accelerator(pool.plan["hardware"]))


def _bar():
    """A carriage-return bar on stderr for runs longer than a second, only on a terminal."""
    if not sys.stderr.isatty():
        return None
    began = time.monotonic()
    state = {"shown": False}

    def show(done: float, total: float) -> None:
        if time.monotonic() - began < 1.0 and done < total:
            return
        share = min(done / max(total, 1e-9), 1.0)
        sys.stderr.write(f"\rsimulating [{'#' * int(share * 30):<30}] {share:4.0%}")
        if done >= total and state["shown"]:
            sys.stderr.write("\r" + " " * 50 + "\r")
        state["shown"] = True
        sys.stderr.flush()

    return show


def _strip_none(x):
    if isinstance(x, dict):
        return {k: _strip_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_strip_none(v) for v in x if v is not None]
    return x
