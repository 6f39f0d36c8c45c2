"""The help screen: what the app does, and every key binding, generated from the BINDINGS lists
themselves so the footer, the command palette and this screen cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

INTRO = """\
# planner

Edit the **scenario** on the left: every change is validated as you type and re-solved in the
background. The **Plans** tab lists the cheapest plan per hardware (infeasible hardware is greyed,
with the constraint that came closest); the detail below shows the highlighted plan's memory per
chip and time per step. **Charts** shows the bill-vs-latency Pareto frontiers and the highlighted
hardware's bill as the prompt grows. **Hardware** browses the catalog with its sources.

Mouse works too: click a column header to sort, click a tab, scroll the panel.
"""


def bindings_table(sections: Sequence[tuple[str, Sequence[BindingType]]], key_display) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, bindings in sections:
        table.add_row(Text(title, style="bold underline"), "")
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            keys = " / ".join(key_display(Binding(k.strip(), b.action)) for k in b.key.split(","))
            table.add_row(keys, b.tooltip or b.description)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close", tooltip="Close the help screen")]

    def __init__(self, sections: Sequence[tuple[str, Sequence[BindingType]]]) -> None:
        super().__init__(classes="dialog-screen")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help-dialog"):
            yield Markdown(INTRO)
            yield Static(bindings_table(self.sections, self.app.get_key_display))

    def action_close(self) -> None:
        self.dismiss(None)
