"""`planner bench`: configurations per second of the jitted search and its speed-up over numpy."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class BenchFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("bench", rich_help_panel="Plan")(bench)


def bench(
    file: Annotated[Path | None, typer.Argument(help="Scenario (default: the bundled agentic-coding).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=50, help="Warm runs to take the median of.")] = 5,
    format: Annotated[BenchFormat, typer.Option("--format", "-f", help="Output format.")] = BenchFormat.table,
    tui: Annotated[bool, typer.Option("--tui", help="Instead: time edit -> new table in the TUI (headless, 180x50).")] = False,
    edits: Annotated[int, typer.Option("--edits", min=2, max=200, help="Edits to time with --tui.")] = 18,
    startup_runs: Annotated[int, typer.Option(
        "--startup-runs", min=0, max=20,
        help="Warm `planner solve` processes to time after a cold one, for the start-up breakdown (0: skip).")] = 3,
) -> None:
    """Time the search on the full grid (>= 1e6 configurations) against numpy and a Python loop, and
    a whole `planner solve` process cold (empty kernel cache) and warm, phase by phase."""
    from planner import paths, render
    from planner.bench import run_bench
    from planner.catalog import load_catalog
    from planner.cli.file_cmds import load_scenario

    catalog = load_catalog()
    path = file or paths.default_scenario()
    scenario = load_scenario(path, [], catalog)
    if tui:
        _bench_tui(path, catalog, edits, format)
        return
    startup = None
    if startup_runs:
        from planner.startup_bench import startup_breakdown

        startup = startup_breakdown(path, startup_runs)
    result = run_bench(scenario, catalog, repeat=repeat)
    result["startup"] = startup
    if format == BenchFormat.json:
        render.print_json(result)
        return
    out = render.table("metric", "value", title=f"planner bench ({result['backend']})", right=("value",))
    out.add_row("configurations", f"{result['configs']:,}")
    out.add_row("first run (compile, or load if cached), s", f"{result['compile_s']:.2f}")
    out.add_row("jitted search, s (median warm)", f"{result['seconds']:.3f}")
    out.add_row("configurations / s", f"{result['configs_per_s']:,}")
    out.add_row("configurations / s, fastest warm run", f"{result['configs_per_s_best']:,}")
    out.add_row("numpy reference, s", f"{result['numpy_seconds']:.2f}")
    out.add_row("speed-up vs numpy", f"{result['speedup_vs_numpy']:.1f}x")
    out.add_row("speed-up vs Python loop", f"{result['speedup_vs_python']:,.0f}x")
    out.add_row("numpy agrees with jit", ("yes" if result["numpy_agrees"] else "NO")
                + f" ({result['numpy_feasibility_flips_at_slo_boundary']} ties at an SLO boundary)")
    repeated = result.get("repeated_runs_kernel")
    if repeated:
        out.add_row("configurations / s, kernel for repeated runs (TUI, resident worker)",
                    f"{repeated['configs_per_s']:,} ({repeated['ratio']:.2f}x the time of the one-shot kernel's "
                    f"{repeated['one_shot_configs_per_s']:,}, interleaved; fastest {repeated['configs_per_s_best']:,})")
    table = result.get("table_stage")
    if table:
        out.add_row("table stage, pruned (TUI, aggregated solve), s",
                    f"{table['seconds']:.3f} ({table['ratio']:.2f}x of {table['unpruned_seconds']:.3f} unpruned, "
                    f"interleaved; {table['slots_evaluated']:,} of {table['slots']:,} layouts)")
    solved = result.get("solve_table")
    if solved:
        out.add_row("solve's table stage in process, pruned, s",
                    f"{solved['seconds']:.3f} ({solved['ratio']:.2f}x of {solved['unpruned_seconds']:.3f} unpruned, "
                    f"interleaved; same best plan: {'yes' if solved['same_best'] else 'NO'})")
    dis = result.get("disaggregated")
    if dis:
        out.add_row("disaggregated pairs (prefill x decode options)",
                    f"{dis['pairs']:,} ({dis['prefill_options']:,} x {dis['decode_options']:,})")
        out.add_row("disaggregated search, s (median warm)", f"{dis['seconds']:.3f}")
        out.add_row("disaggregated / aggregated search time", f"{dis['ratio_to_aggregated']:.2f}")
        if "both_modes_in_solve_s" in dis:
            out.add_row("as solve runs them: aggregated + decode pools, s", f"{dis['aggregated_with_decode_pools_s']:.3f}")
            out.add_row("  + prefill pools and pairs, s", f"{dis['prefill_pools_and_pairs_s']:.3f}")
            out.add_row("  both modes, s", f"{dis['both_modes_in_solve_s']:.3f}")
    render.console().print(out)
    if startup is not None:
        render.console().print(_startup_table(startup))


def _startup_table(startup: dict):
    from planner import render

    runs = [("cold", startup["cold"])] + [(label, startup[key]) for key, label in
                                         (("warm", "warm (median)"), ("warm_json", "warm, --format json"),
                                          ("worker_first", "worker, 1st command"), ("worker", "worker (median)"))
                                         if key in startup]
    columns = ("s",) + tuple(label for label, _ in runs)
    out = render.table(*columns, title="planner solve FILE, whole process", right=columns[1:],
                       caption=f"cold: empty kernel cache; warm: {len(startup['warm_runs'])} runs reusing it, each in "
                               "its own process (PLANNER_WORKER=0); worker: answered by a resident worker started with "
                               "`planner worker start` (its CPU counted with the command's). "
                               "--format json also computes the Pareto frontiers (the table does not show them). "
                               "The disaggregated prefill kernel loads or compiles in a thread beside the search kernel, "
                               "and kernels are written to the cache in the background while they run, so phases can add "
                               "up to more than the wall time.")
    for label in startup["cold"]["breakdown"]:
        out.add_row(label, *(f"{run['breakdown'][label]:.3f}" for _, run in runs))
    for key, label in (("wall_s", "whole process (wall)"), ("cpu_s", "whole process (CPU, user + system)")):
        out.add_row(label, *(f"{run[key]:.2f}" for _, run in runs))
    return out


def _bench_tui(path: Path, catalog, edits: int, format: BenchFormat) -> None:
    from planner import render
    from planner.tui.latency import measure_edit_latency

    result = measure_edit_latency(path, catalog, edits)
    if format == BenchFormat.json:
        render.print_json(result)
        return
    out = render.table("ms", "median", "p90", "max", title=f"planner bench --tui ({result['size']})",
                       caption=f"{result['edits']} edits after the first solve", right=("median", "p90", "max"))
    for key, label in (("edit_to_table_s", "edit -> table drawn"), ("solve_s", "solve"), ("ui_s", "drawing"),
                       ("edit_to_disaggregated_s", "edit -> disaggregated plan"),
                       ("edit_to_complete_s", "edit -> disaggregated + frontiers")):
        row = result[key]
        out.add_row(label, *(f"{row[q] * 1e3:,.0f}" for q in ("median", "p90", "max")))
    render.console().print(out)
    render.console().print(f"first table (compile included): {result['first_table_s']:.2f} s")
    if result["kernel_upgrade_wait_s"] >= 0.05:
        render.console().print(f"then {result['kernel_upgrade_wait_s']:.1f} s until the kernels compiled for many runs "
                               "were built in the background (not on disk yet); the edits were timed after")
