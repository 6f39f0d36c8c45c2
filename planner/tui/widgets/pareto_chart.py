"""The Pareto frontier of monthly bill against a latency percentile (TPOT p95 or TTFT p95)."""

from __future__ import annotations

from typing import Any, Literal

from planner.tui.widgets.chart import Chart

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
        plt.ylabel("$k / month")
        pts = [p for p in points if p.get(key) is not None and p.get("monthly_usd") is not None]
        if not pts:
            plt.title("no feasible plan yet")
            self.refresh()
            return
        pts.sort(key=lambda p: p[key])
        # Bills on the frontier span orders of magnitude (the fastest plans are very expensive).
        plt.yscale("log")
        plt.ylabel("$k / month (log)")
        plt.plot([p[key] for p in pts], [p["monthly_usd"] / 1e3 for p in pts], color="gray")
        by_hw: dict[str, list[dict[str, Any]]] = {}
        for p in pts:
            by_hw.setdefault(p["hardware"], []).append(p)
        for i, (hw, group) in enumerate(sorted(by_hw.items())):
            plt.scatter([p[key] for p in group], [p["monthly_usd"] / 1e3 for p in group],
                        label=hw, color=COLORS[i % len(COLORS)], marker="●")
        if slo is not None:
            plt.vertical_line(slo, color="red")
            plt.title(f"frontier: {len(pts)} plans; SLO in red")
        self.refresh()
