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


def si(x: float) -> str:
    """A tick label people read at a glance: 350000 -> 350k, 2749.5 -> 2.7k, 0.25 -> 0.25."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            v = x / scale
            return f"{v:.3g}{suffix}"
    return f"{x:.3g}"


def nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    """Ticks on 1-2-5 steps inside [lo, hi]: per decade on a log axis, about five on a linear one."""
    import math

    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= 0:
        return []
    if hi <= lo:
        return [lo]
    if log:
        lo = max(lo, hi * 1e-9)
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                 for m in (1.0, 2.0, 5.0)]
        inside = [t for t in ticks if lo * 0.999 <= t <= hi * 1.001]
        return inside if len(inside) >= 2 else [lo, hi]
    raw = (hi - lo) / 4.0
    step = min((m * 10.0 ** math.floor(math.log10(raw)) for m in (1.0, 2.0, 5.0, 10.0)),
               key=lambda s: abs(s - raw))
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def wide(lo: float, hi: float) -> bool:
    """A span worth a log axis: over one decade."""
    return lo > 0 and hi / lo > 10.0


def legend(names: list[str], colors: tuple[str, ...]) -> str:
    """Series names as coloured markers for the border subtitle, so no legend covers the data."""
    return "  ".join(f"[{colors[i % len(colors)]}]●[/] {name}" for i, name in enumerate(names))
