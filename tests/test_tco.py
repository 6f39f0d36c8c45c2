"""Owning instead of renting: capex amortised plus energy at the plan's load, hand-derived."""

from __future__ import annotations

import json

import pytest
from support import with_dotted

from planner import io, paths, tco
from planner.analyses.project import project
from planner.catalog import load_catalog
from planner.schema import Scenario
from planner.search import solve

ONE = {"hardware": ["h100-sxm"], "chips": [8], "batch": [32], "weight_dtype": ["fp8"], "kv_dtype": ["fp8"],
       "dram_fraction": [0.0], "nvme_fraction": [0.0], "spec_k": [0], "prefix_cache": [True], "attention": ["flash"]}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def scenario(search: dict | None = None, **updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(ONE, **(search or {}))
    return io.validate(Scenario, with_dotted(data, {"cost.mode": "own", **updates}), "test")


def test_owned_hour_of_an_h100_by_hand(catalog) -> None:
    cost = scenario().cost
    h100 = catalog.accelerator("h100-sxm")
    # $30,000 street price x (1 + 0.3 host and network) / (4 years x 8,760 h) = $1.1130/h
    assert tco.owned_usd_per_hour(h100, cost) == pytest.approx(30000 * 1.3 / 35040)
    # 700 W x PUE 1.2 x $0.08/kWh = $0.0672/h at full power
    assert tco.energy_usd_per_hour_full(h100, cost) == pytest.approx(0.7 * 1.2 * 0.08)
    gb200 = catalog.accelerator("gb200")  # a rack price: host and network already in it
    assert tco.owned_usd_per_hour(gb200, cost) == pytest.approx(43056 / 35040)


def test_an_owned_plan_costs_capex_plus_energy_at_its_load(catalog) -> None:
    plan = solve(scenario(), catalog).best
    assert plan is not None and plan["cost_mode"] == "own"
    draw = plan["power_draw"]
    assert 0.3 <= draw <= 1.0  # idle 30 % of board power, full power at full load
    chips, replicas = plan["chips"], plan["replicas"]
    per_chip = 30000 * 1.3 / 35040 + 0.7 * 1.2 * 0.08 * draw
    instance_chips = chips // plan["layout"]["replicas_per_system"]  # `replicas` counts systems of `chips`
    assert plan["usd_per_hour_per_replica"] == pytest.approx(instance_chips * per_chip, rel=1e-4)
    assert plan["monthly_usd"] == pytest.approx(replicas * chips * per_chip * 730, rel=1e-4)
    kwh = replicas * chips * 0.7 * draw * 1.2 * 730
    assert plan["energy_kwh_month"] == pytest.approx(kwh, rel=1e-3)
    assert plan["energy_usd_month"] == pytest.approx(kwh * 0.08, rel=1e-3)
    assert plan["capex_usd"] == replicas * chips * 39000


def test_owned_capex_is_a_calendar_months_share_at_any_serving_hours(catalog) -> None:
    """Owned hardware depreciates by the month whether it serves or not: with serving.hours_per_month
    = 73 the bill keeps the whole month's capex share (it billed a tenth of it) and only the energy
    follows the hours served; per token, fewer hours cost more."""
    full, part = (solve(scenario(**{"serving.hours_per_month": h}), catalog).best for h in (730.0, 73.0))
    assert (full["chips"], full["replicas"]) == (part["chips"], part["replicas"])
    chips = full["replicas"] * full["chips"]
    month_of_capex = chips * 30000 * 1.3 / 48
    for plan in (full, part):
        assert plan["monthly_usd"] - plan["energy_usd_month"] == pytest.approx(month_of_capex, rel=2e-3)
    assert part["energy_usd_month"] == pytest.approx(full["energy_usd_month"] / 10, rel=1e-3)
    assert part["usd_per_mtok_output"] > 5 * full["usd_per_mtok_output"]


def test_an_owned_fleet_says_the_rental_prices_set_for_it_are_not_used(invoke, tmp_path) -> None:
    """`--price` (or [prices]) under cost.mode = "own" changes nothing: the run says so, and the plan
    does not claim the user's price."""
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(ONE)
    data["cost"] = {"mode": "own"}
    path = tmp_path / "owned.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    plain = json.loads(invoke("solve", path, "-f", "json").stdout)
    priced = json.loads(invoke("--price", "h100-sxm=0.01", "solve", path, "-f", "json").stdout)
    assert priced["best"]["monthly_usd"] == plain["best"]["monthly_usd"]
    assert priced["best"]["price_set_by_user"] is False
    assert any("rental price set for h100-sxm is not used" in w for w in priced["warnings"])
    assert not any("not used" in w for w in plain["warnings"])


def test_renting_reports_energy_but_does_not_add_it(catalog) -> None:
    plan = solve(scenario(**{"cost.mode": "rent"}), catalog).best
    h100 = catalog.accelerator("h100-sxm")
    assert plan["cost_mode"] == "rent" and plan["capex_usd"] is None
    instance_chips = plan["chips"] // plan["layout"]["replicas_per_system"]
    assert plan["usd_per_hour_per_replica"] == pytest.approx(instance_chips * h100.usd_per_hour, rel=1e-5)
    assert plan["energy_kwh_month"] == pytest.approx(
        plan["replicas"] * plan["chips"] * 0.7 * plan["power_draw"] * 1.2 * 730, rel=1e-3)


def test_the_host_memory_in_a_rented_bill_is_named(catalog) -> None:
    """A rented bill is the chips' $/chip-hour plus the host memory that offloaded KV and the prefix
    cache occupy ($/GB-hour): on the default scenario ~9 % of it, which 'rented at the catalog's
    $/chip-hour' left unsaid. Each pool's host share is its bill less its chips' rent."""
    from planner.cli.file_cmds import load_scenario
    from planner.solve_report import cost_words

    sc = load_scenario(paths.default_scenario(), catalog=catalog)
    result = solve(sc, catalog)
    best = result.best
    pools = [best["prefill"], best["decode"]] if best.get("mode") == "disaggregated" else [best]
    for pool in pools:
        rent = pool["replicas"] * pool["chips"] * catalog.accelerator(pool["hardware"]).usd_per_hour * 730
        assert pool["host_memory_usd_month"] == pytest.approx(pool["monthly_usd"] - rent, abs=0.5)
    host = best["host_memory_usd_month"]
    assert host > 0.05 * best["monthly_usd"]
    assert f"host memory for offloaded KV and the prefix cache ${host:,.0f}/month" in cost_words(best, sc)
    for plan in result.per_hardware:  # aggregated plans too
        rent = plan["replicas"] * plan["chips"] * catalog.accelerator(plan["hardware"]).usd_per_hour * 730
        assert plan["host_memory_usd_month"] == pytest.approx(plan["monthly_usd"] - rent, abs=0.5)


def test_fleet_and_replica_rates_are_told_apart(catalog) -> None:
    """`throughput_tok_s` is one replica's (an aggregated plan's instance, a disaggregated plan's
    decode replica) in both modes; `served_output_tok_s` is the fleet's (rate x mean output). The
    disaggregated plan's was the fleet's, the aggregated plan's one replica's, unlabelled."""
    from planner.cli.file_cmds import load_scenario

    sc = load_scenario(paths.scenarios_dir() / "chat.toml", catalog=catalog)
    result = solve(sc, catalog)
    served = sc.workload.arrival_rate_rps * result.grid.load.out_mean
    plans = list(result.per_hardware) + ([result.disagg.best] if result.disagg and result.disagg.best else [])
    for p in plans:
        assert p["served_output_tok_s"] == pytest.approx(float(served), rel=1e-4)
        instances = (p["decode"] if p.get("mode") == "disaggregated" else p)
        count = instances["replicas"] * instances["layout"]["replicas_per_system"]
        if p.get("mode") == "disaggregated":
            assert p["throughput_tok_s"] == pytest.approx(float(served) / count, rel=1e-4)
        else:  # the model's instance throughput at its load: the served rate over the instances
            assert p["throughput_tok_s"] == pytest.approx(float(served) / count, rel=2e-2)


def test_a_price_on_the_command_line_beats_the_scenarios_and_is_named(invoke, tmp_path) -> None:
    """The command line is the later, more specific word: `--price h100-sxm=5` over a scenario's
    [prices] h100-sxm = 1.0 (which silently won); the plan says the price is the user's."""
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(ONE)
    data["prices"] = {"h100-sxm": {"usd_per_hour": 1.0}}
    path = tmp_path / "priced.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(data))
    own = json.loads(invoke("solve", path, "-f", "json").stdout)["best"]
    cli = json.loads(invoke("--price", "h100-sxm=5", "solve", path, "-f", "json").stdout)["best"]
    assert cli["usd_per_hour_per_replica"] == pytest.approx(5 * own["usd_per_hour_per_replica"], rel=1e-5)
    assert cli["price_set_by_user"] is True
    twice = invoke("--price", "h100-sxm=5", "--price", "h100-sxm=6", "solve", path)
    assert twice.exit_code == 2 and "given twice" in twice.stderr


def test_hardware_without_a_purchase_price_is_left_out_with_a_warning(catalog) -> None:
    result = solve(scenario({"hardware": ["h100-sxm", "tpu-v6e"]}), catalog)
    assert [p["hardware"] for p in result.per_hardware] == ["h100-sxm"]
    assert any("tpu-v6e (capex_usd and power_w unknown)" in w for w in result.grid.warnings)


def test_only_unownable_hardware_is_bad_input(invoke) -> None:
    result = invoke("solve", paths.scenarios_dir() / "chat.toml", "--set", "cost.mode=own",
                    "--set", 'search.hardware=["tpu-v6e"]')
    assert result.exit_code == 2
    assert 'cost.mode = "own": no searched hardware has a purchase price' in result.output


def test_project_declines_capex_but_not_energy(catalog) -> None:
    p = project(scenario(), catalog, years=1, price_decline_pct=50, usage_growth=1.0)
    base = p.baseline
    year1 = p.rows[1]["self_hosted"]
    # same plan (no growth): the amortised part halves, the energy bill does not
    expected = (base["monthly_usd"] - base["energy_usd_month"]) * 0.5 + base["energy_usd_month"]
    assert year1["monthly_usd"] == pytest.approx(expected, rel=1e-6)


def test_solve_json_carries_the_cost_section_and_energy(invoke) -> None:
    result = invoke("solve", paths.scenarios_dir() / "chat.toml", "--set", "cost.mode=own", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["cost"]["mode"] == "own" and doc["cost"]["amortisation_years"] == 4.0
    for plan in doc["per_hardware"]:
        assert plan["energy_kwh_month"] > 0 and plan["capex_usd"] > 0


def test_an_owned_disaggregated_best_plan_says_its_capex_and_energy(invoke) -> None:
    # the headline of a disaggregated plan names both pools' hardware and what owning them costs
    result = invoke("solve", paths.scenarios_dir() / "agentic-coding.toml", "--set", "cost.mode=own",
                    "--set", 'search.serving_mode=["disaggregated"]', "--set", 'search.hardware=["b200","h200-sxm"]')
    assert result.exit_code == 0, result.output
    assert "Best: disaggregated" in result.stdout
    text = " ".join(result.stdout.split())  # the console wraps long lines
    start = text.index("owned: capex")
    owned = text[start:text.index("PUE", start)]
    assert "kWh/month" in owned and "over 4 years" in owned and "`planner hardware show h200-sxm`" in owned
    doc = json.loads(invoke("solve", paths.scenarios_dir() / "agentic-coding.toml", "--set", "cost.mode=own",
                            "--set", 'search.serving_mode=["disaggregated"]', "--set",
                            'search.hardware=["b200","h200-sxm"]', "--format", "json").stdout)
    assert f"${doc['best']['capex_usd']:,.0f}" in owned


def test_the_prefix_cache_line_says_where_it_lives_and_matches_the_bill(catalog) -> None:
    """"prefix cache 8.0 GB" beside "offloaded 0.0 GB" and "usable 92.8 GB" read as more than the HBM
    holds: the cache spills idle sessions to host memory whatever the running batch's tiers. The
    line now says how much is in host memory, and that is what the bill's host memory pays for."""
    from planner.solve_report import prefix_cache_words

    sc = scenario(search={"hardware": ["gh200"], "chips": [1], "serving_mode": ["aggregated"]}, **{"cost.mode": "rent"})
    plan = solve(sc, catalog).best
    mem = plan["memory_gb_per_chip"]
    assert mem["prefix_cache_host"] > 0 and mem["prefix_cache_held"] >= mem["prefix_cache_host"]
    host_gb_months = mem["prefix_cache_host"] + (mem["kv_dram"] or 0) + (mem["kv_nvme"] or 0)
    price = catalog.host_tiers.dram.usd_per_gb_hour
    assert plan["host_memory_usd_month"] == pytest.approx(
        host_gb_months * plan["replicas"] * plan["chips"] * price * 730, rel=2e-3)
    assert prefix_cache_words(mem) == (f"prefix cache holds {mem['prefix_cache_held']:.1f} GB "
                                       f"({mem['prefix_cache_host']:.1f} GB of it in host memory)")


def test_cheapest_hardware_of_an_owned_fleet_is_the_cheapest_to_own(catalog) -> None:
    """whatif's cheapest-hardware-only picked by rental price under cost.mode = "own" (h100-sxm, the
    cheaper to rent), where an owned fleet pays capex and energy: an MI300X ($15,000 list price in
    the catalog) costs less per owned hour than an H100 ($30,000), both at 1.3 host and network."""
    from planner.analyses.whatif import evaluate, pick_variants

    both = {"hardware": ["h100-sxm", "mi300x"]}
    for mode, expected in (("own", "mi300x"), ("rent", "h100-sxm")):
        ev = evaluate(scenario(both, **{"cost.mode": mode}), catalog, pick_variants(["cheapest-hardware-only"]))
        assert ev.variants[0].description.startswith(f"only {expected} ("), (mode, ev.variants[0].description)
    assert catalog.accelerator("mi300x").capex_usd < catalog.accelerator("h100-sxm").capex_usd
    assert catalog.accelerator("mi300x").usd_per_hour > catalog.accelerator("h100-sxm").usd_per_hour
