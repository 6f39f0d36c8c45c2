"""The hardware catalog as a filterable table, with the sources of the highlighted accelerator."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from planner.catalog import Catalog
from planner.schema import Accelerator

COLUMNS = ("id", "kind", "memory GB", "GB/s", "bf16 TFLOP/s", "fp8 TFLOP/s", "$/chip-h", "price", "date",
           "name", "price from")
NUMERIC = {"memory GB", "GB/s", "bf16 TFLOP/s", "fp8 TFLOP/s", "$/chip-h"}


def _n(value: Any, fmt: str = ",.0f") -> str:
    return format(value, fmt) if isinstance(value, int | float) else str(value)


def row(acc: Accelerator) -> list[str]:
    return [acc.id, acc.kind, _n(acc.memory_gb, ",.1f"), _n(acc.memory_gbps), _n(acc.bf16_tflops),
            _n(acc.fp8_tflops), _n(acc.usd_per_hour, ".2f"), acc.price_kind, acc.price_date, acc.name,
            acc.price_provider]


def matches(acc: Accelerator, query: str) -> bool:
    words = query.lower().split()
    haystack = " ".join((acc.id, acc.name, acc.vendor, acc.kind, acc.family, acc.price_provider)).lower()
    return all(w in haystack for w in words)


class HardwareBrowser(Vertical):
    """Type in the filter to narrow the catalog; the panel below cites every number's source."""

    BINDINGS = [Binding("slash", "focus_filter", "Filter", tooltip="Filter the hardware catalog")]

    def __init__(self, catalog: Catalog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.catalog = catalog

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: id, name, vendor, kind…", id="hardware-query", compact=True)
        yield DataTable(cursor_type="row", zebra_stripes=True, id="hardware-table")
        yield Static(id="hardware-sources")

    def on_mount(self) -> None:
        table = self.query_one("#hardware-table", DataTable)
        for name in COLUMNS:
            table.add_column(Text(name, justify="right" if name in NUMERIC else "left"), key=name)
        self.refilter("")

    def refilter(self, query: str) -> None:
        table = self.query_one("#hardware-table", DataTable)
        table.clear()
        for acc in sorted(self.catalog.hardware.values(), key=lambda a: a.id):
            if matches(acc, query):
                cells = [Text(c, justify="right" if name in NUMERIC else "left")
                         for name, c in zip(COLUMNS, row(acc), strict=True)]
                table.add_row(*cells, key=acc.id)
        table.border_subtitle = f"{table.row_count} of {len(self.catalog.hardware)}"
        if not table.row_count:
            self.query_one("#hardware-sources", Static).update(Text("No hardware matches.", style="dim"))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refilter(event.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        acc = self.catalog.hardware.get(str(event.row_key.value))
        if acc is not None:
            self.query_one("#hardware-sources", Static).update(self.sources(acc))

    def sources(self, acc: Accelerator) -> Table:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.title = Text(f"{acc.name}: sources ({self.catalog.hardware_files[acc.id].name})")  # names are user text
        grid.title_justify = "left"
        grid.title_style = "bold"
        for field in sorted(acc.sources):
            grid.add_row(field, Text(self.catalog.citation(acc, field) or "—"))
        if acc.price_method:
            grid.add_row("price method", Text(acc.price_method))
        if acc.notes:
            grid.add_row("notes", Text(acc.notes))
        return grid

    def action_focus_filter(self) -> None:
        self.query_one("#hardware-query", Input).focus()
