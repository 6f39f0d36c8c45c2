"""`planner tui [FILE]` (and `planner` with no arguments): the interactive planner.

Textual and JAX are imported inside the command so `planner --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("tui", rich_help_panel="Plan")(tui)


def tui(
    file: Annotated[
        Path | None,
        typer.Argument(help="Scenario TOML file to open (default: the bundled agentic-coding scenario)."),
    ] = None,
) -> None:
    """Open the interactive planner: edit the scenario, and the plans re-solve as you type."""
    run_tui(file)


def run_tui(file: Path | None = None) -> None:
    """Load the scenario (a bad file exits 2 with one line, before the screen opens), run the app."""
    import time

    started = time.perf_counter()
    from planner import executables, paths
    from planner.catalog import load_catalog
    from planner.tui.app import PlannerApp
    from planner.tui.document import ScenarioDocument

    catalog = load_catalog()
    path = file if file is not None else paths.default_scenario()
    document = ScenarioDocument.from_file(path, catalog, bundled=file is None)
    app = PlannerApp(document, catalog, started_at=started)
    with executables.interactive_kernels():  # every edit re-runs the search: kernels built to run often
        code = app.run()
    if app.return_code:
        raise typer.Exit(app.return_code)
    if code:
        raise typer.Exit(int(code))


def open_default() -> bool:
    """`planner` with no arguments: the TUI on the bundled scenario, if a person is at a terminal.
    Returns False (the caller prints help instead) when stdin or stdout is not a terminal."""
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    run_tui(None)
    return True
