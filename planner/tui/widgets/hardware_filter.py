"""The hardware filter: a checklist of catalog accelerators (all checked = search everything)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Label, SelectionList, Static

from planner.tui.fields import HARDWARE_PATH
from planner.tui.widgets.field_row import FieldRow


class HardwareFilter(Vertical):
    """Posts `FieldRow.Edited` for `search.hardware` with "all" or the checked IDs."""

    error: reactive[str] = reactive("")
    """The validation message shown under the list; empty while the selection is valid."""

    def __init__(self, hardware: Sequence[tuple[str, str]], value: str | list[str] | None) -> None:
        super().__init__(id="hardware-filter", classes="field-row")
        self.hardware = _with_listed(tuple(hardware), value)  # (id, name)
        self._shown = self._value(self._wanted(value))  # the document's value: events matching it are not edits

    def compose(self) -> ComposeResult:
        yield Label("hardware to search (space toggles)", classes="filter-label")
        wanted = self._wanted(self._shown)
        selection: SelectionList[str] = SelectionList(*((hw_id, hw_id, hw_id in wanted) for hw_id, _ in self.hardware))
        selection.tooltip = "Accelerators to search; unchecked ones are left out of the grid"
        yield selection
        yield Static("", classes="field-error")

    def set_value(self, value: str | list[str] | None) -> None:
        selection = self.query_one(SelectionList)
        listed = _with_listed(self.hardware, value)
        for hw_id, _ in listed[len(self.hardware):]:
            selection.add_option((hw_id, hw_id, False))
        self.hardware = listed
        wanted = self._wanted(value)
        self._shown = self._value(wanted)
        with self.prevent(SelectionList.SelectedChanged):
            selection.deselect_all()
            for hw_id, _ in self.hardware:
                if hw_id in wanted:
                    selection.select(hw_id)

    def watch_error(self, message: str) -> None:
        self.query_one(".field-error", Static).update(Content(message))  # plain: it quotes user input
        self.set_class(bool(message), "-invalid")

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        value = self._value(set(event.selection_list.selected))
        if value != self._shown:
            self._shown = value
            self.post_message(FieldRow.Edited(HARDWARE_PATH, value, time.perf_counter()))

    def _wanted(self, value: str | list[str] | None) -> set[str]:
        return {hw_id for hw_id, _ in self.hardware} if value in (None, "all") else set(value or [])

    def _value(self, chosen: set[str]) -> str | list[str]:
        if len(chosen) == len(self.hardware):
            return "all"
        return [hw for hw, _ in self.hardware if hw in chosen]


def _with_listed(hardware: tuple[tuple[str, str], ...], value: str | list[str] | None) -> tuple[tuple[str, str], ...]:
    """The checklist, with every accelerator the document searches: one defined in the scenario's own
    catalog is not in the bundled list, and toggling any box dropped it from search.hardware."""
    known = {hw_id for hw_id, _ in hardware}
    extra = [hw_id for hw_id in (value if isinstance(value, list) else []) if hw_id not in known]
    return hardware + tuple((hw_id, hw_id) for hw_id in dict.fromkeys(extra))
