"""`planner solve` on every bundled scenario: snapshots of what users read, and the JSON contract."""

from __future__ import annotations

import json
import re

import pytest

from planner import paths

SCENARIOS = sorted(p.name for p in paths.scenarios_dir().glob("*.toml"))
PLAN_KEYS = {"hardware", "chips", "replicas", "batch", "weight_dtype", "kv_dtype", "tier_split", "spec_k",
             "prefix_cache", "ttft_p50_s", "ttft_p95_s", "tpot_p50_ms", "tpot_p95_ms", "throughput_tok_s",
             "usd_per_hour", "usd_per_mtok_input", "usd_per_mtok_output", "monthly_usd", "binding",
             "memory_gb_per_chip"}


def _rounded(value):
    """4 significant digits: snapshots pin behaviour, not float32 noise in the last ulp."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


DISAGG_KEYS = {"mode", "hardware", "prefill", "decode", "kv_transfer", "monthly_usd", "ttft_p95_s", "tpot_p95_ms",
               "usd_per_mtok_input", "usd_per_mtok_output", "binding"}


@pytest.mark.parametrize("name", SCENARIOS)
def test_solve_json_snapshot(invoke, snapshot, name):
    result = invoke("solve", paths.scenarios_dir() / name, "--format", "json", "--top", "5")
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"scenario", "model", "workload", "slo", "best", "per_hardware", "pareto", "infeasible",
                         "search"}
    assert set(data["workload"]) >= {"arrival_rate_rps", "input_tokens_median", "output_tokens_median"}
    assert set(data["slo"]) == {"ttft_p95_s", "tpot_p95_ms"}
    assert data["search"]["configs"] >= 1
    if data["best"] is not None:
        best = data["best"]
        assert data["mode"] == best["mode"]
        assert set(best) >= (PLAN_KEYS if best["mode"] == "aggregated" else DISAGG_KEYS)
        assert best["tpot_p95_ms"] <= data["slo"]["tpot_p95_ms"]
        assert best["ttft_p95_s"] <= data["slo"]["ttft_p95_s"]
        bills = [p["monthly_usd"] for p in data["per_hardware"]]
        assert bills == sorted(bills) and bills[0] == data["best_per_mode"]["aggregated"]["monthly_usd"]
        # the cheapest over both serving modes (aggregated plans stay in the search)
        assert best["monthly_usd"] == min(p["monthly_usd"] for p in data["best_per_mode"].values() if p)
    assert _rounded(data) == snapshot


@pytest.mark.parametrize("name", SCENARIOS)
def test_solve_table_snapshot(invoke, snapshot, name):
    result = invoke("solve", paths.scenarios_dir() / name, "--top", "8")
    assert result.exit_code in (0, 1), result.output
    # the search time is the only line that changes run to run; it ends the summary line
    text = re.sub(r" in [0-9.]+ s$", " in <t> s", result.stdout, flags=re.MULTILINE)
    assert "Best plan per hardware" in text
    assert text == snapshot


def test_solve_exits_1_with_reasons_when_nothing_is_feasible(invoke):
    result = invoke("solve", paths.default_scenario(), "--set", "slo.tpot_p95_ms=0.05")
    assert result.exit_code == 1
    assert "No plan meets the SLOs" in result.stdout and "closest:" in result.stdout
    assert "fails on" in result.stdout and "tpot" in result.stdout


@pytest.mark.parametrize("fmt", ["toml", "csv"])
def test_solve_other_formats(invoke, fmt):
    result = invoke("solve", paths.scenarios_dir() / "chat.toml", "--format", fmt, "--top", "3")
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        lines = result.stdout.strip().splitlines()
        assert lines[0].startswith("plan,mode,pool,hardware,chips,replicas") and len(lines) >= 4
    else:
        import tomllib

        assert tomllib.loads(result.stdout)["best"]["hardware"]


def test_set_overrides_change_the_answer(invoke):
    base = json.loads(invoke("solve", paths.scenarios_dir() / "chat.toml", "--format", "json").stdout)
    pinned = json.loads(invoke("solve", paths.scenarios_dir() / "chat.toml", "--format", "json",
                               "--set", "search.hardware=['h100-sxm']").stdout)
    assert pinned["best"]["hardware"] == "h100-sxm"
    assert pinned["best"]["monthly_usd"] >= base["best"]["monthly_usd"]


def test_the_table_says_when_top_hides_rows(invoke):
    shown = invoke("solve", paths.scenarios_dir() / "chat.toml", "--top", "2")
    assert shown.exit_code == 0, shown.output
    total = len(json.loads(invoke("solve", paths.scenarios_dir() / "chat.toml", "--format", "json",
                                  "--top", "0").stdout)["per_hardware"])
    assert f"{total - 2} more hardware with a plan not shown (--top 2); --top 0 shows all" in shown.stdout
    every = invoke("solve", paths.scenarios_dir() / "chat.toml", "--top", "0")
    assert "not shown" not in every.stdout


def test_csv_has_every_plan_the_disaggregated_one_as_its_two_pools(invoke):
    """CSV lists the plans `--plan N` ranks: a disaggregated one (the default scenario's answer) as
    a prefill and a decode row whose own bills add up to the plan's, beside its end-to-end latencies."""
    import csv
    import io as _io

    scenario = paths.scenarios_dir() / "agentic-coding.toml"
    doc = json.loads(invoke("solve", scenario, "--format", "json", "--top", "0").stdout)
    assert doc["best"]["mode"] == "disaggregated"
    result = invoke("solve", scenario, "--format", "csv", "--top", "0")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(_io.StringIO(result.stdout)))
    first = [r for r in rows if r["plan"] == "1"]
    assert [(r["mode"], r["pool"]) for r in first] == [("disaggregated", "prefill"), ("disaggregated", "decode")]
    best = doc["best"]
    assert [r["hardware"] for r in first] == [best["prefill"]["hardware"], best["decode"]["hardware"]]
    assert sum(float(r["monthly_usd"]) for r in first) == pytest.approx(best["monthly_usd"], abs=0.02)
    assert all(float(r["plan_monthly_usd"]) == best["monthly_usd"] for r in first)
    assert all(float(r["ttft_p95_s"]) == best["ttft_p95_s"] and float(r["tpot_p95_ms"]) == best["tpot_p95_ms"]
               for r in first)
    aggregated = [r for r in rows if r["mode"] == "aggregated"]
    assert [r["hardware"] for r in aggregated] == [p["hardware"] for p in doc["per_hardware"]]
    assert all(r["pool"] == "" and r["monthly_usd"] == r["plan_monthly_usd"] for r in aggregated)
    bills = [float(r["plan_monthly_usd"]) for r in rows]
    assert bills == sorted(bills)  # cheapest first, as --plan N counts
