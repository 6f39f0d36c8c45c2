"""The main screen: scenario panel on the left; plans, charts and the hardware catalog in tabs."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from planner.catalog import Catalog
from planner.render import per_hardware_title
from planner.schema import Scenario
from planner.tui.document import ScenarioDocument
from planner.tui.messages import InsightsWanted
from planner.tui.solver import CurvePoint
from planner.tui.widgets.hardware_browser import HardwareBrowser
from planner.tui.widgets.pareto_chart import ParetoChart
from planner.tui.widgets.plan_detail import PlanDetail
from planner.tui.widgets.plans_table import PlansTable
from planner.tui.widgets.prompt_chart import PromptChart
from planner.tui.widgets.scenario_panel import ScenarioPanel
from planner.tui.widgets.solve_status import SolveStatus


class MainScreen(Screen):
    """Wires views to views (table highlight -> detail); the app feeds it results."""

    AUTO_FOCUS = "#plans-table"  # so q quits at once; editing starts with a click or tab
    BINDINGS = [Binding("escape", "focus_table", "To table", show=False,
                        tooltip="Leave the field being edited (then q quits, s sorts)"),
                Binding("slash", "filter", "Filter", tooltip="Filter the hardware catalog (from any tab)"),
                Binding("ctrl+b", "toggle_panel", "Scenario", tooltip="Show or hide the scenario panel")]
    COMPACT_WIDTH = 120
    COMPACT_HEIGHT = 34
    """Below either size the screen is compact: the scenario panel starts hidden (ctrl+b shows it)
    and the plan detail shrinks, so the plans table keeps its rows (80x24 shows eight)."""

    selected_hardware: reactive[str] = reactive("")
    """Hardware of the highlighted plans-table row ("" when the table is empty)."""

    def __init__(self, catalog: Catalog, document: ScenarioDocument) -> None:
        super().__init__(id="main")
        self.catalog = catalog
        self.document = document  # the first document shown; later ones arrive via ScenarioPanel.load
        self.scenario: Scenario | None = None  # the scenario of the result on show

    def compose(self) -> ComposeResult:
        models = sorted(self.catalog.models)
        hardware = [(a.id, a.name) for a in sorted(self.catalog.hardware.values(), key=lambda a: a.id)]
        yield Header()
        with Horizontal(id="body"):
            yield ScenarioPanel(self.document, models, hardware)
            with TabbedContent(id="tabs", initial="plans"):
                with TabPane("Plans", id="plans"):
                    yield PlansTable(id="plans-table")
                    yield PlanDetail(id="plan-detail")
                with TabPane("Charts", id="charts"), Grid(id="charts-grid"):
                    yield ParetoChart("tpot", id="pareto-tpot")
                    yield ParetoChart("ttft", id="pareto-ttft")
                    yield PromptChart(id="prompt-chart")
                with TabPane("Hardware", id="hardware"):
                    yield HardwareBrowser(self.catalog, id="hardware-browser")
        yield SolveStatus(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PlansTable).loading = True  # until the first solve (compiling) is done

    def show_result(self, scenario: Scenario, result: Any) -> None:
        self.scenario = scenario
        table = self.query_one(PlansTable)
        table.loading = False
        table.border_title = (f"{per_hardware_title(result, short=True)} — {len(result.per_hardware)} feasible, "
                              f"{len(result.infeasible)} without a plan")
        table.show(result.per_hardware, result.infeasible)
        grid = getattr(result, "grid", None)
        self.query_one(PlanDetail).warnings = list(getattr(grid, "warnings", ()) or ())
        self.show_disaggregated(result, render=False)  # the new table's announced row renders it
        if not result.frontiers_pending:
            self.show_frontiers(scenario, result)

    def show_disaggregated(self, result: Any, render: bool = True) -> None:
        """The best disaggregated plan in the plan detail (none when that mode was not searched)."""
        disagg = getattr(result, "disagg", None)
        self.query_one(PlanDetail).set_disaggregated(disagg.best if disagg is not None else None,
                                                     pending=getattr(result, "disagg_pending", False), render=render)

    def show_frontiers(self, scenario: Scenario, result: Any) -> None:
        self.show_disaggregated(result)
        self.query_one("#pareto-tpot", ParetoChart).show(result.pareto_tpot, scenario.slo.tpot_p95_ms)
        self.query_one("#pareto-ttft", ParetoChart).show(result.pareto_ttft, scenario.slo.ttft_p95_s)

    def show_curve(self, hardware: str, points: list[CurvePoint], current: int | None, pending: bool) -> None:
        self.query_one(PromptChart).show(hardware, points, current, pending)

    def on_resize(self, event: events.Resize) -> None:
        compact = event.size.width < self.COMPACT_WIDTH or event.size.height < self.COMPACT_HEIGHT
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            self.set_class(compact, "-panel-hidden")

    def action_toggle_panel(self) -> None:
        hidden = not self.has_class("-panel-hidden")
        self.set_class(hidden, "-panel-hidden")
        if hidden and self.query_one(ScenarioPanel).has_focus_within:
            self.query_one(PlansTable).focus()
        elif not hidden:
            self.query_one(ScenarioPanel).focus_first()

    def action_filter(self) -> None:
        """`/` from anywhere: the hardware filter. In a text field it is just a character."""
        focused = self.app.focused
        if isinstance(focused, Input) and focused.id != "hardware-query":
            focused.insert_text_at_cursor("/")
            return
        self.query_one(TabbedContent).active = "hardware"
        self.query_one("#hardware-query", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(TabbedContent).active = "plans"
        self.query_one(PlansTable).focus()

    @property
    def plans_visible(self) -> bool:
        """The plans table is on screen (dialogs are modal: the screen stays drawn behind them)."""
        return self.is_current and self.query_one(TabbedContent).active == "plans"

    @property
    def charts_visible(self) -> bool:
        return self.query_one(TabbedContent).active == "charts"

    def on_plans_table_plan_selected(self, event: PlansTable.PlanSelected) -> None:
        slo = self.scenario.slo if self.scenario is not None else None
        self.query_one(PlanDetail).show(event.plan, event.infeasible, slo_ttft_s=slo and slo.ttft_p95_s,
                                        slo_tpot_ms=slo and slo.tpot_p95_ms)
        self.selected_hardware = event.hardware

    def watch_selected_hardware(self) -> None:
        self.post_message(InsightsWanted())

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.post_message(InsightsWanted())
