"""Detail of the highlighted plan: memory per chip and time per step as bars, SLO headroom."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from planner.render import figure, spec_words, tiers
from planner.tui.solver import WhatIf

BLOCKS = " ▏▎▍▌▋▊▉█"
PENDING, UNAVAILABLE = "pending", "unavailable"  # what-if states besides a list of rows
BAR_WIDTH = 30


def bar(value: float | None, scale: float, width: int = BAR_WIDTH) -> str:
    """A left-aligned bar of `value / scale` of `width` cells, in eighths of a cell."""
    if not value or scale <= 0:
        return " " * width
    eighths = max(1, round(min(value / scale, 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def _bars(title: str, rows: list[tuple[str, float | None, str]], scale: float, unit: str = "") -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=13)
    grid.add_column(width=BAR_WIDTH)
    grid.add_column(justify="right", width=8)
    grid.title = title
    grid.title_justify = "left"
    grid.title_style = "bold"
    for label, value, style in rows:
        grid.add_row(label, Text(bar(value, scale), style=style), "—" if value is None else f"{value:,.1f}")
    if unit:
        grid.caption = unit
        grid.caption_justify = "left"
        grid.caption_style = "dim"
    return grid


def _ratio_text(ratios: dict[str, float | None], binding: str) -> Text:
    text = Text("SLO use (1 = at the limit): ", style="bold")
    for name, r in ratios.items():
        style = "bold red" if r is not None and r > 1 else "bold" if name == binding else ""
        text.append(f"{name} {'—' if r is None else f'{r:.2f}'}", style=style)
        text.append("  ")
    return text


class PlanDetail(Static):
    """Renders one plan dict (or an infeasible record and its closest plan), and the plan's
    what-if bills once the app has computed them."""

    BORDER_TITLE = "Plan detail"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[Any, ...] = (None, None, None, None)
        self._whatifs: list[WhatIf] | str = PENDING
        self._content_height: int | None = None
        self.warnings: list[str] = []  # the solve's: the search differs from what [search] lists
        self.disaggregated: dict[str, Any] | None = None  # the solve's best disaggregated plan, if searched
        self.disaggregated_pending = False  # its search still running (it follows the plans table)
        self._drawn_from: tuple[Any, ...] | None = None  # what the content on screen was rendered from

    def set_disaggregated(self, plan: dict[str, Any] | None, *, pending: bool = False, render: bool = True) -> None:
        """The solve's best disaggregated plan, or (`pending`) that its search is still running: the
        last one stays, dimmed, so that the detail keeps its height (a new height re-lays out the
        whole screen, ~20-80 ms per edit). `render=False`: only remember it, because a `show` follows
        (a new plans table always announces its selected row)."""
        if pending and plan is None:
            plan = self.disaggregated
        if (self.disaggregated, self.disaggregated_pending) == (plan, pending):
            return
        self.disaggregated, self.disaggregated_pending = plan, pending
        if render and self._shown[:2] != (None, None):
            self._render_plan(*self._shown)

    def show_whatifs(self, hardware: str, rows: list[WhatIf] | None) -> None:
        """What-ifs for `hardware` (None: not available in this installation)."""
        plan = self._shown[0]
        if plan is not None and plan["hardware"] == hardware:
            self._whatifs = UNAVAILABLE if rows is None else rows
            self._render_plan(*self._shown)

    def show(self, plan: dict[str, Any] | None, infeasible: dict[str, Any] | None = None, *,
             slo_ttft_s: float | None = None, slo_tpot_ms: float | None = None) -> None:
        if self._shown[:2] != (plan, infeasible):
            self._whatifs = PENDING
        self._shown = (plan, infeasible, slo_ttft_s, slo_tpot_ms)
        self._render_plan(*self._shown)

    def _render_plan(self, plan: dict[str, Any] | None, infeasible: dict[str, Any] | None,
                     slo_ttft_s: float | None, slo_tpot_ms: float | None) -> None:
        # a new table announces its row twice (its rebuild, then the cursor's highlight): building
        # the detail costs ~15 ms of the edit -> table time, so the same inputs are not built again
        # (copies: a dict changed in place after it was shown must not read as the same input)
        source = (_copy(plan), _copy(infeasible), slo_ttft_s, slo_tpot_ms, _copy(self.disaggregated),
                  self.disaggregated_pending, list(self.warnings), _copy(self._whatifs))
        if source == self._drawn_from:
            return
        self._drawn_from = source
        if plan is None and infeasible is None:
            self._set_content(Text("No plan selected.", style="dim"))
            return
        header: list[Text] = []
        if infeasible is not None:
            plan = infeasible["closest"]
            header.append(Text(f"✗ {infeasible['hardware']}: no feasible plan. {infeasible['reason']}",
                               style="bold red"))
            header.append(Text("Closest plan:", style="dim"))
        assert plan is not None
        header.append(Text.assemble(
            (f"{plan['hardware']}", "bold"), f" · {plan['hardware_name']} — {_f(plan['replicas'], ',.0f')} × "
            f"{plan['chips']} chips ({plan['layout_text']}), batch {plan['batch']}, weights {plan['weight_dtype']}, KV {plan['kv_dtype']} "
            f"({tiers(plan)}), speculation {spec_words(plan)}, prefix cache {'on' if plan['prefix_cache'] else 'off'}, "
            f"{plan['attention']} attention"))
        header.append(Text(
            f"{_usd(plan['monthly_usd'], ',.0f')}/month · {_usd(plan['usd_per_hour'], ',.2f')}/h · "
            f"{_usd(plan['usd_per_mtok_input'], '.3f')}/Mtok in · {_usd(plan['usd_per_mtok_output'], '.3f')}/Mtok out · "
            f"TTFT p50/p95 {_f(plan['ttft_p50_s'], '.2f')}/{_f(plan['ttft_p95_s'], '.2f')} s · "
            f"TPOT p50/p95 {_f(plan['tpot_p50_ms'], '.1f')}/{_f(plan['tpot_p95_ms'], '.1f')} ms · "
            f"prefix hit {_f(plan['prefix_hit_rate'], '.0%')}", style="green" if infeasible is None else "dim"))
        if plan.get("quality_note"):
            header.append(Text(f"⚠ {plan['quality_note']}", style="yellow"))
        bands = _bands(plan)
        if bands:
            header.append(Text(f"uncertainty: {bands}", style="dim"))
        if infeasible is None and plan.get("sized_rps") is not None and plan.get("rate_headroom") is not None:
            header.append(Text(f"sized for up to {figure(plan['sized_rps'])} req/s, {plan['rate_headroom']:+.0%} over "
                               "the scenario's rate (a busier window queues)", style="dim"))
        if plan.get("energy_kwh_month") is not None:
            owned = plan.get("cost_mode") == "own"
            header.append(Text(f"{'owned' if owned else 'rented'}: energy {plan['energy_kwh_month']:,.0f} kWh/month "
                               f"(${plan.get('energy_usd_month') or 0:,.0f})"
                               + (f", capex ${plan['capex_usd']:,.0f}" if owned and plan.get("capex_usd") else ""),
                               style="dim"))
        for warning in self.warnings:
            header.append(Text(f"⚠ {warning}", style="yellow"))
        header.extend(_pools(self.disaggregated, plan if infeasible is None else None, self.disaggregated_pending))
        mem = plan["memory_gb_per_chip"]
        usable = mem["usable_hbm"] or 0.0
        used = sum(mem[k] or 0.0 for k in ("weights", "kv_hbm", "activations"))
        offloaded = (mem["kv_dram"] or 0.0) + (mem["kv_nvme"] or 0.0)
        memory = _bars("Memory per chip", [
            ("weights", mem["weights"], "magenta"),
            ("KV in HBM", mem["kv_hbm"], "cyan"),
            ("activations", mem["activations"], "yellow"),
            ("free", max(usable - used, 0.0), "grey50"),
            ("KV offloaded", offloaded, "blue"),
            ("prefix cache", mem["prefix_cache"], "green"),
        ], max(usable, used, offloaded, mem["prefix_cache"] or 0.0), f"GB, of {usable:,.1f} GB usable HBM")
        steps = plan["time_per_step_ms"]
        tpot, ttft = plan["tpot_p95_ms"], plan["ttft_p95_s"]
        prefill_s = None if steps["prefill_mean"] is None else steps["prefill_mean"] / 1e3
        decode_scale = max(v or 0.0 for v in (steps["decode_step"], tpot, slo_tpot_ms))
        prefill_scale = max(v or 0.0 for v in (prefill_s, ttft, slo_ttft_s))
        times = Table.grid()
        times.add_row(_bars(f"Time per decode step, ms ({_f(plan['tokens_per_step'], '.2f')} tokens/step)", [
            ("decode step", steps["decode_step"], "cyan"),
            ("TPOT p95", tpot, "yellow"),
            ("TPOT SLO", slo_tpot_ms, "red"),
        ], decode_scale))
        times.add_row(_bars("Prefill per request, s (TTFT adds queueing)", [
            ("prefill mean", prefill_s, "magenta"),
            ("TTFT p95", ttft, "yellow"),
            ("TTFT SLO", slo_ttft_s, "red"),
        ], prefill_scale))
        body = Table.grid(padding=(0, 4))
        body.add_row(memory, times)
        lines = [_ratio_text(plan["slo_ratios"], plan["binding"])]
        if infeasible is None and self._whatifs != UNAVAILABLE:
            lines.append(_whatif_text(self._whatifs))
        self._set_content(Group(*header, Text(""), body, Text(""), *lines))

    def _set_content(self, content: Any) -> None:
        """Update, re-laying out the screen (~13 ms at 180x50) only if the height changes: the
        detail's height follows its content, but successive plans usually take the same lines."""
        width = self.content_size.width
        height = None
        if width > 0:
            console = self.app.console
            height = len(console.render_lines(content, console.options.update(width=width, height=None), pad=False))
        self.update(content, layout=height is None or height != self._content_height)
        self._content_height = height


def _copy(value: Any) -> Any:
    """A shallow copy of a dict or list (what the detail compares its inputs by), else the value."""
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def _whatif_text(rows: list[WhatIf] | str) -> Text:
    text = Text("What if, on this hardware: ", style="bold")
    if isinstance(rows, str):
        return text.append("computing…", style="dim")
    for row in rows:
        label = row.name.replace("-", " ")
        if row.monthly_usd is None:
            text.append(f"{label}: no plan", style="red")
        else:
            text.append(f"{label} {row.delta_pct or 0:+.0f}%", style="yellow" if (row.delta_pct or 0) > 0 else "")
        text.append("  ")
    return text


BANDED = (("ttft_p95_s", "TTFT p95", "s", ".2f"), ("tpot_p95_ms", "TPOT p95", "ms", ".1f"),
          ("monthly_usd", "$/month", "", ",.0f"))


def _bands(plan: dict[str, Any]) -> str:
    """Uncertainty bands the cost model gives (`<metric>_low`, `<metric>_high`), when it gives them."""
    parts = []
    for key, label, unit, fmt in BANDED:
        low, high = plan.get(f"{key}_low"), plan.get(f"{key}_high")
        if low is not None and high is not None:
            parts.append(f"{label} {format(low, fmt)}–{format(high, fmt)}{(' ' + unit) if unit else ''}")
    return " · ".join(parts)


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _usd(value: float | None, fmt: str) -> str:
    """A dollar figure, or "—" where there is none (a closest miss has no bill: it read $0/month)."""
    return "$" + _f(value, fmt)


POOL_LINES = 4  # lines `_pools` shows for a disaggregated plan
STALE_LABEL = "Disagg. (updating)"  # as long as "Disaggregated best", which it replaces while pending


def _pools(disagg: dict[str, Any] | None, plan: dict[str, Any] | None, pending: bool = False) -> list[Text]:
    """The best disaggregated plan, both pools and the KV transfer, against the plan shown; while
    its search runs (`pending`), the last one dimmed, or a placeholder of the same height."""
    if disagg is None:
        return [Text("Disaggregated best: searching…", style="dim")] + [Text("")] * (POOL_LINES - 1) if pending else []
    if pending:  # the same text and length, so the same height: dimmed, and the label says so
        lines = [line.plain for line in _pools(disagg, plan)]
        lines[0] = lines[0].replace("Disaggregated best", STALE_LABEL, 1)
        return [Text(line, style="dim") for line in lines]
    p, d, x = disagg["prefill"], disagg["decode"], disagg["kv_transfer"]
    delta = ""
    if plan is not None and plan.get("monthly_usd"):
        delta = f" ({100.0 * (disagg['monthly_usd'] - plan['monthly_usd']) / plan['monthly_usd']:+.0f}% vs this plan)"
    return [
        Text.assemble(("Disaggregated best", "bold"), f": {_usd(disagg['monthly_usd'], ',.0f')}/month{delta} · "
                      f"TTFT p95 {_f(disagg['ttft_p95_s'], '.2f')} s · TPOT p95 {_f(disagg['tpot_p95_ms'], '.1f')} ms"),
        Text(f"  prefill pool: {_f(p['replicas'], ',.0f')} × {p['chips']} {p['hardware']} ({p['layout_text']}), "
             f"{p['weight_dtype']}/{p['kv_dtype']}, prefix cache {p['prefix_cache_lives'] if p['prefix_cache'] else 'off'} · "
             f"{_usd(p['monthly_usd'], ',.0f')}/month"),
        Text(f"  decode pool: {_f(d['replicas'], ',.0f')} × {d['chips']} {d['hardware']} ({d['layout_text']}), batch {d['batch']}, "
             f"{d['weight_dtype']}/{d['kv_dtype']}, k={d['spec_k']} · {_usd(d['monthly_usd'], ',.0f')}/month"),
        Text(f"  KV transfer: {(x['bytes_per_request_mean'] or 0) / 1e6:,.0f} MB/request over {x['link']} "
             f"{x['gbps'] or 0:,.0f} GB/s, {_f(x['visible_p95_s'], '.3f')} s in TTFT p95 ({x['overlap']})", style="dim"),
    ]
