"""`planner whatif`, `planner sweep`, `planner project`: which technique pays, how the answer moves,
and what the bill does over years.

Exit 0 with an answer; 1 when the scenario (every sweep point, for `sweep`) has no feasible plan,
with the reasons still printed; 2 on bad input (file, `--set`, `--param`, `--values`, `--plot`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from planner.cli.file_cmds import load_scenario
from planner.errors import ExitCode, InputFileError

PANEL = "Analyses"


class Format(StrEnum):
    table = "table"
    json = "json"


FileArg = Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/studies/kv-tiering.toml.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a scenario field, e.g. slo.tpot_p95_ms=40."),
]
PlotOpt = Annotated[
    Path | None,
    typer.Option("--plot", metavar="PATH.png|svg",
                 help="Also write a chart, .png or .svg (needs matplotlib: the 'plot' extra)."),
]


def register(app: typer.Typer) -> None:
    app.command("whatif", rich_help_panel=PANEL)(_kernels_not_noted(whatif))
    app.command("sweep", rich_help_panel=PANEL)(_kernels_not_noted(sweep))
    app.command("project", rich_help_panel=PANEL)(_kernels_not_noted(project))


def _kernels_not_noted(command: Callable[..., None]) -> Callable[..., None]:
    """The command, run without noting its kernels for the next `planner solve`'s prefetch
    (`executables.uses_not_noted`): an analysis runs many grid shapes of its own."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        from planner import executables

        with executables.uses_not_noted():
            command(*args, **kwargs)

    return run


def _csv(text: str | None) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()] if text else []


def _named(flag: str, text: str | None, what: str) -> list[str]:
    """The names a list flag gives; given but naming none ("", ",") is bad input, not "all" or "none"."""
    if text is not None and not _csv(text):
        raise InputFileError(f"{flag} {text!r}: names no {what}; give NAME,... or leave it out")
    return _csv(text)


def _warn(warnings: list[str], where: str = "") -> None:
    """The scenario served differently than written (requests past the window, a search narrowed by
    a quality floor or by owning), on stderr in every format, as `planner solve` says it."""
    for warning in warnings:
        typer.echo(f"warning: {where}{warning}", err=True)


def _prepare_plot(plot: Path | None) -> None:
    if plot is not None:
        from planner import plotting

        plotting.check_path(plot)
        plotting.require_matplotlib()


def whatif(
    file: FileArg,
    format: FormatOpt = Format.table,
    variants: Annotated[
        str | None,
        typer.Option("--variants", metavar="NAME,...", help="Variants to show (default: all); see the docs."),
    ] = None,
    sets: SetOpt = None,
) -> None:
    """The best plan's bill with each technique taken away, from one evaluation of the grid.

    Variants: no-speculative-decoding, no-kv-quantization, no-prefix-cache, no-kv-offload,
    hbm-dram-only, hbm-only, naive-attention, bf16-weights-only, tp-pp-only, gpu-only,
    specialist-only, cheapest-hardware-only, no-disaggregation, single-hardware; and one
    speculative method alone (or none): spec-draft, spec-eagle3, spec-mtp, spec-self, spec-ngram,
    spec-suffix.
    """
    from planner import render
    from planner.analyses import evaluate, pick_variants, whatif_dict
    from planner.analyses.report import write_whatif
    from planner.catalog import load_catalog

    chosen = pick_variants(_named("--variants", variants, "variant"))
    catalog = load_catalog()
    scenario = load_scenario(file, sets or [], catalog)
    ev = evaluate(scenario, catalog, chosen)
    _warn(ev.warnings)
    if format is Format.json:
        render.print_json(whatif_dict(ev))
    else:
        write_whatif(ev)
    if ev.best is None:
        raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))


def sweep(
    file: FileArg,
    param: Annotated[str, typer.Option("--param", metavar="KEY", help="Dotted scenario key, e.g. "
                                       "workload.input_tokens.median.")],
    values: Annotated[str, typer.Option("--values", metavar="V1,V2,...", help="Comma-separated TOML values, "
                                        "e.g. 8000,96000 or '[\"bf16\"],[\"fp8\"]'.")],
    format: FormatOpt = Format.table,
    variant: Annotated[
        str | None,
        typer.Option("--variant", metavar="NAME,...", help="Also show these whatif variants at every point, "
                     "e.g. no-speculative-decoding."),
    ] = None,
    plot: PlotOpt = None,
    sets: SetOpt = None,
) -> None:
    """Re-solve the scenario for each value of one key and show how the best plan and bill move."""
    from planner import render
    from planner.analyses import pick_variants, run_sweep, split_values, sweep_dict, sweep_points
    from planner.analyses.report import write_sweep
    from planner.catalog import load_catalog

    chosen = pick_variants(_named("--variant", variant, "variant")) if variant is not None else []
    _prepare_plot(plot)
    catalog = load_catalog()
    base = load_scenario(file, sets or [], catalog)  # the file itself must be valid, not only its points
    points = sweep_points(file, param, split_values(values), sets or [], catalog)
    if param.split(".")[0] == "model":  # a --set model.id already said it once, in load_scenario
        _warn([f"--param {param}={point.note}" for point in points if point.note], f"{file}: ")
    result = run_sweep(param, points, catalog, chosen, base)
    for point, ev in zip(result.points, result.evaluations, strict=True):
        _warn(ev.warnings, f"at {param} = {point.text}: ")
    doc = sweep_dict(result)
    if format is Format.json:
        render.print_json(doc)
    else:
        write_sweep(result)
    if plot is not None:
        from planner import plotting

        plotting.plot_sweep(doc, plot)
    if not result.any_feasible:
        raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))


def project(
    file: FileArg,
    years: Annotated[int, typer.Option("--years", min=1, max=30, help="Years to project.")] = 5,
    price_decline: Annotated[
        float, typer.Option("--price-decline", min=0.0, max=99.0, metavar="PCT",
                            help="Yearly fall of per-token prices (hardware $/hour), percent: 40 means x0.6/yr.")
    ] = 40.0,
    usage_growth: Annotated[
        float, typer.Option("--usage-growth", min=0.01, max=100.0, metavar="X",
                            help="Yearly usage (arrival rate) multiplier.")
    ] = 2.0,
    api_price_decline: Annotated[
        float | None, typer.Option("--api-price-decline", min=0.0, max=99.0, metavar="PCT",
                                   help="Yearly fall of API list prices (default: --price-decline).")
    ] = None,
    apis: Annotated[
        str | None,
        typer.Option("--api", metavar="ID,...", help="API price rows to compare (default: "
                     "groq-llama-3.3-70b,deepseek-chat,gpt-5,claude-sonnet-4; 'all' for every row)."),
    ] = None,
    format: FormatOpt = Format.table,
    plot: PlotOpt = None,
    sets: SetOpt = None,
) -> None:
    """Project the monthly bill over years as token prices fall and usage grows (Jevons effect).

    Self-hosted is re-solved at each year's arrival rate; APIs are billed at list prices with their
    prompt-cache discount on the share of each prompt a session reuses.
    """
    from planner import render
    from planner.analyses import load_api_prices, pick_apis, project_dict
    from planner.analyses import project as run_project
    from planner.analyses.report import write_project
    from planner.catalog import load_catalog

    api_ids = [a.id for a in load_api_prices().api] if apis == "all" else _named("--api", apis, "API price row")
    chosen = pick_apis(api_ids)
    _prepare_plot(plot)
    catalog = load_catalog()
    scenario = load_scenario(file, sets or [], catalog)
    result = run_project(scenario, catalog, years, price_decline, usage_growth, api_price_decline, chosen)
    _warn(result.warnings)
    doc = project_dict(result)
    if format is Format.json:
        render.print_json(doc)
    else:
        write_project(result)
    if result.baseline is None:
        raise typer.Exit(int(ExitCode.NO_FEASIBLE_PLAN))
    if plot is not None:
        from planner import plotting

        plotting.plot_project(doc, plot)
