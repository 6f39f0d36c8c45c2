"""The Pareto frontier of monthly bill against a latency percentile (TPOT p95 or TTFT p95)."""

from __future__ import annotations

from typing import Any, Literal

from planner.tui.widgets.chart import Chart, legend, nice_ticks, si, wide

COLORS = ("cyan", "magenta", "green", "yellow", "red", "blue", "orange", "white")
METRICS = {
    "tpot": ("tpot_p95_ms", "TPOT p95 (ms)"),
    "ttft": ("ttft_p95_s", "TTFT p95 (s)"),
}


class ParetoChart(Chart):
    """One series per hardware on the frontier, the frontier as a line, the SLO as a vertical line."""

    def __init__(self, metric: Literal["tpot", "ttft"], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.border_title = f"Pareto: $/month vs {METRICS[metric][1]}"
        self.show([], None)

    def show(self, points: list[dict[str, Any]], slo: float | None) -> None:
        key, label = METRICS[self.metric]
        plt = self.plt
        plt.clear_figure()
        plt.xlabel(label)
        plt.ylabel("$ / month")
        self.border_subtitle = ""
        pts = [p for p in points if p.get(key) is not None and p.get("monthly_usd") is not None]
        if not pts:
            plt.title("no feasible plan yet")
            self.refresh()
            return
        pts.sort(key=lambda p: p[key])
        xs, ys = [p[key] for p in pts], [p["monthly_usd"] for p in pts]
        # Bills on the frontier span orders of magnitude (the fastest plans are very expensive).
        xlog = wide(min(xs), max(xs + ([slo] if slo else [])))
        if wide(min(ys), max(ys)):
            plt.yscale("log")
        if xlog:
            plt.xscale("log")
        plt.ylabel("$ / month" + (" (log)" if wide(min(ys), max(ys)) else ""))
        plt.xlabel(label + (" (log)" if xlog else ""))
        plt.plot(xs, ys, color="gray")
        by_hw: dict[str, list[dict[str, Any]]] = {}
        for p in pts:
            by_hw.setdefault(p["hardware"], []).append(p)
        names = sorted(by_hw)
        for i, hw in enumerate(names):
            group = by_hw[hw]
            plt.scatter([p[key] for p in group], [p["monthly_usd"] for p in group],
                        color=COLORS[i % len(COLORS)], marker="●")
        yt = nice_ticks(min(ys), max(ys), wide(min(ys), max(ys)))
        plt.yticks(yt, ["$" + si(t) for t in yt])
        xt = nice_ticks(min(xs), max(xs + ([slo] if slo else [])), xlog)
        plt.xticks(xt, [si(t) for t in xt])
        if slo is not None:
            plt.vertical_line(slo, color="red")
            plt.title(f"frontier: {len(pts)} plans; SLO in red")
        self.border_subtitle = legend(names, COLORS)
        self.refresh()
