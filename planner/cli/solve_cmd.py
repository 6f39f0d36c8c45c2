"""`planner solve FILE`: the cheapest hardware and configuration that meets the scenario's SLOs.

Exit 0 with a plan, 1 when nothing is feasible (the reasons are still printed), 2 on bad input.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from planner.cli.file_cmds import load_scenario, scenario_warnings_for
from planner.errors import ExitCode, GridTooLargeError, InputFileError


class EmitEngine(StrEnum):
    vllm = "vllm"
    sglang = "sglang"
    trtllm = "trtllm"


class SolveFormat(StrEnum):
    table = "table"
    json = "json"
    toml = "toml"
    csv = "csv"


def register(app: typer.Typer) -> None:
    app.command("solve", rich_help_panel="Plan")(solve)


def _refuse_warnings(file: Path, found: list[str]) -> None:
    """`--strict`: the first warning (and how many more) as the error."""
    if found:
        more = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
        raise InputFileError(f"{file}: {found[0]}{more}; --strict turns warnings into errors")


def solve(
    file: Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/agentic-coding.toml.")],
    format: Annotated[SolveFormat, typer.Option("--format", "-f", help="Output format.")] = SolveFormat.table,
    top: Annotated[int, typer.Option("--top", min=0, help="Hardware rows to show (0 = all).")] = 10,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a scenario field, e.g. slo.tpot_p95_ms=40."),
    ] = None,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", metavar="FILE", help="Plan from a request trace (Mooncake rows or Weka sessions; "
                     "replaces workload.trace): its lengths, sessions and replayed prefix-cache curve."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat every warning (e.g. requests longer than "
                                         "the model's context window) as an error: exit 2.")] = False,
    emit: Annotated[EmitEngine | None, typer.Option(
        "--emit", help="Print the launch command for this engine instead of the table.")] = None,
    plan: Annotated[int, typer.Option(
        "--plan", min=1, help="Which plan --emit launches, cheapest first (1 = solve's answer; each hardware's "
        "aggregated plan and the best disaggregated one).")] = 1,
    verify: Annotated[int, typer.Option(
        "--verify", min=0, metavar="K", help="Simulate the K cheapest plans (and up to K closest infeasible "
        "ones) and re-rank them by simulated feasibility; reports disagreements with the analytic screen.")] = 0,
    verify_duration: Annotated[float, typer.Option(
        "--verify-duration", min=1.0, help="Seconds of arrivals per --verify simulation.")] = 1800.0,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Local processes for --verify.")] = 1,
) -> None:
    """Find the cheapest hardware and serving configuration that meets the scenario's SLOs."""
    from planner import timing
    from planner.cli import importing

    timing.mark("command starts")
    with timing.phase("imports (jax, search)"), importing():
        import jax

        from planner import executables

        jax.devices()  # the backend, before threads use it
        executables.prefetch()  # the last solve's kernels load while the rest is imported and built
        from planner import plans, render, solve_report  # noqa: F401 - plans: timed here, used by the search
        from planner.catalog import load_catalog
        from planner.search import solve_in_stages
    if emit is not None and (format != SolveFormat.table or verify):
        given = f"--format {format.value}" if format != SolveFormat.table else f"--verify {verify}"
        raise InputFileError(f"{given}: --emit prints a launch command, not the plans; drop {given.split()[0]} "
                             "(or --emit, to get the plans)")
    if verify and format == SolveFormat.csv:
        raise InputFileError("--verify: CSV has one row per plan and no room for the simulation; use --format "
                             "table, json or toml with --verify")
    if plan != 1 and emit is None:
        raise InputFileError(f"--plan {plan}: says which plan --emit launches; give --emit vllm|sglang|trtllm "
                             "(the table already lists every plan)")
    with timing.phase("catalog+scenario"):
        catalog = load_catalog()
        scenario = load_scenario(file, sets or [], catalog, trace=trace)
    if strict:
        _refuse_warnings(file, scenario_warnings_for(scenario, catalog))
    try:
        # only JSON and TOML print the Pareto frontiers: a table's pass 1 may skip layouts that
        # cannot beat their hardware's best (or, as decode pools, the best disaggregated pair)
        frontiers = format in (SolveFormat.json, SolveFormat.toml) and emit is None
        result, with_frontiers = solve_in_stages(scenario, catalog, prune=not frontiers)
    except GridTooLargeError as exc:
        raise GridTooLargeError(f"{file}: {exc}") from None
    if strict:  # the search's own: dtypes a quality floor or owning left out
        _refuse_warnings(file, list(result.grid.warnings))
    if frontiers:
        result = with_frontiers()  # ~0.5 s of a warm solve
    if emit is not None:
        _emit(emit.value, plan, result, scenario, catalog, file)
        return
    checked = None
    if verify:
        from planner.cli.simulate_cmd import verify as run_verify

        checked = run_verify(result, scenario, catalog, verify, duration=verify_duration, workers=workers)
    with timing.phase("report"):
        if format == SolveFormat.json:
            doc = solve_report.to_dict(result, top)
            if checked is not None:
                doc["verify"] = checked
            render.print_json(doc)
        elif format == SolveFormat.toml:
            solve_report.write_toml(result, top, verify=checked)
        elif format == SolveFormat.csv:
            for warning in result.grid.warnings:  # CSV has no header to carry it
                typer.echo(f"warning: {warning}", err=True)
            solve_report.write_csv(result, top)
        else:
            solve_report.write_table(result, top)
        if checked is not None and format == SolveFormat.table:
            from planner.cli.simulate_cmd import write_verify_table

            write_verify_table(checked)
    if result.best is None:
        raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))


def _emit(engine: str, rank: int, result, scenario, catalog, file: Path) -> None:
    """`--emit ENGINE [--plan N]`: the launch configuration of the N-th cheapest plan (each hardware's
    aggregated plan and the best disaggregated one, as `planner simulate --plan N` ranks them)."""
    import sys

    from planner.cli.simulate_cmd import nth_plan
    from planner.launch import Launch, emit, platform_warnings
    from planner.plans import layout

    plans = result.ranked_plans()
    if not plans:
        sys.stdout.write("# no plan meets the SLOs: nothing to launch (run without --emit to see why)\n")
        raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))
    chosen = nth_plan(plans, rank, file)
    model = catalog.model(scenario.model.id)
    draft = catalog.model(scenario.speculative.draft_model) if scenario.speculative.draft_model else None
    if chosen.get("mode") == "disaggregated":
        lay = {}
    else:
        lay = layout(chosen, model, int(catalog.accelerator(chosen["hardware"]).scale_up_domain))
    chips = {acc.id: (acc.vendor, acc.kind) for acc in result.grid.hardware}
    launch = Launch(plan=chosen, scenario=scenario, model=model, draft=draft, layout=lay, chips=chips)
    sys.stdout.write(emit(engine, launch))
    # the table's warnings (prompts beyond the window, settings left out) still hold for the command
    for warning in (*result.grid.warnings, *platform_warnings(engine, launch)):
        typer.echo(f"warning: {warning}", err=True)
    if chosen.get("calibration") == "uncalibrated":
        typer.echo(f"warning: plan {rank} runs on hardware no public measurement calibrates ({chosen['hardware']}): "
                   "its latencies rest on prior efficiencies (wide band in `planner solve -f json`)", err=True)
