"""`PlannerApp`: owns the scenario document, starts the solve workers, and handles files.

Every edit is validated at once; a valid scenario is solved in a thread worker, started at once
when none runs (no debounce delay on the first keystroke). Solves never overlap: an edit that
arrives while one runs is queued, and only the newest queued edit runs next (older ones are
dropped), so typing never piles up work; a result whose generation is not the newest is dropped.
After a table is shown, the highlighted hardware's what-ifs (plans tab) or its bill-vs-prompt
curve (charts tab) are computed in their own workers, cancelled by the next edit.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState, get_current_worker

from planner import paths
from planner.catalog import Catalog
from planner.errors import PlannerError
from planner.lengths import other_shape
from planner.schema import Scenario
from planner.tui.document import ScenarioDocument
from planner.tui.file_actions import FileActions
from planner.tui.messages import (
    CurvePointReady,
    DisaggregatedReady,
    FrontiersReady,
    InsightsWanted,
    SolveFailed,
    SolveFinished,
    WhatIfReady,
)
from planner.tui.screens.confirm_screen import ConfirmScreen
from planner.tui.screens.help_screen import HelpScreen
from planner.tui.screens.main_screen import MainScreen
from planner.tui.screens.path_screen import PathScreen
from planner.tui.solver import CurvePoint, Solver, curve_medians
from planner.tui.widgets.field_row import FieldRow
from planner.tui.widgets.hardware_browser import HardwareBrowser
from planner.tui.widgets.plan_detail import PlanDetail
from planner.tui.widgets.plans_table import PlansTable
from planner.tui.widgets.scenario_panel import ScenarioPanel
from planner.tui.widgets.solve_status import SolveStatus

Job = tuple[int, Scenario, float]  # (generation, scenario, time of the edit)
DIALOG_ACTIONS = {"quit", "save", "save_as", "open", "export", "help"}
TABLE_WAIT_S = 1.0  # longest a solve's second stage waits for its table to be drawn (e.g. never, when superseded)


def _freeze_heap() -> None:
    """Once JAX, the compiled kernel and the widgets are loaded, move every object alive into the
    collector's permanent generation. Otherwise each full collection walks them all: 150-220 ms
    pauses at random edits, measured at 180x50 (one collection now, once per process, after the
    first table)."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()


class PlannerApp(FileActions, App[int]):
    CSS_PATH = "planner.tcss"
    TITLE = "planner"

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True, tooltip="Save the scenario as TOML"),
        Binding("ctrl+o", "open", "Open", priority=True, tooltip="Open a scenario TOML file"),
        Binding("e", "export", "Export", tooltip="Export the plans table as CSV or JSON"),
        Binding("ctrl+r", "resolve", "Re-solve", priority=True, tooltip="Solve the scenario again"),
        Binding("f2", "show_tab('plans')", "Plans", show=False, tooltip="Show the plans table"),
        Binding("f3", "show_tab('charts')", "Charts", show=False, tooltip="Show the charts"),
        Binding("f4", "show_tab('hardware')", "Hardware", show=False, tooltip="Show the hardware catalog"),
        Binding("f1,question_mark", "help", "Help", tooltip="Show keys and what each part of the screen does"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks first if there are unsaved changes)"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, tooltip="Quit from anywhere"),
    ]

    def __init__(self, document: ScenarioDocument, catalog: Catalog, *, solver: Any = None,
                 show_timings: bool = True, start_dir: Path | None = None,
                 started_at: float | None = None) -> None:
        super().__init__()
        self.started_at = started_at if started_at is not None else time.perf_counter()
        self.document = document
        self.catalog = catalog
        self.solver = solver if solver is not None else Solver(catalog)
        self.show_timings = show_timings  # False in snapshot tests: times are not reproducible
        self.start_dir = start_dir or Path.cwd()
        self.generation = 0
        self.result: Any = None
        self.result_scenario: Scenario | None = None
        self.last_timing: dict[str, float] = {}
        self._table_generation = -1  # generation of the table on screen (drawn, not only handed over)
        self._drawing: tuple[SolveFinished, float] | None = None  # a table handed over, not yet drawn
        self._requested: tuple[int, float] = (-1, 0.0)  # (generation, edit time) of the last table handed over
        self._drawn = threading.Condition()  # notified when _table_generation moves (a solve worker waits on it)
        self._completed: tuple[int, float] = (-1, 0.0)  # (generation, time) its disaggregated plan and frontiers came
        self._disaggregated: tuple[int, float] = (-1, 0.0)  # (generation, time) its disaggregated plan came
        self._solving = False
        self._pending: Job | None = None
        self._curve: tuple[int, str] | None = None  # (generation, hardware) the chart shows
        self._whatif: tuple[int, str] | None = None  # (generation, hardware) of the what-ifs asked for
        self._curve_points: list[CurvePoint] = []
        self._curve_size = 0

    # ------------------------------------------------------------------ setup

    async def on_mount(self) -> None:
        self.install_screen(MainScreen(self.catalog, self.document), name="main")
        await self.push_screen("main")
        self._update_title()
        self.request_solve(self.started_at)

    @property
    def main(self) -> MainScreen:
        screen = self.get_screen("main")
        assert isinstance(screen, MainScreen)
        return screen

    @property
    def status(self) -> SolveStatus:
        return self.main.query_one(SolveStatus)

    def _update_title(self) -> None:
        mark = " ● modified" if self.document.dirty else ""
        self.sub_title = f"{self.document.origin}{mark}"

    # ------------------------------------------------------------------ edits and solves

    def on_field_row_edited(self, event: FieldRow.Edited) -> None:
        self.document.set(event.path, event.value)
        drafter = self.document.repick_drafter() if event.path == "model.id" else None
        self.document.validate()
        if drafter:
            self.main.query_one(ScenarioPanel).load(self.document)
            self.notify(drafter, title="Speculative decoding", markup=False)
        replaced = other_shape(event.path) if event.value is not None else None
        if replaced is not None:  # the edit removed the length's other shape field: it must not still show
            self.main.query_one(ScenarioPanel).show_value(replaced, self.document.get(replaced))
        if self.document.valid:
            self.request_solve(event.at)  # first: the solve thread starts while the panel updates
        self.main.query_one(ScenarioPanel).show_errors(self.document.errors, edited=event.path)
        self._update_title()
        if not self.document.valid:
            self.status.error = True
            self.status.message = "fix the highlighted field to re-solve (the table shows the last valid scenario)"

    @property
    def idle(self) -> bool:
        """No solve running or queued, no table waiting to be drawn, no worker (what-ifs, curve) running."""
        return (not self._solving and self._pending is None and self._drawing is None
                and not any(w.is_running for w in self.workers))

    def request_solve(self, at: float, *, force: bool = False) -> None:
        scenario = self.document.scenario
        if scenario is None:
            return
        if not force and not self._solving and self.result is not None and scenario == self.result_scenario:
            # Back to the scenario on show (e.g. "50" -> "5" -> "50" typed quickly): nothing to do.
            self.status.error = False
            self.status.message = self._summary(self.result)
            return
        self.generation += 1
        job: Job = (self.generation, scenario, at)
        self.workers.cancel_group(self, "curve")
        self.workers.cancel_group(self, "whatif")
        if self._solving:
            self._pending = job  # replaces an older queued edit: it would be stale anyway
            with self._drawn:
                self._drawn.notify_all()  # a solve waiting for its table to be drawn gives up now
            return
        self._start(job)

    def _start(self, job: Job) -> None:
        self._solving = True
        self.status.error = False
        self.status.busy = True
        self.status.message = ("compiling the cost kernel (the first solve takes a few seconds)…"
                               if not self.solver.compiled else "solving…")
        self._solve(*job)

    @work(thread=True, exclusive=True, group="solve", exit_on_error=False)
    def _solve(self, generation: int, scenario: Scenario, at: float) -> None:
        worker = get_current_worker()
        start = time.perf_counter()
        try:
            scenario = self._with_trace(scenario)
            table, with_frontiers = self.solver.solve_in_stages(scenario)
            if worker.is_cancelled:
                return
            self.post_message(SolveFinished(generation, scenario, table, time.perf_counter() - start, at))
            if self._pending is not None:
                return  # a newer edit waits: its solve starts now, these frontiers would be stale
            with self._drawn:  # the second stage's Python work would slow the drawing (one GIL)
                self._drawn.wait_for(lambda: self._table_generation >= generation or self._pending is not None
                                     or worker.is_cancelled, timeout=TABLE_WAIT_S)
            if self._pending is not None or worker.is_cancelled:
                return
            result = with_frontiers(  # the disaggregated plan (shown once known), then the frontiers
                lambda found: self.post_message(DisaggregatedReady(generation, found)))
        except PlannerError as exc:
            self.post_message(SolveFailed(generation, str(exc)))
            return
        except Exception as exc:  # shown in the status line; the app keeps running
            self.post_message(SolveFailed(generation, f"internal error: {type(exc).__name__}: {exc}"))
            return
        if not worker.is_cancelled:
            self.post_message(FrontiersReady(generation, result))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "solve" or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._solving = False
        if self._pending is not None:
            job, self._pending = self._pending, None
            self._start(job)
        else:
            self.status.busy = False
            self.post_message(InsightsWanted())

    def on_solve_failed(self, message: SolveFailed) -> None:
        if message.generation == self.generation:
            self.status.error = True
            self.status.message = message.error

    def on_solve_finished(self, message: SolveFinished) -> None:
        if message.generation != self.generation:
            return  # a newer edit is queued or running
        self._drawing = (message, time.perf_counter())
        self._requested = (message.generation, message.requested_at)
        self.result, self.result_scenario = message.result, message.scenario
        self.main.show_result(message.scenario, message.result)
        if not self.main.plans_visible:  # no table on screen: the next refresh is the end
            self.call_after_refresh(lambda: self._table_drawn(time.perf_counter()))

    def on_plans_table_drawn(self, event: PlansTable.Drawn) -> None:
        self._table_drawn(event.at)

    def _table_drawn(self, at: float) -> None:
        """The new table reached the screen at `at`: the edit -> table time ends here, and the
        work that waited for it starts (what-ifs, the curve: their solves would slow the drawing)."""
        if self._drawing is None:
            return
        message, handled = self._drawing
        self._drawing = None
        self.last_timing = {"solve_s": message.solve_s, "ui_s": at - handled,
                            "edit_to_table_s": at - message.requested_at, "first": float(message.generation == 1)}
        with self._drawn:
            self._table_generation = message.generation
            self._drawn.notify_all()
        self.status.error = False
        self.status.message = self._summary(message.result)
        self.post_message(InsightsWanted())
        if message.generation == 1:
            self.call_after_refresh(_freeze_heap)

    def on_disaggregated_ready(self, message: DisaggregatedReady) -> None:
        if message.generation != self.generation or self.result_scenario is None:
            return
        self.result = message.result
        self.main.show_disaggregated(message.result)
        self._disaggregated = (message.generation, time.perf_counter())

    def on_frontiers_ready(self, message: FrontiersReady) -> None:
        if message.generation != self.generation or self.result_scenario is None:
            return
        self.result = message.result
        self.main.show_frontiers(self.result_scenario, message.result)
        self._completed = (message.generation, time.perf_counter())
        if self._disaggregated[0] != message.generation:  # the mode was not pending (or not searched)
            self._disaggregated = self._completed

    def edit_to_complete_s(self) -> float | None:
        """Seconds from the last edit to its disaggregated plan and frontiers (they follow the plans
        table); None until they came."""
        (generation, edited), (done, at) = self._requested, self._completed
        return at - edited if generation == done and generation >= 0 else None

    def edit_to_disaggregated_s(self) -> float | None:
        """Seconds from the last edit to its best disaggregated plan in the plan detail (before the
        frontiers); None until it came."""
        (generation, edited), (done, at) = self._requested, self._disaggregated
        return at - edited if generation == done and generation >= 0 else None

    def _with_trace(self, scenario: Scenario) -> Scenario:
        """With `workload.trace`, the workload the trace measures (as `planner solve` does; the trace
        is read once and cached, so later edits re-solve at once). Runs in the solve worker."""
        if scenario.workload.trace is None:
            return scenario
        from planner.traces.scenario import with_trace

        where = self.document.path or Path(self.document.origin)  # errors name the scenario file
        applied, _ = with_trace(scenario, where)
        return applied

    def _warnings(self) -> list[str]:
        """Requests past the model's window, for the scenario on show (see planner.truncation), and
        a trace that replaced the workload's lengths and sessions."""
        from planner.catalog import for_scenario
        from planner.truncation import scenario_warnings

        scenario = self.result_scenario
        if scenario is None:
            return []
        notes = []
        if scenario.workload.trace is not None:
            notes.append(f"workload from trace {Path(scenario.workload.trace).name}")
        try:
            model = for_scenario(self.catalog, scenario).model(scenario.model.id)
        except PlannerError:
            return notes
        return notes + scenario_warnings(scenario, model, short=True)

    def _summary(self, result: Any) -> str:
        text = (f"{len(result.per_hardware)} hardware with a plan, {len(result.infeasible)} without · "
                f"{result.configs:,} configurations searched")
        for warning in self._warnings():
            text = f"warning: {warning} · {text}"
        if self.show_timings and self.last_timing:
            t = self.last_timing
            since = "start→table" if t["first"] else "edit→table"
            text += (f" · solve {t['solve_s'] * 1e3:,.0f} ms, table {t['ui_s'] * 1e3:,.0f} ms, "
                     f"{since} {t['edit_to_table_s'] * 1e3:,.0f} ms")
        return text

    # ------------------------------------------------------------------ what-ifs and the curve

    def on_insights_wanted(self, _: InsightsWanted) -> None:
        """Start what is missing for the highlighted hardware: its what-ifs (plans tab), its
        bill-vs-prompt curve (charts tab). They start only once the current table is drawn, and the next
        edit cancels them; its solve then waits at most for the one evaluation in progress (they
        share the solver's lock)."""
        main = self.main
        if self._drawing is not None and not main.plans_visible:
            self._table_drawn(time.perf_counter())  # the tab changed before the table was drawn
            return  # _table_drawn asks again
        hardware, scenario = main.selected_hardware, self.result_scenario
        if (not hardware or scenario is None or self._solving or self._pending is not None
                or self._table_generation != self.generation):
            return
        key = (self.generation, hardware)
        feasible = any(p["hardware"] == hardware for p in self.result.per_hardware)
        if not main.charts_visible and feasible and self._whatif != key:
            self._whatif = key
            self._whatifs(self.generation, scenario, hardware)
        if main.charts_visible and self._curve != key:
            self._curve, self._curve_points = key, []
            self._curve_size = len(curve_medians(scenario, self.catalog))
            main.show_curve(hardware, [], scenario.workload.input_tokens.median, pending=True)
            self._prompt_curve(self.generation, scenario, hardware)

    @work(thread=True, exclusive=True, group="whatif", exit_on_error=False)
    def _whatifs(self, generation: int, scenario: Scenario, hardware: str) -> None:
        worker = get_current_worker()
        try:
            rows = self.solver.whatif(scenario, hardware)
        except Exception:  # optional extra: the detail simply shows no what-ifs
            rows = None
        if not worker.is_cancelled:
            self.post_message(WhatIfReady(generation, hardware, rows))

    def on_what_if_ready(self, message: WhatIfReady) -> None:
        if message.generation == self.generation:
            self.main.query_one(PlanDetail).show_whatifs(message.hardware, message.rows)

    @work(thread=True, exclusive=True, group="curve", exit_on_error=False)
    def _prompt_curve(self, generation: int, scenario: Scenario, hardware: str) -> None:
        worker = get_current_worker()
        try:
            for point in self.solver.prompt_curve(scenario, hardware, lambda: worker.is_cancelled):
                if worker.is_cancelled:
                    return
                self.post_message(CurvePointReady(generation, hardware, point))
        except Exception:  # shown as the end of the curve: the points so far stay
            self.post_message(CurvePointReady(generation, hardware, None))

    def on_curve_point_ready(self, message: CurvePointReady) -> None:
        if self._curve != (message.generation, message.hardware) or self.result_scenario is None:
            return
        if message.point is None:
            self._curve_size = len(self._curve_points)
        else:
            self._curve_points.append(message.point)
        median = self.result_scenario.workload.input_tokens.median
        done = len(self._curve_points) >= self._curve_size
        self.main.show_curve(message.hardware, self._curve_points, median, pending=not done)

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a dialog is open, file and quit keys would stack a second dialog on top of it.
        return not (action in DIALOG_ACTIONS and isinstance(self.screen, ModalScreen))

    def action_resolve(self) -> None:
        self.request_solve(time.perf_counter(), force=True)

    def action_show_tab(self, tab: str) -> None:
        self.main.query_one("#tabs").active = tab

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen([
            ("Everywhere", self.BINDINGS),
            ("Main screen", MainScreen.BINDINGS),
            ("Plans table", PlansTable.BINDINGS),
            ("Hardware tab", HardwareBrowser.BINDINGS),
            ("Dialogs", ConfirmScreen.BINDINGS + PathScreen.BINDINGS),
            ("Command palette", [Binding("ctrl+p", "command_palette", "Search every command")]),
        ]))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Save", "Save the scenario (TOML)", self.action_save)
        yield SystemCommand("Save as…", "Save the scenario to another file", self.action_save_as)
        yield SystemCommand("Open…", "Open a scenario TOML file", self.action_open)
        yield SystemCommand("Export plans…", "Write the plans table as CSV or JSON", self.action_export)
        yield SystemCommand("Re-solve", "Solve the scenario again", self.action_resolve)
        yield SystemCommand("Help", "Keys and what each part of the screen does", self.action_help)
        for tab in ("plans", "charts", "hardware"):
            yield SystemCommand(f"Show {tab}", f"Switch to the {tab} tab",
                                lambda tab=tab: self.action_show_tab(tab))
        for path in sorted(paths.scenarios_dir().glob("*.toml")):
            yield SystemCommand(f"Open bundled scenario: {path.stem}", f"Load {path.name} (saving asks for a path)",
                                lambda path=path: self.open_bundled(path))
