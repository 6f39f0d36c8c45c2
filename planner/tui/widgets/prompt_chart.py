"""The highlighted hardware's cheapest monthly bill as the prompt length grows."""

from __future__ import annotations

from typing import Any

from planner.tui.solver import CurvePoint
from planner.tui.widgets.chart import Chart, nice_ticks, si


class PromptChart(Chart):
    """Filled in point by point by the curve worker; missing points had no feasible plan."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "$/month vs prompt median"
        self.show("", [], None)

    def show(self, hardware: str, points: list[CurvePoint], current: int | None, pending: bool = False) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.xlabel("prompt median, tokens (log)")
        plt.ylabel("$ / month")
        ok = [p for p in points if p.monthly_usd is not None]
        failed = [p for p in points if p.monthly_usd is None]
        state = " (computing…)" if pending else ""
        if not hardware:
            plt.title("highlight a plan to see its curve")
        elif not ok:
            plt.title(f"{hardware}: {'computing…' if pending else 'no feasible plan at these lengths'}")
        else:
            plt.title(f"{hardware}{state}; ✗ = no feasible plan")
            plt.xscale("log")  # plotext fails on a log axis without data, so only here
            xs = [p.input_median for p in ok]
            ys = [p.monthly_usd for p in ok]
            plt.plot(xs, ys, color="cyan")
            plt.scatter(xs, ys, color="cyan", marker="●")
            if failed:
                plt.scatter([p.input_median for p in failed], [max(ys)] * len(failed), color="red", marker="✗")
            if current is not None:
                plt.vertical_line(current, color="yellow")
            every = xs + [p.input_median for p in failed]
            xt = nice_ticks(min(every), max(every), True)
            plt.xticks(xt, [si(t) for t in xt])
            yt = nice_ticks(min(ys), max(ys), False) if max(ys) > min(ys) else [ys[0]]
            plt.yticks(yt, ["$" + si(t) for t in yt])
        self.border_title = f"$/month vs prompt median — {hardware}" if hardware else "$/month vs prompt median"
        self.refresh()
