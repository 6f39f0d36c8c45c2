"""`planner simulate SCENARIO`: replay a plan request by request and show the analytic screen beside it.

The plan is the N-th of `planner solve`'s table (`--plan N`, default the cheapest) or a plan file
(`--plan-file`). jax is imported only when a plan must be solved for; the simulator itself runs the
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


MAX_DURATION_S = 30 * 86_400.0


def register(app: typer.Typer) -> None:
    app.command("simulate", rich_help_panel="Plan")(simulate)


def simulate(
    file: Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/agentic-coding.toml.")],
    plan: Annotated[int, typer.Option("--plan", min=1, help="Which plan of `planner solve`'s table (1 = cheapest).")] = 1,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan-file", metavar="PLAN.toml", help="Simulate this plan instead (plan keys, or `solve --format toml` "
        "output).")] = None,
    duration: Annotated[float, typer.Option("--duration", help="Seconds of arrivals to simulate.")] = 3600.0,
    warmup: Annotated[float | None, typer.Option(
        "--warmup", help="Seconds at the start left out of the figures (default 20 % of --duration).")] = None,
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

        row = read_plan_file(plan_file)
        where = str(plan_file)
    else:
        row = solved_plan(scenario, catalog, plan, file)
        where = f"{file}: --plan {plan}"
    doc, samples = run_simulation(scenario, catalog, row, where, duration=duration, warmup=warmup, seed=seed,
                                  router=router.value, workers=workers, ray=ray, progress=_bar())
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


def solved_plan(scenario, catalog, rank: int, file: Path) -> dict[str, Any]:
    from planner.cli import importing

    with importing():
        from planner.search import solve
    result = solve(scenario, catalog)
    if not result.per_hardware:
        _no_plan(file)
    if rank > len(result.per_hardware):
        raise PlannerError(f"{file}: --plan {rank}: only {len(result.per_hardware)} plan(s) meet the SLOs "
                           f"(--plan 1 to {len(result.per_hardware)})")
    return result.per_hardware[rank - 1]


def _no_plan(file: Path):
    sys.stderr.write(f"{file}: no plan meets the SLOs, nothing to simulate (run `planner solve` to see why)\n")
    raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))


def run_simulation(scenario, catalog, row: dict[str, Any], where: str, *, duration: float, warmup: float | None,
                   seed: int, router: str = "scenario", workers: int = 1, ray: str | None = None,
                   progress=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate one plan row; returns (the report document, per-request latency samples)."""
    import numpy as np

    from planner.simulate import fleet, parallel, report, stats
    from planner.simulate.analytic import analytic
    from planner.simulate.plan import sim_plan
    from planner.simulate.router import default_router

    sp = sim_plan(row, scenario, catalog, where=where)
    if not row.get("layout_text"):
        row = dict(row, layout_text=_layout_text(sp, catalog))
    chosen = default_router(scenario.workload.sessions.routing) if router == "scenario" else router
    opts = fleet.Options(duration_s=duration, seed=seed, router=chosen, warmup_s=warmup)
    model = catalog.model(scenario.model.id)
    workload = parallel.Workload(trace_path=scenario.workload.trace, max_context=float(model.max_context))
    job = parallel.Job(plan=sp, workload=workload, options=opts)
    began = time.perf_counter()
    jobs = parallel.split(job, workers if not ray else max(workers, 1))
    if len(jobs) == 1 and not ray:
        reqs, out = parallel.run_job(job, progress=progress)
    else:
        reqs, out = parallel.merge(parallel.run_jobs(jobs, workers, ray))
    wall = time.perf_counter() - began
    if progress is not None:
        progress(1.0, 1.0)
    sim = stats.summarise(reqs, out, opts)
    arrived = sim["requests"]["arrived"]
    run = {"duration_s": duration, "warmup_s": opts.warmup(), "seed": seed, "router": chosen,
           "workload": "trace " + Path(scenario.workload.trace).name if scenario.workload.trace else "synthetic sessions",
           "replicas": sp.serve.instances, "simulated_s": duration + opts.drain(), "wall_s": round(wall, 3),
           "requests_per_wall_s": round(arrived / max(wall, 1e-9), 1)}
    doc = report.document(scenario.name or Path(where).stem, row, sp.mode, sim, analytic(sp), run)
    rec = out.records
    window = np.isfinite(reqs.arrival_s) & (reqs.arrival_s >= opts.warmup()) & (reqs.arrival_s < duration)
    done = window & np.isfinite(rec.finish_s) & (reqs.output_tokens > 1)
    samples = {"ttft_s": (rec.first_s - reqs.arrival_s)[window & np.isfinite(rec.first_s)].tolist(),
               "tpot_s": ((rec.finish_s - rec.first_s) / np.maximum(reqs.output_tokens - 1, 1))[done].tolist()}
    return doc, samples


def _layout_text(sp, catalog) -> str:
    """A plan file's layout in the words `solve` prints (`tp4 x cp4, 1 node`)."""
    from planner.grid import Layout
    from planner.plans import layout_words

    c = sp.serve.cfg
    lay = Layout(tp=int(c.tp), pp=int(c.pp), ep=int(c.ep), dp_attention=int(c.dp_attn), cp=int(c.cp),
                 replicas_per_system=int(c.replicas))
    return layout_words(lay, catalog.accelerator(sp.serve.plan["hardware"]))


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
