"""Owning instead of renting: an accelerator's cost per hour from its purchase price and power.

Renting: the catalog's $/chip-hour (energy, host and network are in the price). Owning (`[cost]
mode = "own"`): capex per chip x (1 + host and network share, unless the catalog price is already
a whole system) amortised over `amortisation_years`, plus energy: board power x the draw at the
plan's load (`idle_power_fraction` when idle, full power at full load, linear between) x PUE x
$/kWh. The search then ranks plans by that cost; every plan reports its monthly energy either way.
"""

from __future__ import annotations

import numpy as np

from planner.catalog import USER_PRICE_SOURCE
from planner.errors import PlannerError
from planner.schema import Accelerator, Scenario
from planner.schema.scenario import Cost

HOURS_PER_YEAR = 8760.0


def missing(acc: Accelerator) -> str | None:
    """Why `acc` cannot be costed as owned hardware (no capex or no power figure), else None."""
    gaps = [name for name in ("capex_usd", "power_w") if not isinstance(getattr(acc, name), int | float)]
    return f"{acc.id} ({' and '.join(gaps)} unknown)" if gaps else None


def capex_per_chip(acc: Accelerator, cost: Cost) -> float:
    """Purchase price per chip including its share of host servers and network."""
    share = 0.0 if acc.capex_includes_host else cost.host_network_fraction
    return float(acc.capex_usd) * (1.0 + share)  # type: ignore[arg-type]


def owned_usd_per_hour(acc: Accelerator, cost: Cost, hours_per_month: float = HOURS_PER_YEAR / 12) -> float:
    """Capex per chip-hour served (amortisation only; energy is added per plan at its load). Owned
    hardware depreciates by the calendar month whether it serves or not, so the month's share of the
    capex is spread over the `serving.hours_per_month` the fleet serves: the bill (that rate x those
    hours) is capex / (12 x years) at any hours, and a fleet serving fewer hours pays more per token.
    (Spread over the 730 hours of a calendar month instead, a fleet serving 73 h a month billed a
    tenth of its depreciation.)"""
    return capex_per_chip(acc, cost) / (cost.amortisation_years * 12.0 * hours_per_month)


def energy_usd_per_hour_full(acc: Accelerator, cost: Cost) -> float:
    """Energy $ per chip-hour at full board power, facility overhead (PUE) included."""
    power = acc.power_w if isinstance(acc.power_w, int | float) else 0.0
    return power / 1000.0 * cost.pue * cost.usd_per_kwh


def chip_hour_usd(acc: Accelerator, scenario: Scenario) -> float:
    """What a chip-hour of `acc` costs the scenario before its load is known: the rental price, or
    owned its capex share plus energy at full power (`priced`'s two terms at full draw)."""
    cost = scenario.cost
    if cost.mode != "own":
        return float(acc.usd_per_hour)
    return owned_usd_per_hour(acc, cost, scenario.serving.hours_per_month) + energy_usd_per_hour_full(acc, cost)


def priced(hw, accs: list[Accelerator], scenario: Scenario):
    """The hardware arrays with owned-hardware prices when `[cost] mode = "own"`, else unchanged
    (energy is then in the rental price, so no energy cost is added)."""
    cost = scenario.cost
    if cost.mode != "own":
        return hw
    shape = np.shape(hw.usd_per_hour)
    hours = scenario.serving.hours_per_month
    usd = np.array([owned_usd_per_hour(a, cost, hours) for a in accs], np.float32).reshape(shape)
    power = np.array([energy_usd_per_hour_full(a, cost) for a in accs], np.float32).reshape(shape)
    return hw._replace(usd_per_hour=usd, power_usd_per_hour=power)


def plan_energy(acc: Accelerator, scenario: Scenario, replicas: int | None, chips: int,
                draw: float | None) -> dict[str, float | None]:
    """Monthly energy of a plan (kWh at the meter, PUE included) and what it costs at the
    scenario's $/kWh (renting: already in the hourly price, shown for comparison)."""
    cost = scenario.cost
    if replicas is None or draw is None or not isinstance(acc.power_w, int | float):
        return {"energy_kwh_month": None, "energy_usd_month": None}
    kwh = replicas * chips * acc.power_w / 1000.0 * draw * cost.pue * scenario.serving.hours_per_month
    return {"energy_kwh_month": round(kwh, 1), "energy_usd_month": round(kwh * cost.usd_per_kwh, 2)}


class NotOwnableError(PlannerError):
    """`[cost] mode = "own"` but no searched hardware has a purchase price and a power figure."""


def plan_cost_fields(acc: Accelerator, scenario: Scenario, replicas: int | None, chips: int,
                     draw: float | None) -> dict[str, object]:
    """The cost fields every plan carries: mode, monthly energy, and (owning) the capex behind it."""
    own = scenario.cost.mode == "own"
    capex = None
    if own and replicas is not None and isinstance(acc.capex_usd, int | float):
        capex = round(replicas * chips * capex_per_chip(acc, scenario.cost), 0)
    return {"cost_mode": scenario.cost.mode, "power_draw": draw,
            **plan_energy(acc, scenario, replicas, chips, draw), "capex_usd": capex,
            "price_set_by_user": not own and user_priced(acc)}


def user_priced(acc: Accelerator) -> bool:
    """The price is one `--price` or a scenario's [prices] set (the catalog cites it as the user's)."""
    return acc.sources.get("usd_per_hour") == USER_PRICE_SOURCE


def unused_prices_note(scenario: Scenario, hardware: list[Accelerator]) -> str | None:
    """The warning for prices the user set (`--price`, `[prices]`) that an owned fleet does not use:
    owned hardware is costed from its purchase price and power, so they changed nothing, silently."""
    if scenario.cost.mode != "own":
        return None
    ids = [a.id for a in hardware if user_priced(a)]
    if not ids:
        return None
    return (f"cost.mode = \"own\": the rental price set for {', '.join(ids)} is not used (owned hardware is "
            "costed from its capex and power: set cost.mode = \"rent\" to price by the hour)")


def excluded_note(scenario: Scenario, hardware: list[Accelerator]) -> str | None:
    """The warning for hardware an owned-fleet search leaves out."""
    if scenario.cost.mode != "own":
        return None
    gaps = [m for a in hardware if (m := missing(a)) is not None]
    if not gaps:
        return None
    shown = ", ".join(gaps[:6]) + (f" and {len(gaps) - 6} more" if len(gaps) > 6 else "")
    return f"cost.mode = \"own\": left out (no purchase price or power in the catalog): {shown}"
