"""One labelled scenario field (an Input or a Select) with its validation error underneath."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label, Select, Static

from planner.tui.fields import FieldSpec, describe, parse_text, show_value

SELECT_KINDS = ("model", "draft", "method")


class FieldRow(Vertical):
    """Posts `FieldRow.Edited` on every keystroke or choice; shows the error it is given."""

    class Edited(Message):
        """The user changed a field; `at` is `time.perf_counter()` when the change arrived."""

        def __init__(self, path: str, value: Any, at: float) -> None:
            super().__init__()
            self.path = path
            self.value = value
            self.at = at

    error: reactive[str] = reactive("")
    """The validation message shown under the field; empty while the value is valid."""

    def __init__(self, spec: FieldSpec, value: Any, options: Sequence[str] = ()) -> None:
        super().__init__(id=spec.dom_id, classes="field-row")
        self.spec = spec
        self.options = _with_value(tuple(options), value) if spec.kind in SELECT_KINDS else tuple(options)
        self._shown: Any = self._normalise(value)  # change events that match it are not edits

    def compose(self) -> ComposeResult:
        hint = describe(self.spec.path)
        with Horizontal(classes="field-line"):
            yield Label(self.spec.label, classes="field-label")
            if self.spec.kind in SELECT_KINDS:
                initial = self._shown if self._shown in self.options else Select.NULL
                select: Select[str] = Select([(o, o) for o in self.options], compact=True, value=initial,
                                             allow_blank=self.spec.optional, prompt="(none)")
                select.tooltip = hint
                yield select
            else:
                yield Input(show_value(self._shown), compact=True, tooltip=hint, select_on_focus=True)
        yield Static("", classes="field-error")

    def set_value(self, value: Any) -> None:
        """Show `value` without posting `Edited` (used when a file is loaded)."""
        self._shown = self._normalise(value)
        if self.spec.kind in SELECT_KINDS:
            select = self.query_one(Select)
            with self.prevent(Select.Changed):
                if value not in self.options and isinstance(value, str):
                    self.options = _with_value(self.options, value)
                    select.set_options([(o, o) for o in self.options])
                select.value = value if value in self.options else Select.NULL
        else:
            with self.prevent(Input.Changed):
                self.query_one(Input).value = show_value(value)

    def watch_error(self, message: str) -> None:
        self.query_one(".field-error", Static).update(Content(message))  # plain: it quotes user input
        self.set_class(bool(message), "-invalid")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._edited(parse_text(self.spec, event.value))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._edited(None if event.value is Select.NULL else event.value)

    def _normalise(self, value: Any) -> Any:
        """`value` as an edit of its displayed text would produce it (65536 -> 65536.0 for a float)."""
        return value if self.spec.kind in SELECT_KINDS else parse_text(self.spec, show_value(value))

    def _edited(self, value: Any) -> None:
        # Widgets also post change events for values set in code (a Select picks its first
        # option on mount, for instance); only a real difference is an edit.
        if value == self._shown and type(value) is type(self._shown):
            return
        self._shown = value
        self.post_message(self.Edited(self.spec.path, value, time.perf_counter()))


def _with_value(options: tuple[str, ...], value: Any) -> tuple[str, ...]:
    """The options, with the document's own value among them: a model given as a config.json path or
    defined in the scenario's catalog is not in the bundled list, and a Select without it picked the
    list's first model on mount, which read as an edit (the file's model became deepseek-r1, and
    ctrl+s saved that)."""
    return options + (value,) if isinstance(value, str) and value and value not in options else options
