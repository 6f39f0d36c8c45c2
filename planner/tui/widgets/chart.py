"""Base of the plots: a PlotextPlot that shows a one-line message instead of crashing the app
when plotext cannot draw the data it was given."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot


class Chart(PlotextPlot):
    def render(self) -> RenderResult:
        try:
            return super().render()
        except Exception as exc:  # plotext raises plain TypeErrors/ValueErrors on odd data
            return Text(f"cannot draw this chart: {type(exc).__name__}: {exc}", style="dim")
