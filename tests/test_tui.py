"""The TUI driven by Textual's Pilot (headless, no display needed).

Most tests use `FakeSolver`, which returns fixed plans instantly: they test the app (edits, inline
errors, files, dialogs, layout) without depending on the cost model's numbers or paying for a JAX
compile. `TestLiveSolve` runs the real solver on a narrowed copy of the default scenario. Tests wait
for workers (`settle`) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import tomllib
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from textual.pilot import Pilot
from textual.widgets import Input

from planner import io
from planner.catalog import load_catalog
from planner.schema import Scenario
from planner.tui.app import PlannerApp
from planner.tui.document import ScenarioDocument
from planner.tui.latency import settle
from planner.tui.screens.confirm_screen import ConfirmScreen
from planner.tui.screens.help_screen import HelpScreen
from planner.tui.screens.path_screen import PathScreen
from planner.tui.solver import CurvePoint, WhatIf, curve_medians
from planner.tui.widgets.field_row import FieldRow
from planner.tui.widgets.plans_table import PlansTable

SIZE = (180, 50)
SNAPSHOT_HARDWARE = ("b200", "h100-sxm", "mi300x", "tpu-v6e")
SNAPSHOT_MODELS = ("llama-3.1-8b", "llama-3.2-1b", "llama-3.3-70b")


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (no pytest asyncio plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


class SVGSnapshot(SingleFileSnapshotExtension):
    file_extension = "svg"
    _write_mode = WriteMode.TEXT


def plan(hw: str, monthly: float, *, chips: int = 4, replicas: int = 2, tpot: float = 40.0,
         ttft: float = 12.0, binding: str = "tpot") -> dict[str, Any]:
    """A plan dict with every key the optimizer reports."""
    return {
        "hardware": hw, "hardware_name": hw.upper(), "chips": chips, "replicas": replicas, "batch": 16,
        "layout": {"tp": chips, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 1, "replicas_per_system": 1, "nodes": 1},
        "layout_text": f"tp{chips}, 1 node", "scale_out": None,
        "weight_dtype": "fp8", "kv_dtype": "int4", "tier_split": {"hbm": 1.0, "dram": 0.0, "nvme": 0.0},
        "spec_k": 2, "prefix_cache": True, "attention": "flash", "ttft_p50_s": ttft / 4, "ttft_p95_s": ttft,
        "tpot_p50_ms": tpot * 0.7, "tpot_p95_ms": tpot, "throughput_tok_s": 700.0,
        "usd_per_hour": monthly / 730, "usd_per_mtok_input": 0.05, "usd_per_mtok_output": 3.5,
        "monthly_usd": monthly, "binding": binding,
        "slo_ratios": {"ttft": ttft / 25, "tpot": tpot / 50, "memory": 0.8, "host-memory": 0.0, "utilisation": 0.7},
        "prefix_hit_rate": 0.96, "tokens_per_step": 2.4,
        "memory_gb_per_chip": {"weights": 18.8, "kv_hbm": 44.1, "activations": 0.6, "usable_hbm": 77.3,
                               "kv_dram": 0.0, "kv_nvme": 0.0, "prefix_cache": 6.9},
        "time_per_step_ms": {"decode_step": 36.7, "prefill_mean": 655.0},
    }


class FakeSolver:
    """Fixed plans whose bill scales with the arrival rate, so an edit visibly changes the table."""

    compiled = True

    def __init__(self) -> None:
        self.calls: list[Scenario] = []

    def solve(self, scenario: Scenario) -> Any:
        self.calls.append(scenario)
        k = scenario.workload.arrival_rate_rps / 3.0
        per_hw = [plan("b200", 40_000 * k, tpot=30.0, binding="utilisation"),
                  plan("h100-sxm", 60_000 * k, chips=8),
                  plan("mi300x", 75_000 * k, tpot=45.0, ttft=20.0, binding="ttft")]
        closest = plan("tpu-v6e", 90_000 * k, tpot=61.0)
        infeasible = [{"hardware": "tpu-v6e", "constraint": "tpot", "margin": 0.22,
                       "reason": "TPOT p95 61.0 ms > 50 ms at best", "closest": closest}]
        pareto = [plan("b200", 40_000 * k, tpot=45.0), plan("b200", 52_000 * k, tpot=30.0),
                  plan("h100-sxm", 80_000 * k, tpot=22.0)]
        return SimpleNamespace(best=per_hw[0], per_hardware=per_hw, infeasible=infeasible, pareto_tpot=pareto,
                               pareto_ttft=pareto, configs=123_456, seconds=0.01,
                               frontiers_pending=False, ranked_plans=lambda mode="any": list(per_hw))

    def solve_in_stages(self, scenario: Scenario) -> tuple[Any, Callable[[], Any]]:
        result = self.solve(scenario)
        return result, lambda on_disaggregated=None: result

    def whatif(self, scenario: Scenario, hardware: str) -> list[WhatIf]:
        return [WhatIf("no-speculative-decoding", 48_000.0, 20.0), WhatIf("no-kv-quantization", 70_000.0, 75.0),
                WhatIf("no-prefix-cache", None, None), WhatIf("no-kv-offload", 40_000.0, 0.0)]

    def prompt_curve(self, scenario: Scenario, hardware: str, cancelled) -> Iterator[CurvePoint]:
        for i, median in enumerate(curve_medians(scenario, load_catalog())):
            cost = None if i == 6 else 20_000.0 + 400.0 * i * i
            yield CurvePoint(median, cost, None)


def small_catalog():
    cat = load_catalog()
    return dataclasses.replace(cat, hardware={k: cat.hardware[k] for k in SNAPSHOT_HARDWARE},
                               models={k: cat.models[k] for k in SNAPSHOT_MODELS})


# The default scenario's shape, inlined so that edits to the bundled file do not move the snapshots.
SCENARIO = """
name = "Agentic coding (Llama 3.3 70B)"
[model]
id = "llama-3.3-70b"
[workload]
arrival_rate_rps = 3.0
input_tokens = { median = 96000, p90 = 200000, max = 126976 }
output_tokens = { median = 500, p90 = 2500, max = 4096 }
sessions = { turns = 30, prefix_reuse = 0.9, think_time_s = 8.0 }
[slo]
ttft_p95_s = 25.0
tpot_p95_ms = 50.0
[speculative]
method = "draft"
draft_model = "llama-3.2-1b"
acceptance_short = 0.8
acceptance_long = 0.6
acceptance_context_tokens = 65536
[search]
chips = [1, 2, 4, 8, 16, 32]
batch = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128]
"""


def scenario_data(**search: Any) -> dict[str, Any]:
    data = tomllib.loads(SCENARIO)
    data["search"].update(search)
    return data


def make_app(tmp_path: Path, *, solver: Any = None, path: Path | None = None, catalog=None) -> PlannerApp:
    catalog = catalog or small_catalog()
    if path is None:
        document = ScenarioDocument(data=scenario_data(), catalog=catalog, origin="bundled: test.toml")
        document.validate()
        document.saved = document.scenario
    else:
        document = ScenarioDocument.from_file(path, catalog)
    return PlannerApp(document, catalog, solver=solver or FakeSolver(), show_timings=False, start_dir=tmp_path)


async def type_into(pilot: Pilot, field_id: str, text: str) -> None:
    field = pilot.app.screen.query_one(f"#{field_id} Input", Input)
    field.focus()
    field.value = ""
    await pilot.press(*text)


def monthly_column(app: PlannerApp) -> list[str]:
    table = app.main.query_one(PlansTable)
    from planner.tui.widgets.plans_table import COLUMNS

    column = [c.key for c in COLUMNS].index("monthly")
    return [str(table.get_cell_at((r, column))) for r in range(table.row_count)]


# ---------------------------------------------------------------------- editing


@sync
async def test_editing_a_field_changes_the_table(tmp_path: Path) -> None:
    solver = FakeSolver()
    app = make_app(tmp_path, solver=solver)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        before = monthly_column(app)
        assert before[:3] == ["40,000", "60,000", "75,000"]
        await type_into(pilot, "f-workload-arrival-rate-rps", "6")
        await settle(app, pilot)
        assert monthly_column(app)[:3] == ["80,000", "120,000", "150,000"]
        assert solver.calls[-1].workload.arrival_rate_rps == 6.0
        assert app.document.dirty
        assert "modified" in app.sub_title


@sync
async def test_invalid_input_is_shown_inline_and_not_solved(tmp_path: Path) -> None:
    solver = FakeSolver()
    app = make_app(tmp_path, solver=solver)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        calls = len(solver.calls)
        await type_into(pilot, "f-workload-arrival-rate-rps", "abc")
        await settle(app, pilot)
        row = app.screen.query_one("#f-workload-arrival-rate-rps", FieldRow)
        assert row.has_class("-invalid")
        assert "valid number" in row.error
        assert len(solver.calls) == calls  # nothing solved while invalid
        assert app.status.error

        # A check across fields (p90 >= median) lands under the field being edited.
        await type_into(pilot, "f-workload-arrival-rate-rps", "3")
        await type_into(pilot, "f-workload-input-tokens-p90", "10")
        await settle(app, pilot)
        assert app.screen.query_one("#f-workload-input-tokens-p90", FieldRow).error == "p90 must be >= median"
        assert not app.screen.query_one("#f-workload-arrival-rate-rps", FieldRow).error

        await type_into(pilot, "f-workload-input-tokens-p90", "200000")
        await settle(app, pilot)
        assert not app.screen.query(".-invalid")
        assert len(solver.calls) > calls


class StagedSolver(FakeSolver):
    """Like the real solver: the table first (frontiers pending), the Pareto frontiers after."""

    def solve_in_stages(self, scenario: Scenario) -> tuple[Any, Callable[[], Any]]:
        full = self.solve(scenario)
        table = SimpleNamespace(**{**vars(full), "pareto_tpot": [], "pareto_ttft": [], "frontiers_pending": True})
        return table, lambda on_disaggregated=None: full


@sync
async def test_the_table_is_drawn_before_the_frontiers_arrive(tmp_path: Path, monkeypatch) -> None:
    from planner.tui.widgets.pareto_chart import ParetoChart

    charted: list[int] = []
    original = ParetoChart.show
    monkeypatch.setattr(ParetoChart, "show", lambda self, points, slo: (charted.append(len(points)),
                                                                        original(self, points, slo))[1])
    app = make_app(tmp_path, solver=StagedSolver())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert monthly_column(app)[:3] == ["40,000", "60,000", "75,000"]
        assert not app.result.frontiers_pending and len(app.result.pareto_tpot) == 3
        # the pending table never blanked the charts: they were drawn only with the frontiers
        assert charted[-2:] == [3, 3] and 0 not in charted[2:]


@sync
async def test_a_table_hidden_by_a_tab_switch_still_ends_its_timing(tmp_path: Path, monkeypatch) -> None:
    """The edit -> table time ends when the plans table renders; if the user leaves the plans tab
    first, the switch ends it, and what waited for the table (status, insights) still happens."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        monkeypatch.setattr(PlansTable, "render_lines", lambda self, crop: [])  # never drawn
        app.screen.query_one("#f-workload-arrival-rate-rps Input", Input).value = "6"
        for _ in range(20):
            await pilot.pause()
        assert not app.idle  # handed over, not drawn
        await pilot.press("f3")
        await settle(app, pilot)
        assert app.idle and app.last_timing["edit_to_table_s"] > 0
        assert "configurations searched" in app.status.message


class SlowSolver(FakeSolver):
    def solve(self, scenario: Scenario) -> Any:
        # long enough that "25" is typed while "1" is solved even on a loaded 2-core machine
        # (0.3 s let "12" start its own solve when key presses were slower than that)
        time.sleep(2.0)
        return super().solve(scenario)


@sync
async def test_edits_during_a_solve_are_coalesced_and_stale_results_dropped(tmp_path: Path) -> None:
    solver = SlowSolver()
    app = make_app(tmp_path, solver=solver)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await type_into(pilot, "f-workload-arrival-rate-rps", "125")  # "1" starts; "12" is superseded
        await settle(app, pilot)
        assert [sc.workload.arrival_rate_rps for sc in solver.calls] == [3.0, 1.0, 125.0]
        assert app.result_scenario.workload.arrival_rate_rps == 125.0
        assert monthly_column(app)[0] == "1,666,667"


@sync
async def test_sort_by_column_keeps_infeasible_last(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.main.query_one(PlansTable)
        table.focus()
        table.sort_key, table.sort_reverse = "tpot", False
        table.action_reverse_sort()  # slowest TPOT first
        await pilot.pause()
        keys = [str(table.get_cell_at((r, 0))) for r in range(table.row_count)]
        assert keys == ["mi300x", "h100-sxm", "b200", "tpu-v6e"]


# ---------------------------------------------------------------------- files


@sync
async def test_save_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(io.dumps_toml(Scenario.model_validate(scenario_data())), encoding="utf-8")
    app = make_app(tmp_path, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await type_into(pilot, "f-slo-tpot-p95-ms", "42.5")
        await settle(app, pilot)
        await pilot.press("ctrl+s")  # a file this app opened: saved in place, no question
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert not app.document.dirty
    saved = io.load(Scenario, path)
    assert saved.slo.tpot_p95_ms == 42.5
    assert saved == app.document.scenario
    assert not list(tmp_path.glob(".mine.toml.*"))  # the temp file was renamed, not left behind


@sync
async def test_save_asks_before_overwriting_a_file_it_did_not_open(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("keep me\n", encoding="utf-8")
    app = make_app(tmp_path)  # a bundled scenario: ctrl+s asks for a path
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PathScreen)
        app.screen.query_one("#path-input", Input).value = "other.toml"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert other.read_text(encoding="utf-8") == "keep me\n"

        await pilot.press("ctrl+s")
        await pilot.pause()
        app.screen.query_one("#path-input", Input).value = "other.toml"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("y")
        await settle(app, pilot)
        assert tomllib.loads(other.read_text(encoding="utf-8"))["slo"]["tpot_p95_ms"] == 50.0
        assert app.document.path == other


@sync
async def test_open_replaces_the_scenario(tmp_path: Path) -> None:
    data = scenario_data()
    data["workload"]["arrival_rate_rps"] = 9.0
    path = tmp_path / "busy.toml"
    path.write_text(io.dumps_toml(Scenario.model_validate(data)), encoding="utf-8")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#path-input", Input).value = str(path)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen.query_one("#f-workload-arrival-rate-rps Input", Input).value == "9.0"
        assert monthly_column(app)[0] == "120,000"
        assert app.document.path == path


@sync
async def test_user_text_with_square_brackets_never_reads_as_markup(tmp_path: Path) -> None:
    """Textual parses markup in strings given to Static/Label.update and notify: a path named
    "[/b].toml" in the open dialog's error, or an unknown hardware ID in the filter's, raised
    MarkupError and took the app down."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        app.screen.query_one("#path-input", Input).value = str(tmp_path / "[/b]x.toml")
        await pilot.press("enter")
        await pilot.pause()
        assert "[/b]x.toml: no such file" in str(app.screen.query_one("#path-error").render())
        await pilot.press("escape")
        await pilot.pause()
        app.notify("saved [/i] file", markup=False)  # what file_actions does with paths and errors
        await pilot.pause()


@sync
async def test_export_csv(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.main.query_one(PlansTable).focus()
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one("#path-input", Input).value = "plans.csv"
        await pilot.press("enter")
        await settle(app, pilot)
    lines = (tmp_path / "plans.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("plan,mode,pool,hardware,chips,replicas,layout,tp,pp,ep,dp_attention,cp,"
                               "replicas_per_system,nodes,batch")
    assert [line.split(",")[:4] for line in lines[1:]] == [["1", "aggregated", "", "b200"], ["2", "aggregated", "", "h100-sxm"],
                                                           ["3", "aggregated", "", "mi300x"]]


# ---------------------------------------------------------------------- quitting and help


@sync
async def test_quit_confirms_unsaved_changes(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await type_into(pilot, "f-slo-ttft-p95-s", "20")
        await settle(app, pilot)
        app.main.query_one(PlansTable).focus()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


@sync
async def test_quit_without_changes_exits_zero(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.main.query_one(PlansTable).focus()
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@sync
async def test_help_lists_every_app_binding(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = app.export_screenshot().replace("&#160;", " ").replace("&#x27;", "'")
        for binding in PlannerApp.BINDINGS:
            assert binding.tooltip in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_hardware_browser_filters_and_cites_sources(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f4")
        await pilot.pause()
        app.main.query_one("#hardware-table").focus()
        await pilot.press("slash", "a", "m", "d")
        await pilot.pause()
        table = app.main.query_one("#hardware-table")
        assert table.row_count == 1 and str(table.get_cell_at((0, 0))) == "mi300x"
        text = app.export_screenshot().replace("&#160;", " ")
        assert "AMD Instinct MI300X: sources" in text


@sync
async def test_command_palette_offers_the_file_commands(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
    for title in ("Save", "Save as…", "Open…", "Export plans…", "Re-solve", "Help",
                  "Open bundled scenario: agentic-coding"):
        assert title in titles


# ---------------------------------------------------------------------- snapshots


class TestSnapshots:
    """SVG snapshots at 180x50 with fixed plans (the cost model's numbers are not under test here)."""

    @sync
    async def test_main_screen(self, tmp_path: Path, snapshot) -> None:
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.main.query_one(PlansTable).focus()
            await pilot.pause()
            assert app.export_screenshot() == snapshot(extension_class=SVGSnapshot)

    @sync
    async def test_charts_tab(self, tmp_path: Path, snapshot) -> None:
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            app.main.query_one(PlansTable).focus()
            await pilot.press("f3")
            await settle(app, pilot)
            assert app.export_screenshot() == snapshot(extension_class=SVGSnapshot)

    @sync
    async def test_main_screen_80x24(self, tmp_path: Path, snapshot) -> None:
        app = make_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert app.export_screenshot() == snapshot(extension_class=SVGSnapshot)

    @sync
    async def test_invalid_field(self, tmp_path: Path, snapshot) -> None:
        app = make_app(tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await type_into(pilot, "f-slo-tpot-p95-ms", "-5")
            await settle(app, pilot)
            app.main.query_one(PlansTable).focus()
            await pilot.pause()
            assert app.export_screenshot() == snapshot(extension_class=SVGSnapshot)


# ---------------------------------------------------------------------- any terminal, any habit


@sync
async def test_80x24_shows_plan_rows_with_focus_on_the_table(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.main.query_one(PlansTable)
        assert app.focused is table
        assert table.row_count == 4 and table.size.height >= 6  # header + at least five rows
        # the bill is the second column, so it is on screen without scrolling sideways
        assert [c.key.value for c in table.columns.values()][:2] == ["hardware", "monthly"]
        assert "$/month" in app.export_screenshot()
        assert not app.main.query_one("#scenario-panel").display  # collapsed; ctrl+b shows it
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert app.main.query_one("#scenario-panel").display
        assert isinstance(app.focused, Input)
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert not app.main.query_one("#scenario-panel").display and app.focused is table


@sync
async def test_plans_table_cells_render_as_the_datatable_renders_them(tmp_path: Path) -> None:
    """The table's fast path for plain cells (`PlansTable._plain_cell`) gives the segments Textual's
    own `DataTable._render_cell` gives, for every cell, the header, the cursor row and a hovered one."""
    from rich.style import Style
    from textual.widgets import DataTable

    from planner.tui.widgets import plans_table

    assert plans_table.PLAIN_CELLS, "the fast path is off for this Textual: the check below would compare nothing"
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.main.query_one(PlansTable)
        base = Style(color="white", bgcolor="grey11")
        widths = [column.get_render_width(table) for column in table.ordered_columns]
        fast_cells = 0
        for row in range(-1, table.row_count):
            for column, width in enumerate(widths):
                for cursor, hover in ((False, False), (True, False), (False, True)):
                    table._cell_render_cache.clear()
                    fast = table._plain_cell(row, column, base, width, cursor, hover)
                    table._cell_render_cache.clear()
                    assert fast == DataTable._render_cell(table, row, column, base, width, cursor, hover), (row, column)
                    fast_cells += 1
        assert fast_cells == 3 * (table.row_count + 1) * len(widths)  # no cell fell back to Rich


def test_plain_cell_lines_equal_rich_rendering() -> None:
    """`plain_cell_lines` against the pipeline it replaces, over texts (empty, wide characters),
    justifications, text styles, widths, paddings and layered styles; it declines what does not fit."""
    import itertools

    from rich.console import Console
    from rich.padding import Padding
    from rich.style import Style
    from rich.text import Text
    from textual.renderables.styled import Styled

    from planner.tui.widgets.plain_cells import plain_cell_lines

    console = Console(width=180)
    pre = Style(color="white", bgcolor="black") + Style.from_meta({"row": 3, "column": 2})
    compared = 0
    for text, justify, style, width, post, padding, end in itertools.product(
            ["", "h100", "12,345", "✗ tpot over by 3%", "tp8 × cp8", "a b"], [None, "default", "left", "right", "center"],
            ["", "dim", "dim italic"], [1, 2, 3, 12, 20], [Style(), Style(bold=True), Style(bgcolor="red")], [0, 1, 2],
            ["\n", ""]):
        cell = Text(text, justify=justify, style=style, end=end)
        fast = plain_cell_lines(console, cell, pre, post, width, padding)
        if len(text) + 2 * padding > width:
            assert fast is None
            continue
        options = console.options.update_dimensions(width, 1).update(no_wrap=True)
        assert fast == console.render_lines(Styled(Padding(cell, (0, padding)), pre_style=pre, post_style=post),
                                            options), (text, justify, style, width, padding)
        compared += 1
    assert compared > 1000
    assert plain_cell_lines(console, Text.from_markup("[b]x[/b] y"), pre, Style(), 12, 1) is None  # spans
    assert plain_cell_lines(console, Text("two\nlines"), pre, Style(), 12, 1) is None


@sync
async def test_a_field_selects_its_text_on_focus(tmp_path: Path) -> None:
    solver = FakeSolver()
    app = make_app(tmp_path, solver=solver)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        field = app.screen.query_one("#f-workload-arrival-rate-rps Input", Input)
        while app.focused is not field:
            await pilot.press("tab")
        await pilot.press("5")  # replaces "3.0", not "3.05"
        await settle(app, pilot)
        assert field.value == "5"
        assert solver.calls[-1].workload.arrival_rate_rps == 5.0


@sync
async def test_slash_filters_from_any_tab(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f3", "slash")  # from the charts tab, no tabbing needed
        await pilot.pause()
        query = app.screen.query_one("#hardware-query", Input)
        assert app.focused is query
        await pilot.press(*"h100")
        await pilot.pause()
        assert query.value == "h100"
        field = app.screen.query_one("#f-name Input", Input)  # in a text field, / is a character
        field.focus()
        await pilot.pause()
        field.value = "a"
        field.cursor_position = 1
        await pilot.press("slash")
        assert field.value == "a/"


def test_chart_ticks_are_readable() -> None:
    from planner.tui.widgets.chart import nice_ticks, si

    assert si(350000) == "350k" and si(2749.5) == "2.75k" and si(1.5e6) == "1.5M" and si(0.25) == "0.25"
    assert nice_ticks(20_000, 600_000, True) == [20_000, 50_000, 100_000, 200_000, 500_000]
    assert nice_ticks(0, 100, False) == [0, 20, 40, 60, 80, 100]


# ---------------------------------------------------------------------- the real solver



class TestLiveSolve:
    @sync
    async def test_edit_re_solves_with_the_real_kernel(self, tmp_path: Path) -> None:
        catalog = load_catalog()
        data = scenario_data(hardware=["h100-sxm", "b200", "mi300x"])
        path = tmp_path / "three.toml"
        path.write_text(io.dumps_toml(Scenario.model_validate(data)), encoding="utf-8")
        app = PlannerApp(ScenarioDocument.from_file(path, catalog), catalog, start_dir=tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            assert app.result is not None and app.result.per_hardware
            first = {p["hardware"]: p["monthly_usd"] for p in app.result.per_hardware}
            await type_into(pilot, "f-workload-arrival-rate-rps", "12")
            await settle(app, pilot)
            assert app.result_scenario.workload.arrival_rate_rps == 12.0
            after = {p["hardware"]: p["monthly_usd"] for p in app.result.per_hardware}
            assert any(after[hw] > first[hw] for hw in after.keys() & first.keys())
            assert app.last_timing["solve_s"] > 0
            assert "configurations searched" in app.status.message

            app.main.query_one(PlansTable).focus()
            await pilot.press("e")
            await pilot.pause()
            app.screen.query_one("#path-input", Input).value = "plans.json"
            await pilot.press("enter")
            await settle(app, pilot)
        exported = (tmp_path / "plans.json").read_text(encoding="utf-8")
        assert '"per_hardware"' in exported and '"pareto"' in exported


@sync
async def test_the_spinner_animates_only_when_a_solve_runs_long() -> None:
    """A warm solve (~0.15 s) shows a still marker; a compile (seconds) gets the animation."""
    from textual.app import App

    from planner.tui.widgets.solve_status import SPIN_AFTER_S, SPINNER, SolveStatus

    class Host(App[None]):
        def compose(self):
            yield SolveStatus(id="status")

    app = Host()
    async with app.run_test(size=(60, 3)) as pilot:
        status = app.query_one(SolveStatus)
        status.message = "solving…"
        status.busy = True
        await pilot.pause(SPIN_AFTER_S / 4)
        assert str(status.content).startswith(SPINNER[0]) and status._frame == 0
        await pilot.pause(SPIN_AFTER_S + 0.6)
        assert status._frame > 0  # animating now
        status.busy = False
        await pilot.pause()
        assert str(status.content) == "solving…"


@sync
async def test_a_scenario_with_a_trace_is_solved_on_the_traces_workload(tmp_path: Path) -> None:
    """As `planner solve` does: `workload.trace` replaces lengths and sessions, and the status says so."""
    import shutil

    import tomli_w

    from planner.traces.scenario import with_trace

    shutil.copy(Path(__file__).parent / "data" / "claude_code_slice.b512.jsonl.gz", tmp_path / "cc.jsonl.gz")
    data = scenario_data()
    data["workload"]["trace"] = "cc.jsonl.gz"  # relative to the scenario file
    path = tmp_path / "traced.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    solver = FakeSolver()
    app = make_app(tmp_path, solver=solver, path=path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        solved = solver.calls[-1].workload
        expected, _ = with_trace(app.document.scenario, path)
        assert solved.input_tokens == expected.workload.input_tokens
        assert solved.sessions == expected.workload.sessions
        assert solved.input_tokens != app.document.scenario.workload.input_tokens  # the trace did change it
        assert "workload from trace cc.jsonl.gz" in app.status.message


def _disaggregated_plan(monthly: float) -> dict[str, Any]:
    pool = plan("b200", monthly / 2, chips=2, replicas=1)
    return {**plan("b200", monthly), "mode": "disaggregated", "prefill": {**pool, "prefix_cache_lives": "prefill instances"},
            "decode": pool, "kv_transfer": {"bytes_per_request_mean": 4.2e8, "link": "scale-up", "gbps": 900.0,
                                            "visible_p95_s": 0.004, "overlap": "layerwise"}}


class DisaggregatedLaterSolver(FakeSolver):
    """Like the real solver in the TUI: the plans table first, the disaggregated plan (and the
    frontiers) in the second stage."""

    def __init__(self, frontiers_wait: Any = None) -> None:
        super().__init__()
        self.frontiers_wait = frontiers_wait  # a threading.Event the second stage waits for after the plan

    def solve_in_stages(self, scenario: Scenario) -> tuple[Any, Callable[..., Any]]:
        full = self.solve(scenario)
        table = SimpleNamespace(**{**vars(full), "frontiers_pending": True, "disagg_pending": True, "disagg": None})
        disagg = SimpleNamespace(best=_disaggregated_plan(30_000.0))
        found = SimpleNamespace(**{**vars(table), "disagg_pending": False, "disagg": disagg})
        later = SimpleNamespace(**{**vars(full), "disagg_pending": False, "disagg": disagg})

        def finish(on_disaggregated=None):
            if on_disaggregated is not None:
                on_disaggregated(found)
            if self.frontiers_wait is not None:
                self.frontiers_wait.wait(10)
            return later

        return table, finish


def _detail_text(app: PlannerApp) -> str:
    from io import StringIO

    from rich.console import Console

    from planner.tui.widgets.plan_detail import PlanDetail

    console = Console(width=200, record=True, file=StringIO())
    console.print(app.main.query_one(PlanDetail).content)
    return console.export_text()


@sync
async def test_the_disaggregated_plan_follows_the_table_into_the_detail(tmp_path: Path) -> None:
    from planner.tui.widgets.plan_detail import PlanDetail

    app = make_app(tmp_path, solver=DisaggregatedLaterSolver())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        done = _detail_text(app)
        assert "Disaggregated best: $30,000/month" in done and "updating" not in done
        assert app.edit_to_complete_s() is not None
        detail = app.main.query_one(PlanDetail)
        detail.set_disaggregated(None, pending=True)  # between the two stages: the last one, dimmed
        await pilot.pause()
        updating = _detail_text(app)
        assert "Disagg. (updating): $30,000/month" in updating and "Disaggregated best" not in updating
        assert len(updating.splitlines()) == len(done.splitlines())  # same height: no re-layout
        detail.set_disaggregated(None)
        detail.set_disaggregated(None, pending=True)  # none yet (the first solve)
        await pilot.pause()
        first = _detail_text(app)
        assert "Disaggregated best: searching…" in first and len(first.splitlines()) == len(done.splitlines())


@sync
async def test_the_disaggregated_plan_is_shown_before_the_frontiers(tmp_path: Path) -> None:
    """The second stage hands over the best disaggregated plan as soon as it is known: the detail
    shows it (not dimmed) while the frontiers are still being computed."""
    import threading

    frontiers = threading.Event()
    app = make_app(tmp_path, solver=DisaggregatedLaterSolver(frontiers_wait=frontiers))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.02)
            if app.edit_to_disaggregated_s() is not None:
                break
        text = _detail_text(app)
        assert "Disaggregated best: $30,000/month" in text and "updating" not in text
        assert app.edit_to_complete_s() is None  # the frontiers have not come
        frontiers.set()
        await settle(app, pilot)
        assert app.edit_to_complete_s() is not None
        assert app.edit_to_disaggregated_s() <= app.edit_to_complete_s()


@sync
async def test_the_detail_is_built_once_per_new_input(tmp_path: Path) -> None:
    """A new plans table announces its row twice (its rebuild, the cursor's highlight) and the solve
    hands over the pending disaggregated plan just before: the detail (~15 ms to build) is built once
    from the same inputs, and again as soon as one of them changes."""
    from planner.tui.widgets.plan_detail import PlanDetail

    app = make_app(tmp_path, solver=DisaggregatedLaterSolver())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        detail = app.main.query_one(PlanDetail)
        builds: list[object] = []
        build = detail._set_content
        detail._set_content = lambda content: (builds.append(content), build(content))  # type: ignore[method-assign]
        plan, infeasible, ttft, tpot = detail._shown
        detail.show(plan, infeasible, slo_ttft_s=ttft, slo_tpot_ms=tpot)
        detail.show(plan, infeasible, slo_ttft_s=ttft, slo_tpot_ms=tpot)
        assert builds == []  # what is on screen already
        detail.set_disaggregated(None, pending=True, render=False)
        assert builds == []
        detail.show(plan, infeasible, slo_ttft_s=ttft, slo_tpot_ms=tpot)  # the announce after it
        assert len(builds) == 1
        await pilot.pause()
        assert "Disagg. (updating)" in _detail_text(app)
        detail.show(plan, infeasible, slo_ttft_s=ttft, slo_tpot_ms=(tpot or 50.0) * 0.5)
        assert len(builds) == 2


# ---------------------------------------------------------------------- documents the bundled lists lack


def _scenario_file(tmp_path: Path, **model: str) -> Path:
    data = scenario_data()
    data["model"] = dict(model)
    data.pop("speculative", None)
    import tomli_w

    path = tmp_path / "s.toml"
    path.write_text("# mine\n" + tomli_w.dumps(data))
    return path


@sync
async def test_opening_a_model_outside_the_bundled_list_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    """A model given as a config.json path (relative to the file, opened from another folder) is not in
    the model list: the Select picked the list's first model on mount, which read as an edit (the file's
    model became deepseek-r1 and ctrl+s saved it), and the relative path failed to resolve."""
    import shutil

    shutil.copy(Path(__file__).parent / "data" / "hf-configs" / "Qwen--Qwen3-0.6B_config.json",
                tmp_path / "config.json")
    path = _scenario_file(tmp_path, id="config.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    app = make_app(tmp_path, path=path, catalog=load_catalog())
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.document.get("model.id") == "config.json"
        assert app.document.valid and not app.document.dirty, app.document.errors
        assert app.document.scenario.model.id == str((tmp_path / "config.json").resolve())


@sync
async def test_setting_a_lengths_mean_clears_the_p90_on_screen(tmp_path: Path) -> None:
    """The mean replaces the p90 in the document (one shape per log-normal); the p90 field must not
    keep showing the old value, which the saved file no longer has."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        p90 = app.screen.query_one("#f-workload-output-tokens-p90 Input", Input)
        assert p90.value == "2500"
        app.screen.query_one("#f-workload-output-tokens-mean Input", Input).value = "900"
        await settle(app, pilot)
        assert app.document.get("workload.output_tokens.p90") is None and p90.value == ""
        assert app.document.get("workload.output_tokens.mean") == 900.0


def test_the_hardware_checklist_keeps_a_scenarios_own_accelerators() -> None:
    """An accelerator of the scenario's own catalog is listed (and checked), so toggling another box
    no longer drops it from search.hardware."""
    from planner.tui.widgets.hardware_filter import HardwareFilter

    listed = HardwareFilter((("b200", "B200"), ("h100-sxm", "H100")), ["h100-sxm", "my-gpu"])
    assert [hw for hw, _ in listed.hardware] == ["b200", "h100-sxm", "my-gpu"]
    assert listed._value({"b200", "h100-sxm", "my-gpu"}) == "all"
    assert listed._value({"b200", "my-gpu"}) == ["b200", "my-gpu"]


def test_a_closest_miss_shows_no_bill_in_the_plan_detail() -> None:
    """A hardware without a feasible plan has a closest plan without replicas or a bill: the detail
    said "None x 4 chips" and "$0/month"."""
    from planner.tui.widgets.plan_detail import _f, _usd

    assert (_f(None, ",.0f"), _f(3, ",.0f"), _usd(None, ",.0f"), _usd(1234.4, ",.0f")) == ("—", "3", "$—", "$1,234")
