"""The plans table: the best plan per hardware, cheapest first; infeasible hardware greyed below."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import __version__ as textual_version
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widgets import DataTable

from planner.render import spec_words, tiers
from planner.tui.widgets.plain_cells import plain_cell_lines

Plan = dict[str, Any]

PLAIN_CELLS = textual_version.split(".")[0] == "8"
"""`PlansTable._plain_cell` follows Textual 8's private DataTable internals; other majors render
every cell the DataTable's own way (slower, same picture)."""


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    cell: Callable[[Plan], str]
    sort: Callable[[Plan], Any]
    numeric: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("hardware", "hardware", lambda p: p["hardware"], lambda p: p["hardware"], numeric=False),
    # the answer comes first: at 80 columns the table scrolls sideways and the bill stays in view
    Column("monthly", "$/month", lambda p: _num(p["monthly_usd"], ",.0f") + (" 4b" if p.get("quality_note") else ""),
           lambda p: p["monthly_usd"]),
    Column("chips", "chips", lambda p: str(p["chips"]), lambda p: p["chips"]),
    Column("replicas", "×", lambda p: str(p["replicas"]), lambda p: p["replicas"]),
    Column("layout", "layout", lambda p: p["layout_text"], lambda p: p["layout_text"], numeric=False),
    Column("batch", "batch", lambda p: str(p["batch"]), lambda p: p["batch"]),
    Column("dtypes", "w/kv", lambda p: f"{p['weight_dtype']}/{p['kv_dtype']}",
           lambda p: (p["weight_dtype"], p["kv_dtype"]), numeric=False),
    Column("tiers", "tiers", tiers, lambda p: -p["tier_split"]["hbm"], numeric=False),
    Column("spec_k", "spec", spec_words, lambda p: (p["spec_k"] > 0, p.get("spec_method", ""), p["spec_k"])),
    Column("ttft", "TTFT p95 s", lambda p: _num(p["ttft_p95_s"], ".2f"), lambda p: p["ttft_p95_s"]),
    Column("tpot", "TPOT p95 ms", lambda p: _num(p["tpot_p95_ms"], ".1f"), lambda p: p["tpot_p95_ms"]),
    Column("usd_in", "$/Mtok in", lambda p: _num(p["usd_per_mtok_input"], ".3f"), lambda p: p["usd_per_mtok_input"]),
    Column("usd_out", "$/Mtok out", lambda p: _num(p["usd_per_mtok_output"], ".3f"),
           lambda p: p["usd_per_mtok_output"]),
    Column("binding", "binding", lambda p: p["binding"], lambda p: p["binding"], numeric=False),
)


def short_reason(infeasible: dict[str, Any]) -> str:
    """The constraint that came closest and by how much; the detail panel gives the whole reason."""
    margin = infeasible.get("margin")
    by = f" by {margin:.0%}" if isinstance(margin, int | float) and math.isfinite(margin) else ""
    return f"✗ {infeasible['constraint']} over{by}"


class PlansTable(DataTable):
    """Click a header (or press s) to sort; infeasible hardware always stays at the bottom."""

    BINDINGS = [
        Binding("s", "next_sort", "Sort", tooltip="Sort by the next column"),
        Binding("S", "reverse_sort", "Reverse", show=False, tooltip="Reverse the sort order"),
    ]

    class PlanSelected(Message):
        """The highlighted row changed: a feasible `plan`, or the `infeasible` record."""

        def __init__(self, hardware: str, plan: Plan | None, infeasible: dict[str, Any] | None) -> None:
            super().__init__()
            self.hardware = hardware
            self.plan = plan
            self.infeasible = infeasible

    class Drawn(Message):
        """New rows reached the screen: `at` is when the table finished rendering them."""

        def __init__(self, at: float) -> None:
            super().__init__()
            self.at = at

    sort_key: reactive[str] = reactive("monthly")
    """Column key the feasible rows are ordered by."""

    sort_reverse: reactive[bool] = reactive(False)
    """True for descending order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._plans: list[Plan] = []
        self._infeasible: list[dict[str, Any]] = []
        self._undrawn = False

    def show(self, plans: list[Plan], infeasible: list[dict[str, Any]]) -> None:
        self._plans, self._infeasible = list(plans), list(infeasible)
        self._rebuild()
        self._undrawn = True

    def render_lines(self, crop: Region) -> list[Strip]:
        lines = super().render_lines(crop)
        if self._undrawn:
            self._undrawn = False
            # straight to the app: posted from inside a render, it did not bubble up (Textual 8)
            self.app.post_message(self.Drawn(time.perf_counter()))
        return lines

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        """DataTable's cell, through `plain_cell_lines` where the cell is one line of plain text
        (all of this table's): the same segments, cached under the same key, in a tenth of the time."""
        lines = self._plain_cell(row_index, column_index, base_style, width, cursor, hover)
        if lines is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return lines

    def _plain_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                    cursor: bool, hover: bool) -> list[list[Segment]] | None:
        """The steps of Textual 8's `DataTable._render_cell` for a header or body cell of height 1,
        with `plain_cell_lines` in place of Rich's rendering; None to leave the cell to Textual."""
        if not PLAIN_CELLS or column_index < 0 or row_index < -1:
            return None
        header = row_index == -1
        row_key = self._header_row_key if header else self._row_locations.get_key(row_index)
        key = (row_key, self._column_locations.get_key(column_index), base_style, cursor, hover,
               self._show_hover_cursor, self._update_count, self._pseudo_class_state)
        cached = self._cell_render_cache.get(key)
        if cached is not None:
            return cached
        if (self.header_height if header else self.rows[row_key].height) != 1:
            return None
        cell = self._get_row_renderables(row_index).cells[column_index]
        fixed = not header and (row_index < self.fixed_rows or column_index < self.fixed_columns)
        component_style, post_style = self._get_styles_to_render_cell(
            header, False, fixed, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        lines = plain_cell_lines(self.app.console, cell, pre_style, post_style, width, self.cell_padding)
        if lines is not None:
            self._cell_render_cache[key] = lines
        return lines

    def selected(self) -> tuple[Plan | None, dict[str, Any] | None]:
        if not self.row_count:
            return None, None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self._lookup(key)

    def _lookup(self, key: str | None) -> tuple[Plan | None, dict[str, Any] | None]:
        plan = next((p for p in self._plans if p["hardware"] == key), None)
        bad = next((x for x in self._infeasible if x["hardware"] == key), None)
        return plan, bad

    def _rebuild(self) -> None:
        previous = None
        if self.row_count:
            previous = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        column = next(c for c in COLUMNS if c.key == self.sort_key)
        plans = sorted(self._plans, key=lambda p: _sortable(column.sort(p)), reverse=self.sort_reverse)
        self.clear(columns=True)
        for c in COLUMNS:
            arrow = (" ▼" if self.sort_reverse else " ▲") if c.key == self.sort_key else ""
            label = Text(c.label + arrow, justify="right" if c.numeric else "left")
            self.add_column(label, key=c.key)
        for p in plans:
            cells = [Text(c.cell(p), justify="right" if c.numeric else "left") for c in COLUMNS]
            self.add_row(*cells, key=p["hardware"])
        for x in sorted(self._infeasible, key=lambda x: x["hardware"]):
            # the reason sits where a plan shows its bill, so it stays in view on a narrow terminal
            cells = [Text(x["hardware"], style="dim"), Text(short_reason(x), style="dim italic")]
            cells += [Text("") for _ in COLUMNS[2:]]
            self.add_row(*cells, key=x["hardware"])
        keys = [p["hardware"] for p in plans] + sorted(x["hardware"] for x in self._infeasible)
        if previous in keys:
            self.move_cursor(row=keys.index(previous), animate=False)
        self._announce()

    def _announce(self) -> None:
        plan, bad = self.selected()
        key = plan["hardware"] if plan else bad["hardware"] if bad else ""
        self.post_message(self.PlanSelected(key, plan, bad))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self:
            event.stop()
            plan, bad = self._lookup(event.row_key.value)
            self.post_message(self.PlanSelected(event.row_key.value or "", plan, bad))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = str(event.column_key.value)
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, False
        self._rebuild()

    def action_next_sort(self) -> None:
        keys = [c.key for c in COLUMNS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.sort_reverse = False
        self._rebuild()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._rebuild()


def _sortable(value: Any) -> Any:
    # None (no finite value) sorts after every number.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return (1, 0)
    return (0, value)
