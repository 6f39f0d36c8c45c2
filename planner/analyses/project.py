"""Project: the monthly bill over years as token prices fall and usage grows (the Jevons effect).

Year y: token prices (the hardware $/hour behind each token, and API list prices) are multiplied by
(1 - decline)^y; usage (the arrival rate) by growth^y. The self-hosted bill re-solves the scenario at
the grown arrival rate (fleet sizes are whole replicas and the best configuration may change with
load), then applies the price factor: a uniform price factor never changes which plan is cheapest.
Spend rises despite cheaper tokens whenever growth x (1 - decline) > 1; `jevons_year` is the first
year the self-hosted bill is above the year before while token prices fell.

API bill per month = requests/month x (mean prompt x (cached share x cached price + (1 - cached
share) x input price) + mean output x output price), with cached share = prefix_reuse x (turns - 1) /
turns: every turn after a session's first resends the previous context, which the provider's prompt
cache serves. Requests/month = arrival rate x 3600 x the scenario's billed hours per month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field

from planner import io, paths, render
from planner.catalog import Catalog, closest
from planner.errors import InputFileError, UnknownIdError
from planner.schema import Scenario
from planner.schema.common import KebabId, Strict
from planner.schema.scenario import MIN_RATE_RPS, Workload

DEFAULT_APIS = ("groq-llama-3.3-70b", "deepseek-chat", "gpt-5", "claude-sonnet-4")


class ApiPrice(Strict):
    id: KebabId = Field(description="Short ID used by `planner project --api`")
    provider: str
    name: str
    input: float = Field(ge=0, description="$ per 1M uncached input tokens")
    cached_input: float = Field(ge=0, description="$ per 1M input tokens served from the prompt cache")
    cache_write: float | None = Field(None, ge=0, description="$ per 1M tokens written to the cache (info)")
    output: float = Field(ge=0, description="$ per 1M output tokens")
    source: str = Field(description="Key into [sources]")
    date: str = Field(description="Date the source gives")
    verified: bool = Field(description="False for figures recalled, not read in a stored copy of the source ([U])")
    caveat: str = ""


class ApiPriceFile(Strict):
    sources: dict[str, str]
    api: list[ApiPrice]


def api_prices_file() -> Path:
    return Path(paths.__file__).resolve().parent / "data" / "api_prices.toml"


@cache
def load_api_prices(path: Path | None = None) -> ApiPriceFile:
    target = path or api_prices_file()
    parsed = io.load(ApiPriceFile, target)
    for api in parsed.api:
        if api.source not in parsed.sources:
            raise InputFileError(f"{target}: api '{api.id}'.source: '{api.source}' is not in [sources]")
    return parsed


def pick_apis(ids: Sequence[str] | None) -> list[ApiPrice]:
    table = {a.id: a for a in load_api_prices().api}
    if not ids:
        return [table[i] for i in DEFAULT_APIS if i in table]
    for i in ids:
        if i not in table:
            near = closest(i, sorted(table))
            hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise UnknownIdError(f"unknown API ID '{i}'{hint} (known: {', '.join(table)})")
    return [table[i] for i in dict.fromkeys(ids)]


def cached_share(scenario: Scenario) -> float:
    s = scenario.workload.sessions
    return s.prefix_reuse * (s.turns - 1) / s.turns


def requests_per_month(scenario: Scenario) -> float:
    return scenario.workload.arrival_rate_rps * 3600.0 * scenario.serving.hours_per_month


def api_monthly(api: ApiPrice, scenario: Scenario, in_mean: float, out_mean: float) -> float:
    share = cached_share(scenario)
    per_request = (in_mean * (share * api.cached_input + (1.0 - share) * api.input) + out_mean * api.output) / 1e6
    return requests_per_month(scenario) * per_request


def _priced_monthly(plan: dict[str, Any], price: float) -> float:
    """A plan's bill with hardware prices scaled by `price`. Owned hardware: the amortised capex
    falls with hardware prices, the energy bill does not (kWh cost the same)."""
    if plan.get("cost_mode") == "own" and plan.get("energy_usd_month") is not None:
        energy = plan["energy_usd_month"]
        return (plan["monthly_usd"] - energy) * price + energy
    return plan["monthly_usd"] * price


MAX_ARRIVAL_RPS = next(m.le for m in Workload.model_fields["arrival_rate_rps"].metadata if getattr(m, "le", None))
"""The largest arrival rate a scenario may state (the least: `MIN_RATE_RPS`): a year's projected
rate outside them is not solved."""


def _scaled(scenario: Scenario, factor: float) -> Scenario:
    workload = scenario.workload.model_copy(update={"arrival_rate_rps": scenario.workload.arrival_rate_rps * factor})
    return scenario.model_copy(update={"workload": workload})


@dataclass
class Projection:
    scenario: Scenario
    years: int
    price_decline_pct: float
    api_price_decline_pct: float
    usage_growth: float
    baseline: dict[str, Any] | None
    infeasible: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    apis: list[dict[str, Any]]
    in_mean: float
    out_mean: float
    seconds: list[float]
    warnings: list[str] = field(default_factory=list)  # the scenario served differently than written (year 0's)

    @property
    def jevons_year(self) -> int | None:
        return next((r["year"] for r in self.rows if r["spend_rises"]), None)


def project(scenario: Scenario, catalog: Catalog, years: int, price_decline_pct: float, usage_growth: float,
            api_price_decline_pct: float | None = None, apis: Sequence[ApiPrice] = ()) -> Projection:
    from planner.analyses.fleet import fleet
    from planner.analyses.whatif import evaluate, infeasible_rows

    api_decline = price_decline_pct if api_price_decline_pct is None else api_price_decline_pct
    first = evaluate(scenario, catalog)
    in_mean, out_mean = float(first.grid.load.in_mean), float(first.grid.load.out_mean)
    base = first.best
    api_rows = []
    for api in apis:
        monthly = api_monthly(api, scenario, in_mean, out_mean)
        api_rows.append({**api.model_dump(exclude_none=True), "monthly_usd": round(monthly, 2),
                         "vs_self_hosted": round(monthly / base["monthly_usd"], 3) if base else None})
    rows: list[dict[str, Any]] = []
    seconds = [first.seconds]
    warnings = list(first.warnings)
    if base is not None:
        previous = None
        for year in range(years + 1):
            usage = usage_growth**year
            rate = scenario.workload.arrival_rate_rps * usage
            if not MIN_RATE_RPS <= rate <= MAX_ARRIVAL_RPS:
                bound = (f"exceeds the {MAX_ARRIVAL_RPS:,.0f}" if rate > MAX_ARRIVAL_RPS
                         else f"is below the {MIN_RATE_RPS:g}")
                warnings.append(f"years {year}-{years} not projected: {render.figure(rate)} req/s {bound} req/s a scenario may "
                                "state (workload.arrival_rate_rps)")
                break
            price = (1.0 - price_decline_pct / 100.0) ** year
            api_price = (1.0 - api_decline / 100.0) ** year
            ev = first if year == 0 else evaluate(_scaled(scenario, usage), catalog)
            if year:
                seconds.append(ev.seconds)
            plan = ev.best
            monthly = None if plan is None else round(_priced_monthly(plan, price), 2)
            # $/Mtok follow the bill: an owned fleet's energy does not fall with hardware prices
            factor = monthly / plan["monthly_usd"] if plan is not None and plan["monthly_usd"] else price
            rises = bool(previous is not None and monthly is not None and monthly > previous and price < 1.0)
            rows.append({
                "year": year,
                "price_factor": round(price, 6),
                "api_price_factor": round(api_price, 6),
                "usage_factor": round(usage, 6),
                "arrival_rate_rps": round(scenario.workload.arrival_rate_rps * usage, 6),
                "self_hosted": None if plan is None else {
                    "monthly_usd": monthly,
                    "mode": plan["mode"], "fleet": fleet(plan), "calibration": plan["calibration"],
                    "hardware": plan["hardware"], "chips": plan.get("chips"), "replicas": plan.get("replicas"),
                    "usd_per_mtok_input": round(plan["usd_per_mtok_input"] * factor, 4),
                    "usd_per_mtok_output": round(plan["usd_per_mtok_output"] * factor, 4),
                },
                "api_monthly_usd": {a["id"]: round(a["monthly_usd"] * usage * api_price, 2) for a in api_rows},
                "spend_rises": rises,
            })
            previous = monthly if monthly is not None else previous
    return Projection(scenario=scenario, years=years, price_decline_pct=price_decline_pct,
                      api_price_decline_pct=api_decline, usage_growth=usage_growth, baseline=base,
                      infeasible=infeasible_rows(first), rows=rows, apis=api_rows, in_mean=in_mean,
                      out_mean=out_mean, seconds=seconds, warnings=warnings)


def project_dict(p: Projection, *, timing: bool = True) -> dict[str, Any]:
    """The `planner project --format json` document."""
    sc = p.scenario
    out: dict[str, Any] = {
        "scenario": sc.name,
        "model": {"id": sc.model.id},
        "years": p.years,
        "price_decline_pct": p.price_decline_pct,
        "api_price_decline_pct": p.api_price_decline_pct,
        "usage_growth": p.usage_growth,
        "workload": {
            "arrival_rate_rps": sc.workload.arrival_rate_rps,
            "requests_per_month": round(requests_per_month(sc), 1),
            "input_tokens_mean": round(p.in_mean, 1),
            "output_tokens_mean": round(p.out_mean, 1),
            "cached_input_share": round(cached_share(sc), 4),
        },
        "baseline": p.baseline,
        "apis": p.apis,
        "projection": p.rows,
        "jevons_year": p.jevons_year,
        "warnings": p.warnings,
    }
    if p.baseline is None:
        out["infeasible"] = p.infeasible
    if timing:
        out["seconds"] = [round(s, 3) for s in p.seconds]
    return out
