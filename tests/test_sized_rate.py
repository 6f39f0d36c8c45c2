"""Every plan says the arrival rate it was sized for: the fleet's rate at which every SLO and limit
still holds. Just below it the plan's replicas carry the load; just above it they no longer do."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from planner import paths
from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.model.numpy_reference import twin
from planner.simulate.plan import sim_plan

PLAN = {"hardware": "h100-sxm", "chips": 2, "replicas": 1, "batch": 32, "weight_dtype": "fp8",
        "kv_dtype": "fp8", "spec_k": 2, "prefix_cache": True, "attention": "flash",
        "layout": {"tp": 2, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 1, "replicas_per_system": 1}}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def _screen(sp, rate: float):
    p = sp.serve
    load = sp.load._replace(arrival_rps=np.float64(rate))
    return twin()["serving"].evaluate_serving(p.arch, p.hw, p.cfg, p.spec, load, np.float64(p.draft_weight_bytes),
                                              np.bool_(True))


@pytest.mark.parametrize("rate", [0.5, 3.0, 40.0])
def test_the_sized_rate_is_where_the_replicas_stop_carrying_the_load(catalog, rate):
    sc = load_scenario(Path("scenarios/chat.toml"), [], catalog)
    sp = sim_plan(PLAN, sc, catalog)
    screen = _screen(sp, rate)
    replicas, sized = float(screen["replicas"]), float(screen["sized_rps"])
    assert sized >= rate  # the plan carries the stated rate
    assert float(_screen(sp, sized * 0.999)["replicas"]) == replicas  # the same fleet still carries it
    assert float(_screen(sp, sized * 1.001)["replicas"]) > replicas  # beyond it, one more replica is needed


def test_solve_states_the_sized_rate(invoke):
    """The default plan is sized a few % over its 3 req/s (its decode pool): the summary says so;
    JSON carries the plan's rate (its first pool to saturate) and each pool's."""
    for rate in (2.0, 3.0, 7.0):
        args = ("solve", paths.scenarios_dir() / "agentic-coding.toml", "--top", "1",
                "--set", f"workload.arrival_rate_rps={rate}")
        table, data = invoke(*args), json.loads(invoke(*args, "--format", "json").stdout)
        assert table.exit_code == 0, table.output
        line = next(x for x in table.stdout.splitlines() if "sized for up to" in x)
        best = data["best"]
        if best["mode"] == "disaggregated":
            assert best["sized_rps"] == min(best["prefill"]["sized_rps"], best["decode"]["sized_rps"])
        assert best["sized_rps"] >= rate and f"{best['sized_rps']:,.3g} req/s" in line
        assert f"{best['sized_rps'] / rate - 1.0:+.0%} over the scenario's {rate:g}" in line
        if rate == 3.0:
            assert best["sized_rps"] < 3.0 * 1.10  # measured 3.17: the decode pool's one replica is nearly full


def test_a_replay_past_the_sized_rate_says_so():
    from planner.simulate.report import beyond_sized_rate

    assert beyond_sized_rate({"sized_rps": 3.0}, {"arrivals_per_s": 3.3}) == pytest.approx(0.1)
    assert beyond_sized_rate({"sized_rps": 3.0}, {"arrivals_per_s": 2.9}) is None
    assert beyond_sized_rate({}, {"arrivals_per_s": 9.0}) is None  # a plan file written before sized_rps


def test_simulate_json_carries_the_plans_sized_rate(invoke, tmp_path):
    from support import sim_scenario

    path = tmp_path / "s.toml"
    path.write_text(sim_scenario(rate=1.0, turns=1))
    doc = json.loads(invoke("simulate", path, "--duration", "60", "--format", "json").stdout)
    plan = doc["plan"]
    sized = plan["sized_rps"] if doc["mode"] == "aggregated" else min(plan["prefill"]["sized_rps"],
                                                                       plan["decode"]["sized_rps"])
    assert sized >= 1.0
