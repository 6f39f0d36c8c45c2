"""The scenario form: model, workload, SLOs, speculative settings and the hardware filter."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from planner.tui.document import FieldError, ScenarioDocument
from planner.tui.fields import FIELDS, HARDWARE_PATH, METHODS, SECTIONS, FieldSpec
from planner.tui.widgets.field_row import FieldRow
from planner.tui.widgets.hardware_filter import HardwareFilter


class ScenarioPanel(VerticalScroll):
    """A view of the app's `ScenarioDocument`: it shows values and errors, and its rows post
    `FieldRow.Edited`; the app applies the edit, validates, and calls `show_errors`."""

    BORDER_TITLE = "Scenario"

    def __init__(self, document: ScenarioDocument, models: Sequence[str], hardware: Sequence[tuple[str, str]],
                 **kwargs) -> None:
        super().__init__(id="scenario-panel", **kwargs)
        self.document = document  # only read, to build the rows with their first values
        self.models = tuple(models)
        self.hardware = tuple(hardware)

    def _options(self, spec: FieldSpec) -> Sequence[str]:
        if spec.kind == "method":
            return METHODS
        return self.models if spec.kind in ("model", "draft") else ()

    def compose(self) -> ComposeResult:
        for title, group in SECTIONS:
            yield Static(title, classes="section-title")
            for spec in group:
                yield FieldRow(spec, self.document.get(spec.path), self._options(spec))
        yield Static("Search", classes="section-title")
        yield HardwareFilter(self.hardware, self.document.get(HARDWARE_PATH))
        yield Static("", id="scenario-error", classes="field-error")

    def focus_first(self) -> None:
        """Focus the first editable field (after the panel is shown again)."""
        from textual.widgets import Input

        fields = self.query(Input)
        if fields:
            fields.first().focus()

    def load(self, doc: ScenarioDocument) -> None:
        """Show every value of `doc` (posts no edits)."""
        for row in self.query(FieldRow):
            row.set_value(doc.get(row.spec.path))
        self.query_one(HardwareFilter).set_value(doc.get(HARDWARE_PATH))
        self.show_errors(doc.errors, edited=None)

    def show_value(self, path: str, value: object) -> None:
        """Show one field's value as the document now holds it (posts no edit)."""
        for row in self.query(FieldRow):
            if row.spec.path == path:
                row.set_value(value)

    def show_errors(self, errors: Sequence[FieldError], edited: str | None) -> None:
        """Put each error under the field it names; a table-level error (e.g. p90 < median) goes to
        the field just edited if it lies in that table, else to the table's first field."""
        paths = [spec.path for spec in FIELDS] + [HARDWARE_PATH]
        messages: dict[str, list[str]] = {}
        for err in errors:
            target = _target(err.loc, paths, edited)
            text = f"{err.loc}: {err.message}" if target == "" and err.loc else err.message
            messages.setdefault(target, []).append(text)
        for row in self.query(FieldRow):
            row.error = "; ".join(messages.get(row.spec.path, []))
        self.query_one(HardwareFilter).error = "; ".join(messages.get(HARDWARE_PATH, []))
        summary = self.query_one("#scenario-error", Static)
        text = "; ".join(messages.get("", []))
        if str(summary.content) != text:  # an update re-lays out the whole screen (~13 ms at 180x50)
            summary.update(Content(text))  # plain: messages quote user input


def _target(loc: str, paths: Sequence[str], edited: str | None) -> str:
    if loc in paths:
        return loc
    owner = next((p for p in paths if loc.startswith(p + ".")), None)  # e.g. search.hardware.0
    if owner is not None:
        return owner
    if edited is not None and (not loc or edited.startswith(loc + ".")):
        return edited
    return next((p for p in paths if loc and p.startswith(loc + ".")), "")
