"""File and quit actions of the app: save (atomic; asks before overwriting a file it did not
open), save as, open, export the plans, and the unsaved-changes questions before quit or open.

A mixin of `PlannerApp` so that app.py keeps to the solve loop. Each action is an async worker
because it waits for dialogs (`push_screen_wait`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import work

from planner.errors import PlannerError
from planner.tui.document import ScenarioDocument
from planner.tui.export import export_plans
from planner.tui.screens.confirm_screen import ConfirmScreen
from planner.tui.screens.path_screen import PathScreen
from planner.tui.widgets.scenario_panel import ScenarioPanel


class FileActions:
    """Needs from the app: `document`, `catalog`, `result`, `start_dir`, `main`, `request_solve`,
    `_update_title`, and Textual's `notify`, `push_screen_wait`, `exit`."""

    document: ScenarioDocument
    result: Any
    start_dir: Path

    @work
    async def action_quit(self) -> None:
        if self.document.dirty and not await self.push_screen_wait(
                ConfirmScreen("The scenario has unsaved changes. Quit without saving?", yes="Quit")):
            return
        self.exit(0)

    @work
    async def action_save(self) -> None:
        if not self._check_valid():
            return
        if self.document.path is None:
            await self._save_as()
            return
        self._write(self.document.path, overwrite=True)

    @work
    async def action_save_as(self) -> None:
        if self._check_valid():
            await self._save_as()

    async def _save_as(self) -> None:
        suggestion = self.document.suggested_name()
        path = await self.push_screen_wait(PathScreen("Save the scenario as (TOML)", self.start_dir, suggestion))
        if path is None:
            return
        overwrite = path.exists()
        if overwrite and path != self.document.path and not await self.push_screen_wait(
                ConfirmScreen(f"{path} exists and was not opened here. Overwrite it?", yes="Overwrite")):
            return
        self._write(path, overwrite=overwrite)

    def _write(self, path: Path, *, overwrite: bool) -> None:
        try:
            self.document.save(path, overwrite=overwrite)
        except (PlannerError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error", markup=False)
            return
        self._update_title()
        self.notify(f"saved {path}", title="Saved", markup=False)

    def _check_valid(self) -> bool:
        if not self.document.valid:
            self.notify("The scenario has errors; fix the highlighted fields first.", severity="error", markup=False)
        return self.document.valid

    @work
    async def action_open(self, path: Path | None = None) -> None:
        if self.document.dirty and not await self.push_screen_wait(
                ConfirmScreen("Discard unsaved changes and open another scenario?", yes="Discard")):
            return
        if path is None:
            path = await self.push_screen_wait(PathScreen("Open a scenario (TOML)", self.start_dir, must_exist=True))
            if path is None:
                return
        self.load_document(path, bundled=False)

    def load_document(self, path: Path, *, bundled: bool) -> bool:
        try:
            document = ScenarioDocument.from_file(path, self.catalog, bundled=bundled)
        except PlannerError as exc:
            self.notify(str(exc), title="Not opened", severity="error", timeout=10, markup=False)
            return False
        self.document = document
        self.main.query_one(ScenarioPanel).load(document)
        self._update_title()
        self.request_solve(time.perf_counter())
        return True

    @work
    async def action_export(self) -> None:
        if self.result is None:
            self.notify("Nothing to export yet: wait for the first solve.", severity="warning", markup=False)
            return
        result = self.result
        path = await self.push_screen_wait(PathScreen(
            "Export the plans as .csv or .json", self.start_dir, _slug(self.document) + "-plans.csv"))
        if path is None:
            return
        if path.exists() and not await self.push_screen_wait(ConfirmScreen(f"{path} exists. Overwrite it?",
                                                                           yes="Overwrite")):
            return
        try:
            kind = export_plans(result, path, overwrite=True)
        except (PlannerError, OSError) as exc:
            self.notify(str(exc), title="Not exported", severity="error", markup=False)
            return
        self.notify(f"exported {len(result.per_hardware)} plans to {path} ({kind.upper()})", title="Exported", markup=False)

    @work
    async def open_bundled(self, path: Path) -> None:
        if self.document.dirty and not await self.push_screen_wait(
                ConfirmScreen("Discard unsaved changes and open another scenario?", yes="Discard")):
            return
        self.load_document(path, bundled=True)


def _slug(document: ScenarioDocument) -> str:
    if document.path is not None:
        return document.path.stem
    name = document.scenario.name if document.scenario else "scenario"
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split()) or "scenario"
