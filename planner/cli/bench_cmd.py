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
) -> None:
    """Time the search on the full grid (>= 1e6 configurations) against numpy and a Python loop."""
    from planner import paths, render
    from planner.bench import run_bench
    from planner.catalog import load_catalog
    from planner.cli.file_cmds import load_scenario

    catalog = load_catalog()
    scenario = load_scenario(file or paths.default_scenario(), [], catalog)
    result = run_bench(scenario, catalog, repeat=repeat)
    if format == BenchFormat.json:
        render.print_json(result)
        return
    out = render.table("metric", "value", title=f"planner bench ({result['backend']})", right=("value",))
    out.add_row("configurations", f"{result['configs']:,}")
    out.add_row("compile + first run, s", f"{result['compile_s']:.2f}")
    out.add_row("jitted search, s (median warm)", f"{result['seconds']:.3f}")
    out.add_row("configurations / s", f"{result['configs_per_s']:,}")
    out.add_row("numpy reference, s", f"{result['numpy_seconds']:.2f}")
    out.add_row("speed-up vs numpy", f"{result['speedup_vs_numpy']:.1f}x")
    out.add_row("speed-up vs Python loop", f"{result['speedup_vs_python']:,.0f}x")
    out.add_row("numpy agrees with jit", ("yes" if result["numpy_agrees"] else "NO")
                + f" ({result['numpy_feasibility_flips_at_slo_boundary']} ties at an SLO boundary)")
    render.console().print(out)
